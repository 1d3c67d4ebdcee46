/*
 * format.h - the on-disk format of a shard, version 2 (see docs/FORMAT.md).
 *
 *   0      header page   (struct sc_disk_header, written once at creation)
 *   512    meta slot 0   (struct sc_disk_meta)
 *   1024   meta slot 1
 *   1536   meta slot 2   (zeros until a commit needs it: an invalid slot)
 *   4096   data: blobs, metadata chunks and tables, appended
 *
 * The data holds four kinds of things, each in its own place:
 *  - blobs: the compiled bytes, 64-byte aligned, each stored once however
 *    many entries hold the same bytes (content-addressed by XXH3-128);
 *  - entry records: key, fingerprint, source identity and the blob's place,
 *    packed 8-byte aligned into 64 KiB metadata chunks, so that a lookup or
 *    a listing reads metadata pages and never a blob page;
 *  - the key index: (XXH3-64 of the key, entry offset) slots;
 *  - the blob index: (XXH3-128 of the bytes, blob offset, length, refs),
 *    read by writers only.
 * Committed bytes are never changed, except the meta slots and the index
 * slots that a committed meta's redo records name.  A commit is the write
 * of a meta slot with a transaction id higher than any other slot's, into
 * a slot that holds neither the newest commit nor the newest durable one
 * (txn.c); readers take the valid meta with the highest id.  Integers are in the writer's byte order,
 * which the header records.
 */
#ifndef SC_FORMAT_H
#define SC_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define SC_MAGIC           "scshard\n"
#define SC_FORMAT_VERSION  2u
#define SC_FORMAT_V1       1u  /* recognised: a miss source, rebuilt on the first write */
#define SC_BYTE_ORDER_MARK 0x01020304u
#define SC_META0_OFF       512u
#define SC_META1_OFF       1024u
#define SC_META2_OFF       1536u
#define SC_META_SLOTS      3
#define SC_DATA_OFF        4096u
#define SC_ALIGN           64u     /* blobs, tables, chunks */
#define SC_ENT_ALIGN       8u      /* entry records inside a chunk */
#define SC_CHUNK           65536u  /* metadata chunk */
#define SC_MIN_INDEX_SLOTS 1024u
#define SC_MIN_BLOB_SLOTS  1024u
#define SC_WREDO_MAX       4u
#define SC_NCLASSES        176u    /* blob size classes (sc_class_of) */
#define SC_PIN_BASE        ((uint64_t)1 << 62) /* readers' pins: byte locks from here */

/* Slot offsets (both indexes): 0 = empty (ends a probe), 1 = tombstone. */
#define SC_SLOT_EMPTY 0u
#define SC_SLOT_TOMB  1u
#define SC_NO_REDO    UINT64_MAX

#define SC_ENT_MAGIC 0x32455343u /* "SCE2" read as little-endian */

/* Entry flags */
#define SC_ENT_NO_SOURCE 1u  /* the key names no source file */
#define SC_ENT_SRC_HASH  2u  /* src_hash holds XXH3-128 of the source's bytes */
#define SC_ENT_OWN_BLOB  4u  /* the blob is this entry's alone, not in the blob
			      * index (its id collided with other bytes there,
			      * or that blob's reference count is full) */
#define SC_ENT_WHITEOUT  8u  /* no entry: hides the key in the lower shards
			      * (docs/LAYERS.md); blob empty, no source */

/* Header flags */
#define SC_HDR_RELOCATABLE 1u /* a shipped shard (sc_build()): keys not starting
			       * with '/' are relative to a base directory */
#define SC_HDR_KNOWN       SC_HDR_RELOCATABLE
#define SC_BASE_MAX        184u /* header room for the relative base */

/* Meta flags */
#define SC_META_RETIRED 1u /* file replaced by a compaction: reopen the path */
#define SC_META_SYNCED  2u /* this commit was made durable (not SC_NOSYNC): its
			    * redo writes must be synced before a later commit
			    * drops them (txn.c sc_commit_meta) */

/* A blob slot's info word: reference count above, length below. */
#define SC_BLOB_LEN_BITS 40
#define SC_BLOB_LEN_MASK (((uint64_t)1 << SC_BLOB_LEN_BITS) - 1)
#define SC_BLOB_REFS_MAX (((uint64_t)1 << (64 - SC_BLOB_LEN_BITS)) - 1)

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
	uint32_t hflags;          /* SC_HDR_* (0 for a shard of the cache's own) */
	uint16_t base_len;        /* bytes of base[] in use (0: no base recorded) */
	uint8_t  pad1[2];
	char     base[SC_BASE_MAX]; /* SC_HDR_RELOCATABLE: the base directory,
				     * relative to the shard file's directory */
	uint64_t checksum;        /* XXH3-64 of the bytes before this field */
};

