/*
 * format.c - validation of the on-disk structures (see format.h and
 * docs/FORMAT.md).  Everything here reads bytes that may have been written
 * by anyone: nothing is trusted until it has been bounds-checked and its
 * checksum verified, and all arithmetic is checked for overflow.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/uio.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "format.h"
#include "scriptcache.h"

static uint64_t header_checksum(const struct sc_disk_header *h)
{
	return XXH3_64bits(h, offsetof(struct sc_disk_header, checksum));
}

void sc_header_init(struct sc_disk_header *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, SC_MAGIC, 8);
	h->format_version = SC_FORMAT_VERSION;
	h->byte_order = SC_BYTE_ORDER_MARK;
	h->ptr_width = (uint8_t)sizeof(void *);
	h->header_size = sizeof(*h);
	strncpy(h->lib_version, SC_VERSION_STRING, sizeof(h->lib_version) - 1);
	h->created_sec = (int64_t)time(NULL);
	if (getrandom(&h->shard_id, sizeof(h->shard_id), GRND_NONBLOCK) != sizeof(h->shard_id)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		h->shard_id = XXH3_64bits(&ts, sizeof(ts)) ^ (uint64_t)getpid();
	}
	h->checksum = header_checksum(h);
}

/* Each mismatch has its own code so that a user learns *why* a file is
 * refused (an old library, a 32-bit build sharing $HOME, a foreign file). */
int sc_header_check(const struct sc_disk_header *h, uint64_t file_size)
{
	if (file_size < sizeof(*h))
		return memcmp(h->magic, SC_MAGIC, file_size < 8 ? file_size : 8) ? SC_EMAGIC
									     : SC_ETRUNCATED;
	if (memcmp(h->magic, SC_MAGIC, 8) != 0)
		return SC_EMAGIC;
	if (h->byte_order != SC_BYTE_ORDER_MARK)
		return h->byte_order == __builtin_bswap32(SC_BYTE_ORDER_MARK) ? SC_EBYTEORDER
									       : SC_ECORRUPT;
	if (h->format_version != SC_FORMAT_VERSION)
		return SC_EVERSION;
	if (h->ptr_width != sizeof(void *))
		return SC_EPTRWIDTH;
	if (h->header_size != sizeof(*h) || h->checksum != header_checksum(h))
		return SC_ECORRUPT;
	/* A relocation base is a relative path of its own length: a header
	 * that says otherwise was not written by sc_build(). */
	if ((h->hflags & ~SC_HDR_KNOWN) || h->base_len > SC_BASE_MAX ||
	    (h->base_len && (!(h->hflags & SC_HDR_RELOCATABLE) || h->base[0] == '/' ||
			     memchr(h->base, '\0', h->base_len))))
		return SC_ECORRUPT;
	if (file_size < SC_DATA_OFF)
		return SC_ETRUNCATED;
	return 0;
}

int sc_header_set_base(struct sc_disk_header *h, const char *base)
{
	size_t n = base ? strlen(base) : 0;

	if (n > SC_BASE_MAX)
		return -ENAMETOOLONG;
	if (n && base[0] == '/')
		return -EINVAL;
	h->hflags |= SC_HDR_RELOCATABLE;
	h->base_len = (uint16_t)n;
	memset(h->base, 0, sizeof(h->base));
	if (n)
		memcpy(h->base, base, n);
	h->checksum = header_checksum(h);
	return 0;
}

uint64_t sc_meta_checksum(const struct sc_disk_meta *m)
{
	return XXH3_64bits(m, offsetof(struct sc_disk_meta, checksum));
}

int sc_meta_valid(const struct sc_disk_meta *m)
{
	return m->checksum == sc_meta_checksum(m);
}

/* Is [off, off + bytes) a 64-aligned table inside the committed data? */
static int table_inside(uint64_t off, uint64_t slots, size_t slot_size, uint64_t data_end)
{
	if (slots > UINT64_MAX / slot_size)
		return 0;
	return off >= SC_DATA_OFF && off % SC_ALIGN == 0 && off <= data_end &&
	       slots * slot_size <= data_end - off;
}

static int pow2_at_least(uint64_t n, uint64_t min)
{
	return n >= min && (n & (n - 1)) == 0;
}

