/*
 * format.h - the on-disk format of a shard (see docs/FORMAT.md).
 *
 *   0      header page   (struct sc_disk_header, written once at creation)
 *   512    meta slot 0   (struct sc_disk_meta)
 *   1024   meta slot 1
 *   4096   data: records and index tables, appended, 64-byte aligned
 *
 * Everything after the header is append-only except three things: the two
 * meta slots, and the 16-byte index slots that a committed meta's redo
 * record names.  A commit is the write of the meta slot with the higher
 * transaction id; readers take the valid meta with the highest id.
 * Integers are in the writer's byte order, which the header records.
 */
#ifndef SC_FORMAT_H
#define SC_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define SC_MAGIC           "scshard\n"
#define SC_FORMAT_VERSION  1u
#define SC_BYTE_ORDER_MARK 0x01020304u
#define SC_META0_OFF       512u
#define SC_META1_OFF       1024u
#define SC_DATA_OFF        4096u
#define SC_ALIGN           64u
#define SC_MIN_INDEX_SLOTS 1024u

/* Index slot values: off 0 = empty (ends a probe), off 1 = tombstone. */
#define SC_SLOT_EMPTY 0u
#define SC_SLOT_TOMB  1u
#define SC_NO_REDO    UINT64_MAX

#define SC_REC_MAGIC 0x4e455343u /* "SCEN" read as little-endian */

/* Record flags */
#define SC_REC_NO_SOURCE 1u

/* Meta flags */
#define SC_META_RETIRED 1u /* file replaced by a compaction: reopen the path */
#define SC_META_SYNCED  2u /* this commit was made durable (not SC_NOSYNC): its
			    * redo slot write must be synced before a later
			    * commit drops the redo (txn.c sc_commit_meta) */

struct sc_disk_header {
	char     magic[8];
	uint32_t format_version;
	uint32_t byte_order;      /* SC_BYTE_ORDER_MARK in the writer's order */
	uint8_t  ptr_width;       /* sizeof(void *) of the writer */
	uint8_t  pad0[3];
	uint32_t header_size;     /* sizeof(struct sc_disk_header) */
	char     lib_version[16]; /* library that created the file, NUL-padded */
	int64_t  created_sec;
	uint64_t shard_id;        /* random, new for every file (compaction too) */
	uint8_t  pad1[192];
	uint64_t checksum;        /* XXH3-64 of the bytes before this field */
};

struct sc_disk_meta {
	uint64_t txnid;           /* commit counter; the higher valid slot wins */
	uint64_t data_end;        /* committed end of data; nothing past it is read */
	uint64_t index_off;       /* index table: index_slots * struct sc_disk_slot */
	uint64_t index_slots;     /* power of two */
	uint64_t entries;
	uint64_t tombstones;
	uint64_t live_bytes;
	uint64_t dead_bytes;
	uint64_t flags;           /* SC_META_* */
	uint64_t redo_slot;       /* SC_NO_REDO, or index slot whose value is below */
	uint64_t redo_hash;
	uint64_t redo_off;
	int64_t  committed_sec;
	char     lib_version[16]; /* library that made this commit */
	uint8_t  pad[8];
	uint64_t checksum;        /* XXH3-64 of the bytes before this field */
};

struct sc_disk_slot {
	uint64_t hash;            /* XXH3-64 of the key */
	uint64_t off;             /* record offset, or SC_SLOT_EMPTY / SC_SLOT_TOMB */
};

/*
 * A record: this header, then key, tag, exe_id, exe_path (no NULs), then
 * padding to SC_ALIGN, then the blob, then padding to SC_ALIGN.
 */
struct sc_disk_record {
	uint32_t magic;           /* SC_REC_MAGIC */
	uint32_t flags;           /* SC_REC_* */
	uint64_t rec_len;         /* whole record including padding */
	uint16_t key_len;
	uint16_t tag_len;
	uint16_t exe_id_len;
	uint16_t exe_path_len;
	uint32_t src_mtime_nsec;
	uint32_t cached_nsec;
	int64_t  src_mtime_sec;
	uint64_t src_size;
	int64_t  cached_sec;
	uint64_t blob_off;        /* from the record start; multiple of SC_ALIGN */
	uint64_t blob_len;
	uint64_t blob_checksum;   /* XXH3-64 of the blob */
	uint64_t checksum;        /* XXH3-64 of this header (this field 0) + strings */
};

_Static_assert(sizeof(struct sc_disk_header) == 256, "header layout");
_Static_assert(sizeof(struct sc_disk_meta) == 136, "meta layout");
_Static_assert(sizeof(struct sc_disk_slot) == 16, "slot layout");
_Static_assert(sizeof(struct sc_disk_record) == 88, "record layout");

static inline uint64_t sc_align_up(uint64_t v)
{
	return (v + SC_ALIGN - 1) & ~(uint64_t)(SC_ALIGN - 1);
}

struct sc_disk_header;
int  sc_header_check(const struct sc_disk_header *h, uint64_t file_size);
void sc_header_init(struct sc_disk_header *h);
uint64_t sc_meta_checksum(const struct sc_disk_meta *m);
int  sc_meta_valid(const struct sc_disk_meta *m);
/* Pick the newer valid meta of two slots already copied out of a file of
 * @p size bytes (copied: a writer may be rewriting a slot meanwhile).
 * Returns 0 or SC_ECORRUPT. */
int  sc_meta_choose(const struct sc_disk_meta m[2], uint64_t size, struct sc_disk_meta *out);
/* Structural checks of a meta against the file size (index inside data, etc). */
int  sc_meta_sane(const struct sc_disk_meta *m, uint64_t file_size);
/* The same, saying which check failed (a static string), or NULL if sane. */
const char *sc_meta_insane(const struct sc_disk_meta *m, uint64_t file_size);

/* A validated view of one record inside a mapping. */
struct sc_rec_view {
	const struct sc_disk_record *r;
	const char *key, *tag, *exe_id, *exe_path;
	const unsigned char *blob;
	int verified;             /* both checksums already checked by this process */
};
/* Validate the record at @p off (bounds, magic, lengths, and unless
 * @p verified the header checksum); never hashes the blob.
 * Returns 0 or SC_ECORRUPT. */
int sc_record_view(const unsigned char *map, uint64_t data_end, uint64_t off,
		   int verified, struct sc_rec_view *v);
/* sc_record_view() that says which check failed (*why, a static string). */
int sc_record_check(const unsigned char *map, uint64_t data_end, uint64_t off,
		    int verified, struct sc_rec_view *v, const char **why);
/* The record header checksum: XXH3-64 of @p r with its checksum field 0,
 * then of the strings key, tag, exe_id, exe_path (@p n pieces, in that
 * order: the put has them apart, a mapped record has them in one piece). */
struct iovec;
uint64_t sc_record_checksum(const struct sc_disk_record *r, const struct iovec *strings,
			    int n);

/*
 * The first SC_DATA_OFF bytes of a new shard file: a fresh header (new
 * shard_id) and both meta slots, txn 0 and txn 1, valid from the start, for
 * an index of @p index_slots at @p index_off and data up to @p data_end.
 * The one place a shard image is made: creation, heal and compaction.
 */
void sc_image_init(unsigned char page[SC_DATA_OFF], uint64_t index_off, uint64_t index_slots,
		   uint64_t data_end, uint64_t entries, uint64_t live_bytes);

#endif /* SC_FORMAT_H */