/* One in-place write of a blob index slot that a commit makes (writers
 * only: readers never read the blob index). */
struct sc_disk_wredo {
	uint64_t at;              /* file offset of the slot */
	uint64_t v[4];            /* its new value (struct sc_disk_bslot) */
};

struct sc_disk_meta {
	uint64_t txnid;           /* commit counter; the higher valid slot wins */
	uint64_t data_end;        /* committed end of data; nothing past it is read */
	uint64_t index_off;       /* key index: index_slots * struct sc_disk_slot */
	uint64_t index_slots;     /* power of two */
	uint64_t entries;
	uint64_t tombstones;
	uint64_t live_bytes;      /* entry records and stored blobs reachable */
	uint64_t dead_bytes;      /* replaced, removed, old tables, chunk tails */
	uint64_t flags;           /* SC_META_* */
	uint64_t redo_slot;       /* SC_NO_REDO, or key index slot whose value is below */
	uint64_t redo_hash;
	uint64_t redo_off;
	int64_t  committed_sec;
	char     lib_version[16]; /* library that made this commit */
	uint64_t blobs_off;       /* blob index: blob_slots * struct sc_disk_bslot */
	uint64_t blob_slots;      /* power of two */
	uint64_t blobs;           /* distinct blobs stored */
	uint64_t blob_tombs;
	uint64_t stored_bytes;    /* sum of the stored blobs' lengths */
	uint64_t logical_bytes;   /* sum of the entries' blob lengths */
	uint64_t chunk_off;       /* current metadata chunk (0: none yet) */
	uint64_t chunk_used;      /* bytes of it in use */
	uint64_t chunk_len;
	uint64_t free_dir;        /* free extents: SC_NCLASSES struct sc_disk_fdir (0: none) */
	uint64_t durable_txn;     /* every commit up to this one is on disk */
	uint64_t unsynced_free;   /* bytes freed by commits after durable_txn */
	uint64_t wredo_n;         /* wredo[] entries in use */
	struct sc_disk_wredo wredo[SC_WREDO_MAX];
	uint64_t checksum;        /* XXH3-64 of the bytes before this field */
};

/* One size class's free blob extents: a ring of struct sc_disk_free, the
 * oldest at head.  Entries in [head, tail) are committed and never change;
 * a push writes the one at tail before its commit. */
struct sc_disk_fdir {
	uint64_t ring;            /* offset of the ring (0: none yet) */
	uint64_t cap;             /* entries it holds, a power of two */
	uint64_t head, tail;      /* counters; entry i is at ring + (i % cap) * 16 */
};

struct sc_disk_free {
	uint64_t off;             /* the extent, sc_class_size() bytes */
	uint64_t freed_txn;       /* the commit that freed it */
};

struct sc_disk_slot {
	uint64_t hash;            /* XXH3-64 of the key */
	uint64_t off;             /* entry offset, or SC_SLOT_EMPTY / SC_SLOT_TOMB */
};