const char *sc_meta_insane(const struct sc_disk_meta *m, uint64_t file_size)
{
	if (m->data_end < SC_DATA_OFF || m->data_end > file_size || m->data_end % SC_ALIGN)
		return "data_end outside the file or misaligned";
	if (!pow2_at_least(m->index_slots, SC_MIN_INDEX_SLOTS))
		return "index_slots not a power of two >= 1024";
	if (!table_inside(m->index_off, m->index_slots, sizeof(struct sc_disk_slot), m->data_end))
		return "index table outside the data or misaligned";
	if (!pow2_at_least(m->blob_slots, SC_MIN_BLOB_SLOTS))
		return "blob_slots not a power of two >= 1024";
	if (!table_inside(m->blobs_off, m->blob_slots, sizeof(struct sc_disk_bslot), m->data_end))
		return "blob index outside the data or misaligned";
	/* Writers write slots of these tables in place: two that overlap would
	 * have one's writes land in the other. */
	{
		uint64_t ka = m->index_off, kb = ka + m->index_slots * sizeof(struct sc_disk_slot);
		uint64_t ba = m->blobs_off, bb = ba + m->blob_slots * sizeof(struct sc_disk_bslot);
		uint64_t fa = m->free_dir, fb = fa + SC_NCLASSES * sizeof(struct sc_disk_fdir);
		if (ka < bb && ba < kb)
			return "key index and blob index overlap";
		uint64_t ca = m->chunk_off, cb = ca + m->chunk_len;
		if (m->free_dir && ((fa < kb && ka < fb) || (fa < bb && ba < fb)))
			return "free directory overlaps an index";
		if (m->chunk_off && ((ca < kb && ka < cb) || (ca < bb && ba < cb) ||
				     (m->free_dir && ca < fb && fa < cb)))
			return "metadata chunk overlaps a table";
	}
	if (m->redo_slot != SC_NO_REDO && m->redo_slot >= m->index_slots)
		return "redo slot outside the index";
	if (m->entries > m->index_slots || m->tombstones > m->index_slots - m->entries)
		return "entries and tombstones exceed the index slots";
	if (m->blobs > m->blob_slots || m->blob_tombs > m->blob_slots - m->blobs)
		return "blobs and blob tombstones exceed the blob slots";
	if (m->chunk_off != 0 &&
	    (m->chunk_off < SC_DATA_OFF || m->chunk_off % SC_ALIGN || m->chunk_off > m->data_end ||
	     m->chunk_len > m->data_end - m->chunk_off || m->chunk_used > m->chunk_len ||
	     m->chunk_used % SC_ENT_ALIGN))
		return "metadata chunk outside the data or misaligned";
	if (m->chunk_off == 0 && (m->chunk_used || m->chunk_len))
		return "metadata chunk sizes without a chunk";
	if (m->free_dir && !table_inside(m->free_dir, SC_NCLASSES, sizeof(struct sc_disk_fdir),
					 m->data_end))
		return "free directory outside the data or misaligned";
	if (m->durable_txn > m->txnid)
		return "durable_txn ahead of the transaction id";
	if (m->wredo_n > SC_WREDO_MAX)
		return "too many blob slot redo records";
	for (uint64_t i = 0; i < m->wredo_n; i++) {
		uint64_t at = m->wredo[i].at;
		int in_blobs = at >= m->blobs_off &&
			       (at - m->blobs_off) % sizeof(struct sc_disk_bslot) == 0 &&
			       (at - m->blobs_off) / sizeof(struct sc_disk_bslot) < m->blob_slots;
		int in_dir = m->free_dir && at >= m->free_dir &&
			     (at - m->free_dir) % sizeof(struct sc_disk_fdir) == 0 &&
			     (at - m->free_dir) / sizeof(struct sc_disk_fdir) < SC_NCLASSES;
		if (!in_blobs && !in_dir)
			return "redo record outside the blob index and the free directory";
	}
	/* A writer could not commit past this without wrapping, and readers
	 * pin a commit by locking byte SC_PIN_BASE + txnid of the file, which
	 * must be a valid offset (handle.c). */
	if (m->txnid >= SC_PIN_BASE - 2)
		return "transaction id at its limit";
	return NULL;
}

int sc_meta_sane(const struct sc_disk_meta *m, uint64_t file_size)
{
	return sc_meta_insane(m, file_size) == NULL;
}

int sc_meta_choose(const struct sc_disk_meta m[SC_META_SLOTS], uint64_t size,
		   struct sc_disk_meta *out)
{
	int best = -1;

	for (int i = 0; i < SC_META_SLOTS; i++)
		if (sc_meta_valid(&m[i]) && sc_meta_sane(&m[i], size) &&
		    (best < 0 || m[i].txnid > m[best].txnid))
			best = i;
	if (best < 0)
		return SC_ECORRUPT;
	*out = m[best];
	return best;
}

