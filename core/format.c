/*
 * format.c - validation of the on-disk structures (see format.h and
 * docs/FORMAT.md).  Everything here reads bytes that may have been written
 * by anyone: nothing is trusted until it has been bounds-checked and its
 * checksum verified, and all arithmetic is checked for overflow.
 */
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
	if (file_size < SC_DATA_OFF)
		return SC_ETRUNCATED;
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

const char *sc_meta_insane(const struct sc_disk_meta *m, uint64_t file_size)
{
	uint64_t table_bytes;

	if (m->data_end < SC_DATA_OFF || m->data_end > file_size || m->data_end % SC_ALIGN)
		return "data_end outside the file or misaligned";
	if (m->index_slots < SC_MIN_INDEX_SLOTS || (m->index_slots & (m->index_slots - 1)))
		return "index_slots not a power of two >= 1024";
	if (m->index_slots > (UINT64_MAX / sizeof(struct sc_disk_slot)))
		return "index_slots too large";
	table_bytes = m->index_slots * sizeof(struct sc_disk_slot);
	if (m->index_off < SC_DATA_OFF || m->index_off % SC_ALIGN ||
	    m->index_off > m->data_end || table_bytes > m->data_end - m->index_off)
		return "index table outside the data or misaligned";
	if (m->redo_slot != SC_NO_REDO && m->redo_slot >= m->index_slots)
		return "redo slot outside the index";
	if (m->entries > m->index_slots || m->tombstones > m->index_slots - m->entries)
		return "entries and tombstones exceed the index slots";
	/* A writer could not commit past this without wrapping. */
	if (m->txnid >= UINT64_MAX - 1)
		return "transaction id at its limit";
	return NULL;
}

int sc_meta_sane(const struct sc_disk_meta *m, uint64_t file_size)
{
	return sc_meta_insane(m, file_size) == NULL;
}

int sc_meta_choose(const struct sc_disk_meta m[2], uint64_t size, struct sc_disk_meta *out)
{
	int ok[2];

	for (int i = 0; i < 2; i++)
		ok[i] = sc_meta_valid(&m[i]) && sc_meta_sane(&m[i], size) &&
			(m[i].txnid & 1) == (uint64_t)i;
	if (ok[0] && ok[1])
		*out = m[0].txnid > m[1].txnid ? m[0] : m[1];
	else if (ok[0])
		*out = m[0];
	else if (ok[1])
		*out = m[1];
	else
		return SC_ECORRUPT;
	return 0;
}

uint64_t sc_record_checksum(const struct sc_disk_record *r, const struct iovec *strings,
			    int n)
{
	struct sc_disk_record tmp = *r;
	XXH3_state_t st;

	tmp.checksum = 0;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, &tmp, sizeof(tmp));
	for (int i = 0; i < n; i++)
		XXH3_64bits_update(&st, strings[i].iov_base, strings[i].iov_len);
	return XXH3_64bits_digest(&st);
}

void sc_image_init(unsigned char page[SC_DATA_OFF], uint64_t index_off, uint64_t index_slots,
		   uint64_t data_end, uint64_t entries, uint64_t live_bytes)
{
	struct sc_disk_header h;
	struct sc_disk_meta m;

	memset(page, 0, SC_DATA_OFF);
	sc_header_init(&h);
	memcpy(page, &h, sizeof(h));
	memset(&m, 0, sizeof(m));
	m.data_end = data_end;
	m.index_off = index_off;
	m.index_slots = index_slots;
	m.entries = entries;
	m.live_bytes = live_bytes;
	m.redo_slot = SC_NO_REDO;
	m.committed_sec = h.created_sec;
	strncpy(m.lib_version, SC_VERSION_STRING, sizeof(m.lib_version) - 1);
	/* Slot 0 holds txn 0, slot 1 txn 1: whichever a reader picks, it
	 * finds the same state, and the first commit (txn 2) goes to slot 0. */
	for (int i = 0; i < 2; i++) {
		m.txnid = (uint64_t)i;
		m.checksum = sc_meta_checksum(&m);
		memcpy(page + (i ? SC_META1_OFF : SC_META0_OFF), &m, sizeof(m));
	}
}

int sc_record_check(const unsigned char *map, uint64_t data_end, uint64_t off,
		    int verified, struct sc_rec_view *v, const char **why)
{
	const struct sc_disk_record *r;
	uint64_t strings;
	const char *dummy;

	if (!why)
		why = &dummy;
	if (off < SC_DATA_OFF || off % SC_ALIGN || off >= data_end ||
	    data_end - off < sizeof(*r)) {
		*why = "offset outside the data or misaligned";
		return SC_ECORRUPT;
	}
	r = (const struct sc_disk_record *)(map + off);
	if (r->magic != SC_REC_MAGIC) {
		*why = "bad record magic";
		return SC_ECORRUPT;
	}
	if (r->rec_len > data_end - off || r->rec_len % SC_ALIGN) {
		*why = "rec_len past the committed data or misaligned";
		return SC_ECORRUPT;
	}
	if (r->key_len == 0 || r->key_len > SC_MAX_KEY) {
		*why = "key_len out of range";
		return SC_ECORRUPT;
	}
	strings = (uint64_t)r->key_len + r->tag_len + r->exe_id_len + r->exe_path_len;
	if (r->blob_off % SC_ALIGN || r->blob_off < sizeof(*r) + strings ||
	    r->blob_len > SC_MAX_BLOB || r->blob_off > r->rec_len ||
	    r->blob_len > r->rec_len - r->blob_off) {
		*why = "blob_off or blob_len outside the record";
		return SC_ECORRUPT;
	}
	if (!verified &&
	    r->checksum != sc_record_checksum(r, &(struct iovec){ (void *)(r + 1), strings }, 1)) {
		*why = "header checksum mismatch";
		return SC_ECORRUPT;
	}
	v->verified = verified;
	v->r = r;
	v->key = (const char *)(r + 1);
	v->tag = v->key + r->key_len;
	v->exe_id = v->tag + r->tag_len;
	v->exe_path = v->exe_id + r->exe_id_len;
	v->blob = (const unsigned char *)r + r->blob_off;
	return 0;
}

int sc_record_view(const unsigned char *map, uint64_t data_end, uint64_t off,
		   int verified, struct sc_rec_view *v)
{
	return sc_record_check(map, data_end, off, verified, v, NULL);
}