struct sc_disk_bslot {
	uint64_t id_lo, id_hi;    /* XXH3-128 of the blob's bytes */
	uint64_t off;             /* blob offset, or SC_SLOT_EMPTY / SC_SLOT_TOMB */
	uint64_t info;            /* refs << SC_BLOB_LEN_BITS | length */
};

/*
 * An entry record: this header, then key, tag, exe_id, exe_path (no NULs),
 * then padding to SC_ENT_ALIGN.  The blob lies elsewhere, at blob_off.
 */
struct sc_disk_entry {
	uint32_t magic;           /* SC_ENT_MAGIC */
	uint32_t flags;           /* SC_ENT_* */
	uint32_t rec_len;         /* whole record including padding */
	uint16_t key_len;
	uint16_t tag_len;
	uint16_t exe_id_len;
	uint16_t exe_path_len;
	uint32_t src_mtime_nsec;
	uint32_t cached_nsec;
	uint32_t pad0;
	int64_t  src_mtime_sec;
	uint64_t src_size;
	int64_t  cached_sec;
	uint64_t blob_off;        /* file offset of the blob; multiple of SC_ALIGN */
	uint64_t blob_len;
	uint64_t blob_id[2];      /* XXH3-128 of the blob: its identity and checksum */
	uint64_t src_hash[2];     /* XXH3-128 of the source's bytes (SC_ENT_SRC_HASH) */
	uint64_t checksum;        /* XXH3-64 of this header (this field 0) + strings */
};

_Static_assert(sizeof(struct sc_disk_header) == 256, "header layout");
_Static_assert(sizeof(struct sc_disk_meta) == 392, "meta layout");
_Static_assert(SC_META2_OFF + sizeof(struct sc_disk_meta) <= SC_DATA_OFF, "metas fit");
_Static_assert(sizeof(struct sc_disk_meta) <= 512, "a meta slot in its own sector");
_Static_assert(sizeof(struct sc_disk_slot) == 16, "slot layout");
_Static_assert(sizeof(struct sc_disk_bslot) == 32, "blob slot layout");
_Static_assert(sizeof(struct sc_disk_entry) == 112, "entry layout");
_Static_assert(sizeof(struct sc_disk_fdir) == 32, "free directory layout");
_Static_assert(sizeof(struct sc_disk_free) == 16, "free extent layout");

/* Meta slot @p i (0 .. SC_META_SLOTS - 1): each in its own 512-byte sector. */
static inline uint64_t sc_meta_off(int i)
{
	return SC_META0_OFF + (uint64_t)i * 512u;
}

/* An all-zero slot: never written (slot 2 of a new shard, or of one written
 * before the third slot existed).  Invalid, and not damage. */
static inline int sc_meta_unused(const struct sc_disk_meta *m)
{
	const unsigned char *p = (const unsigned char *)m;

	for (size_t i = 0; i < sizeof(*m); i++)
		if (p[i])
			return 0;
	return 1;
}

static inline uint64_t sc_align_up(uint64_t v)
{
	return (v + SC_ALIGN - 1) & ~(uint64_t)(SC_ALIGN - 1);
}

static inline uint64_t sc_ent_align(uint64_t v)
{
	return (v + SC_ENT_ALIGN - 1) & ~(uint64_t)(SC_ENT_ALIGN - 1);
}

/* Blob extents come in size classes, 8 per doubling above 512 bytes, so
 * that a freed extent fits the next blob of its class exactly (at most
 * 1/8 of an extent is padding).  -1 for an empty blob (no extent). */
static inline int sc_class_of(uint64_t len)
{
	uint64_t n = (len + 63) / 64, step, k;
	int e;

	if (n == 0)
		return -1;
	if (n <= 8)
		return (int)n - 1;
	e = 63 - __builtin_clzll(n - 1);        /* 2^e < n <= 2^(e+1), e >= 3 */
	step = (uint64_t)1 << (e - 3);
	k = (n - ((uint64_t)1 << e) + step - 1) / step; /* 1..8 */
	return 8 + (e - 3) * 8 + (int)k - 1;
}

