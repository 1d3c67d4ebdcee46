/*
 * txn.c - the writer's transaction: begin (locks, the newest commit, a heal
 * if the shard broke, the last commit's redo applied), the commit of a meta
 * slot, end.  Every operation that writes goes through here.
 *
 * Why a commit is one meta write: readers take the valid meta slot with the
 * highest transaction id, so until the new slot is written (and, in durable
 * mode, synced) they see the old state, and after it the new one; docs/
 * FORMAT.md has the crash argument.
 *
 * Three meta slots, so that a commit never overwrites the newest commit
 * (readers fall back to it while the new one is being written) nor the
 * newest commit known to be on disk with its data (a power loss falls back
 * to it): an SC_NOSYNC commit whose meta and data are not on disk yet may
 * come after it, and the next one would overwrite it with two slots
 * (docs/RELIABILITY.md, finding 13).
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sc_int.h"

/* Write in place what the committed meta's redo records name: the key
 * index slot (which readers also apply themselves) and the blob index slots
 * (which only writers read, always through sc_writer_begin, so always after
 * this). */
int sc_apply_redo(const struct sc_snap *s)
{
	int rc;

	if (s->meta.redo_slot != SC_NO_REDO) {
		struct sc_disk_slot want, have;
		uint64_t at = s->meta.index_off + s->meta.redo_slot * sizeof(struct sc_disk_slot);

		want.hash = s->meta.redo_hash;
		want.off = s->meta.redo_off;
		memcpy(&have, s->map + at, sizeof(have));
		if ((have.hash != want.hash || have.off != want.off) &&
		    (rc = sc_write_full(s->fd, &want, sizeof(want), at)) != 0)
			return rc;
	}
	for (uint64_t i = 0; i < s->meta.wredo_n; i++) {
		const struct sc_disk_wredo *w = &s->meta.wredo[i];

		if (memcmp(s->map + w->at, w->v, sizeof(w->v)) != 0 &&
		    (rc = sc_write_full(s->fd, w->v, sizeof(w->v), w->at)) != 0)
			return rc;
	}
	return 0;
}

/* The header is checked at open only; a refresh reads the metas.  A
 * header damaged since (a disk fault, a foreign write) leaves a file no new
 * handle can open, and the next one to open it read-write would set it
 * aside with everything committed meanwhile: so a writer checks it before
 * each commit (256 bytes from the mapping) and heals first. */
static int header_intact(const sc_cache *c)
{
	struct sc_disk_header h;

	memcpy(&h, c->maps->base, sizeof(h));
	return sc_header_check(&h, c->file_size);
}

int sc_writer_begin(sc_cache *c, struct sc_snap *s)
{
	int rc;

	if (c->disabled)
		return SC_EDISABLED;
	if (c->flags & SC_RDONLY)
		return SC_EREADONLY;
	pthread_mutex_lock(&c->wmutex);
	if ((rc = sc_lock_writer(c)) != 0) {
		pthread_mutex_unlock(&c->wmutex);
		return rc;
	}
	/* A handle opened before there was a file (sc_open() over lower
	 * shards) creates it now, at its first write; another process may
	 * have done so meanwhile (sc_create_shard() keeps theirs).  The
	 * refresh below then opens it. */
	if (c->unborn && (rc = sc_create_shard(c->path, 0)) != 0) {
		sc_writer_end(c);
		return rc;
	}
	/* Under the lock, make sure we write to the file that is at the path
	 * now and to its newest commit. */
	pthread_rwlock_wrlock(&c->rw);
	rc = sc_refresh_locked(c, 1);
	/* Still no file of its own (a name at the path that is none, or the
	 * new file removed at once): never write through the empty image. */
	if (rc == 0 && c->unborn)
		rc = -ENOENT;
	if (rc == 0)
		rc = header_intact(c);
	if (rc == 0 && c->legacy) {
		/* A version 1 shard: its first write rebuilds it as v2. */
		pthread_rwlock_unlock(&c->rw);
		rc = sc_upgrade_locked(c);
		pthread_rwlock_wrlock(&c->rw);
	}
	if (sc_heal_wanted(rc)) {
		/* Damaged beyond use since we opened it: heal without
		 * holding rw across the I/O, then write to the new file. */
		pthread_rwlock_unlock(&c->rw);
		int h = sc_heal_locked(c);
		pthread_rwlock_wrlock(&c->rw);
		if (h == 0)
			rc = sc_refresh_locked(c, 1);
	}
	if (rc == 0)
		sc_snap_fill_locked(c, s);
	pthread_rwlock_unlock(&c->rw);
	if (rc == 0 && !c->cleaned_temps) {
		sc_clean_temps(c->path);
		c->cleaned_temps = 1;
	}
	if (rc == 0)
		rc = sc_apply_redo(s);
	if (rc != 0)
		sc_writer_end(c);
	return rc;
}

void sc_writer_end(sc_cache *c)
{
	sc_unlock_writer(c);
	pthread_mutex_unlock(&c->wmutex);
}

/*
 * The slot for a new meta, given the slots as the file holds them (@p ok:
 * right checksum), the newest commit @p now and @p durable, the newest
 * commit known to be on disk with everything it names.  Kept: the slot of
 * @p now and the slot of the newest commit at or below @p durable (all of
 * them are on disk).  Of the others, the first choice is a slot that holds
 * no commit of this history (invalid, or a commit newer than @p now that a
 * power loss left without its data), then the oldest commit.
 */