uint64_t sc_record_checksum(const struct sc_disk_entry *r, const struct iovec *strings, int n)
{
	struct sc_disk_entry tmp = *r;
	XXH3_state_t st;

	tmp.checksum = 0;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, &tmp, sizeof(tmp));
	for (int i = 0; i < n; i++)
		XXH3_64bits_update(&st, strings[i].iov_base, strings[i].iov_len);
	return XXH3_64bits_digest(&st);
}

void sc_blob_id(const void *blob, size_t len, uint64_t id[2])
{
	XXH128_hash_t h = XXH3_128bits(blob, len);

	id[0] = h.low64;
	id[1] = h.high64;
}

void sc_image_init(unsigned char page[SC_DATA_OFF], const struct sc_disk_meta *state)
{
	struct sc_disk_header h;
	struct sc_disk_meta m = *state;

	memset(page, 0, SC_DATA_OFF);
	sc_header_init(&h);
	memcpy(page, &h, sizeof(h));
	m.flags = 0;
	m.redo_slot = SC_NO_REDO;
	m.redo_hash = m.redo_off = 0;
	m.wredo_n = 0;
	memset(m.wredo, 0, sizeof(m.wredo));
	m.committed_sec = h.created_sec;
	m.durable_txn = 0; /* the image is synced before it is put in place */
	m.unsynced_free = 0;
	memset(m.lib_version, 0, sizeof(m.lib_version));
	strncpy(m.lib_version, SC_VERSION_STRING, sizeof(m.lib_version) - 1);
	/* Slot 0 holds txn 0, slot 1 txn 1: whichever a reader picks, it
	 * finds the same state.  Slot 2 stays zeros (invalid), and the first
	 * commit (txn 2) goes there (txn.c). */
	for (int i = 0; i < 2; i++) {
		m.txnid = (uint64_t)i;
		m.checksum = sc_meta_checksum(&m);
		memcpy(page + sc_meta_off(i), &m, sizeof(m));
	}
}

int sc_record_check(const unsigned char *map, uint64_t data_end, uint64_t off,
		    int verified, struct sc_rec_view *v, const char **why)
{
	const struct sc_disk_entry *r;
	uint64_t strings;
	const char *dummy;

	if (!why)
		why = &dummy;
	if (off < SC_DATA_OFF || off % SC_ENT_ALIGN || off >= data_end ||
	    data_end - off < sizeof(*r)) {
		*why = "offset outside the data or misaligned";
		return SC_ECORRUPT;
	}
	r = (const struct sc_disk_entry *)(map + off);
	if (r->magic != SC_ENT_MAGIC) {
		*why = "bad entry magic";
		return SC_ECORRUPT;
	}
	if (r->key_len == 0 || r->key_len > SC_MAX_KEY) {
		*why = "key_len out of range";
		return SC_ECORRUPT;
	}
	strings = (uint64_t)r->key_len + r->tag_len + r->exe_id_len + r->exe_path_len;
	if (r->rec_len > data_end - off || r->rec_len % SC_ENT_ALIGN ||
	    r->rec_len < sizeof(*r) + strings) {
		*why = "rec_len past the committed data, misaligned or too short";
		return SC_ECORRUPT;
	}
	if (r->blob_off % SC_ALIGN || r->blob_off < SC_DATA_OFF || r->blob_len > SC_MAX_BLOB) {
		*why = "blob offset misaligned or length out of range";
		return SC_ECORRUPT;
	}
	if (!verified &&
	    r->checksum != sc_record_checksum(r, &(struct iovec){ (void *)(r + 1), strings }, 1)) {
		*why = "entry checksum mismatch";
		return SC_ECORRUPT;
	}
	/* Last, so that only a genuine record gets here: an entry committed
	 * after the caller's snapshot can sit in a metadata chunk inside it
	 * while its blob was appended past it. */
	if (r->blob_off > data_end || r->blob_len > data_end - r->blob_off) {
		*why = "blob past the committed data";
		return -EAGAIN;
	}
	v->verified = verified;
	v->r = r;
	v->key = (const char *)(r + 1);
	v->tag = v->key + r->key_len;
	v->exe_id = v->tag + r->tag_len;
	v->exe_path = v->exe_id + r->exe_id_len;
	v->blob = map + r->blob_off;
	return 0;
}

int sc_record_view(const unsigned char *map, uint64_t data_end, uint64_t off,
		   int verified, struct sc_rec_view *v)
{
	return sc_record_check(map, data_end, off, verified, v, NULL);
}