static inline uint64_t sc_class_size(int c)
{
	int e;

	if (c < 8)
		return (uint64_t)(c + 1) * 64;
	e = (c - 8) / 8 + 3;
	return (((uint64_t)1 << e) + (uint64_t)((c - 8) % 8 + 1) * ((uint64_t)1 << (e - 3))) * 64;
}

static inline uint64_t sc_bslot_len(const struct sc_disk_bslot *b)
{
	return b->info & SC_BLOB_LEN_MASK;
}

static inline uint64_t sc_bslot_refs(const struct sc_disk_bslot *b)
{
	return b->info >> SC_BLOB_LEN_BITS;
}

int  sc_header_check(const struct sc_disk_header *h, uint64_t file_size);
void sc_header_init(struct sc_disk_header *h);
/* Mark a header relocatable, with @p base (NULL: none recorded) relative to
 * the shard's directory, and checksum it again.  0, or -ENAMETOOLONG /
 * -EINVAL (an absolute base or one longer than SC_BASE_MAX). */
int  sc_header_set_base(struct sc_disk_header *h, const char *base);
uint64_t sc_meta_checksum(const struct sc_disk_meta *m);
int  sc_meta_valid(const struct sc_disk_meta *m);
/* Pick the newest valid meta of the slots already copied out of a file of
 * @p size bytes (copied: a writer may be rewriting a slot meanwhile): a
 * right checksum, sane against @p size, the highest transaction id.  Any
 * slot may hold any id.  Returns its slot index, or SC_ECORRUPT. */
int  sc_meta_choose(const struct sc_disk_meta m[SC_META_SLOTS], uint64_t size,
		    struct sc_disk_meta *out);

/* Structural checks of a meta against the file size (tables inside data, etc). */
int  sc_meta_sane(const struct sc_disk_meta *m, uint64_t file_size);
/* The same, saying which check failed (a static string), or NULL if sane. */
const char *sc_meta_insane(const struct sc_disk_meta *m, uint64_t file_size);

/* A validated view of one entry record inside a mapping. */
struct sc_rec_view {
	const struct sc_disk_entry *r;
	const char *key, *tag, *exe_id, *exe_path;
	const unsigned char *blob;
	int verified;             /* record and blob already checked by this process */
};
/* Validate the entry at @p off (bounds of the record and of its blob,
 * magic, lengths, and unless @p verified the header checksum); never
 * hashes the blob.  Returns 0 or SC_ECORRUPT. */
int sc_record_view(const unsigned char *map, uint64_t data_end, uint64_t off,
		   int verified, struct sc_rec_view *v);
/* sc_record_view() that says which check failed (*why, a static string). */
int sc_record_check(const unsigned char *map, uint64_t data_end, uint64_t off,
		    int verified, struct sc_rec_view *v, const char **why);
/* The entry checksum: XXH3-64 of @p r with its checksum field 0, then of
 * the strings key, tag, exe_id, exe_path (@p n pieces, in that order: a put
 * has them apart, a mapped record has them in one piece). */
struct iovec;
uint64_t sc_record_checksum(const struct sc_disk_entry *r, const struct iovec *strings, int n);
/* XXH3-128 of a blob's bytes, as entries and the blob index record it. */
void sc_blob_id(const void *blob, size_t len, uint64_t id[2]);

/*
 * The first bytes of a new shard file: a fresh header (new shard_id), meta
 * slots 0 and 1 (txn 0 and txn 1, valid from the start) describing @p m's
 * state, slot 2 zeros.  The one place a shard image is made: creation, heal, compaction.
 */
void sc_image_init(unsigned char page[SC_DATA_OFF], const struct sc_disk_meta *m);

#endif /* SC_FORMAT_H */