static int meta_slot_for(const struct sc_disk_meta cur[SC_META_SLOTS], const int ok[SC_META_SLOTS],
			 uint64_t now, uint64_t durable)
{
	int keep_now = -1, keep_durable = -1, best = -1;
	uint64_t best_rank = 0;

	for (int i = 0; i < SC_META_SLOTS; i++) {
		if (!ok[i])
			continue;
		if (cur[i].txnid == now && keep_now < 0)
			keep_now = i;
		if (cur[i].txnid <= durable && cur[i].txnid <= now &&
		    (keep_durable < 0 || cur[i].txnid > cur[keep_durable].txnid))
			keep_durable = i;
	}
	for (int i = 0; i < SC_META_SLOTS; i++) {
		uint64_t rank = !ok[i] || cur[i].txnid > now ? 0 : cur[i].txnid + 1;

		if (i == keep_now || i == keep_durable)
			continue;
		if (best < 0 || rank < best_rank) {
			best = i;
			best_rank = rank;
		}
	}
	return best; /* three slots, at most two kept: always one */
}

static void read_slots(const struct sc_snap *s, struct sc_disk_meta cur[SC_META_SLOTS],
		       int ok[SC_META_SLOTS])
{
	for (int i = 0; i < SC_META_SLOTS; i++) {
		memcpy(&cur[i], s->map + sc_meta_off(i), sizeof(cur[i]));
		ok[i] = sc_meta_valid(&cur[i]);
	}
}

/* Under the writer lock nobody else writes the slots.  A slot may hold a
 * commit newer than the newest valid one, that a power loss left without
 * its data (readers refuse it while the file is shorter than its data_end,
 * and fell back to an older one): the next commit gets a higher id, or
 * that meta would win again once the file grows past its data_end. */
static uint64_t next_txnid(const struct sc_disk_meta cur[SC_META_SLOTS], const int ok[SC_META_SLOTS],
			   uint64_t now)
{
	uint64_t top = now;

	for (int i = 0; i < SC_META_SLOTS; i++)
		if (ok[i] && cur[i].txnid > top && cur[i].txnid < SC_PIN_BASE - 2)
			top = cur[i].txnid;
	return top + 1;
}

uint64_t sc_next_txnid(const struct sc_snap *s)
{
	struct sc_disk_meta cur[SC_META_SLOTS];
	int ok[SC_META_SLOTS];

	read_slots(s, cur, ok);
	return next_txnid(cur, ok, s->meta.txnid);
}

int sc_commit_meta(sc_cache *c, const struct sc_snap *s, struct sc_disk_meta *m)
{
	struct sc_disk_meta cur[SC_META_SLOTS];
	int ok[SC_META_SLOTS], slot, rc;

	read_slots(s, cur, ok);
	m->txnid = next_txnid(cur, ok, s->meta.txnid);
	if (c->flags & SC_NOSYNC)
		m->flags &= ~(uint64_t)SC_META_SYNCED;
	else
		m->flags |= SC_META_SYNCED;
	m->committed_sec = (int64_t)time(NULL);
	memset(m->lib_version, 0, sizeof(m->lib_version));
	strncpy(m->lib_version, SC_VERSION_STRING, sizeof(m->lib_version) - 1);
	/* Counts in a hostile file can be off; never write a commit that
	 * readers would refuse (they would silently keep the old state). */
	if (!sc_meta_sane(m, m->data_end > s->file_size ? m->data_end : s->file_size))
		return SC_ECORRUPT;
	/* The previous commit's slot write (its redo, applied in place by
	 * sc_writer_begin or after that commit) is durable only after the
	 * next fdatasync, and this meta drops that redo.  Were this meta to
	 * reach the disk first, a power loss would undo the previous commit:
	 * a removed key back, a replaced one old, a new one gone.  A durable
	 * commit's own fdatasync orders them; an SC_NOSYNC commit right
	 * after a durable one (another handle, another process) must sync
	 * once too, or it would take back what that one acknowledged.  After
	 * an SC_NOSYNC commit there is nothing durable to keep. */
	if (!(c->flags & SC_NOSYNC) ||
	    ((s->meta.flags & SC_META_SYNCED) &&
	     (s->meta.redo_slot != SC_NO_REDO || s->meta.wredo_n > 0))) {
		if ((rc = sc_fdatasync(s->fd)) != 0)
			return rc;
		/* Every earlier commit is on disk now (space reuse asks). */
		m->durable_txn = s->meta.txnid;
		m->unsynced_free = 0;
	}
	/* A durable commit is on disk once this returns: if a power loss
	 * keeps this meta, it keeps all it names (the sync above). */
	if (!(c->flags & SC_NOSYNC))
		m->durable_txn = m->txnid;
	/* Never over the newest commit, nor over the newest one on disk:
	 * after a durable commit, SC_NOSYNC commits take turns in the two
	 * other slots, unsynced, and a power loss anywhere in that run still
	 * finds the durable one whole (finding 13).  A durable commit has
	 * just synced the newest one, so only that is kept. */
	slot = meta_slot_for(cur, ok, s->meta.txnid, m->durable_txn);
	m->checksum = sc_meta_checksum(m);
	rc = sc_write_full(s->fd, m, sizeof(*m), sc_meta_off(slot));
	if (rc != 0)
		return rc;
	if (!(c->flags & SC_NOSYNC) && (rc = sc_fdatasync(s->fd)) != 0)
		return rc;
	return 0;
}
