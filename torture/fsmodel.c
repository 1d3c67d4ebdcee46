/*
 * fsmodel.c - record file-system operations in one directory and replay
 * the states a crash could leave behind (fsmodel.h has the model).
 */
#include "fsmodel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fprintf(stderr, "fsmodel: out of memory\n");
		abort();
	}
	return q;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xrealloc(NULL, n), s, n);
}

static void fail(struct fsm *m, const char *fmt, ...)
{
	va_list ap;

	if (m->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(m->error, sizeof(m->error), fmt, ap);
	va_end(ap);
}

void fsm_init(struct fsm *m, const char *dir)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->dir, sizeof(m->dir), "%s", dir);
}

void fsm_free(struct fsm *m)
{
	for (size_t i = 0; i < m->n_ops; i++) {
		free(m->ops[i].name);
		free(m->ops[i].name2);
	}
	free(m->ops);
	free(m->data);
	for (size_t i = 0; i < m->n_names; i++)
		free(m->names[i].name);
	free(m->names);
	memset(m, 0, sizeof(*m));
}

static struct fsm_op *push(struct fsm *m, enum fsm_kind kind)
{
	if (m->n_ops == m->cap_ops) {
		m->cap_ops = m->cap_ops ? 2 * m->cap_ops : 256;
		m->ops = xrealloc(m->ops, m->cap_ops * sizeof(*m->ops));
	}
	struct fsm_op *op = &m->ops[m->n_ops++];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->ino = -1;
	return op;
}

/* The name of @p path inside the recorded directory, or NULL. */
static const char *base_of(const struct fsm *m, const char *path)
{
	size_t n = strlen(m->dir);

	if (strncmp(path, m->dir, n) != 0 || path[n] != '/' || strchr(path + n + 1, '/'))
		return NULL;
	return path + n + 1;
}

static long find_name(const struct fsm_ent *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* Recording keeps its own list of names (owned copies). */
static void rec_set(struct fsm *m, const char *name, int ino)
{
	long i = find_name(m->names, m->n_names, name);
	if (i >= 0) {
		m->names[i].ino = ino;
		return;
	}
	m->names = xrealloc(m->names, (m->n_names + 1) * sizeof(*m->names));
	m->names[m->n_names++] = (struct fsm_ent){ xstrdup(name), ino };
}

static void rec_del(struct fsm *m, const char *name)
{
	long i = find_name(m->names, m->n_names, name);
	if (i < 0)
		return;
	free(m->names[i].name);
	m->names[i] = m->names[--m->n_names];
}

static int ino_of_fd(struct fsm *m, int fd, const char *what)
{
	if (fd < 0 || fd >= (int)(sizeof(m->fd_ino) / sizeof(m->fd_ino[0])) || !m->fd_ino[fd]) {
		fail(m, "%s on fd %d, which was not opened through the recorder", what, fd);
		return -1;
	}
	return m->fd_ino[fd] - 1;
}

void fsm_open(struct fsm *m, const char *path, int flags, int fd)
{
	const char *name = base_of(m, path);
	long i;

	if (fd < 0 || fd >= (int)(sizeof(m->fd_ino) / sizeof(m->fd_ino[0]))) {
		fail(m, "fd %d out of range", fd);
		return;
	}
	m->fd_ino[fd] = 0;
	if (flags & O_DIRECTORY)
		return; /* opened to be synced: fsm_dirsync records that */
	if (!name) {
		fail(m, "open of %s, outside %s", path, m->dir);
		return;
	}
	i = find_name(m->names, m->n_names, name);
	if (i < 0) {
		if (!(flags & O_CREAT)) {
			fail(m, "open of %s, which the recorder never saw made", path);
			return;
		}
		struct fsm_op *op = push(m, FSM_CREATE);
		op->ino = m->n_inodes++;
		op->name = xstrdup(name);
		rec_set(m, name, op->ino);
		i = find_name(m->names, m->n_names, name);
	}
	m->fd_ino[fd] = m->names[i].ino + 1;
}

void fsm_write(struct fsm *m, int fd, uint64_t off, const void *buf, size_t len)
{
	int ino = ino_of_fd(m, fd, "write");
	const unsigned char *p = buf;

	if (ino < 0)
		return;
	/* One piece per page: a cut may fall between them, and a page may
	 * reach the disk without the others. */
	while (len > 0) {
		size_t n = FSM_PAGE - (size_t)(off % FSM_PAGE);
		if (n > len)
			n = len;
		if (m->data_len + n > m->data_cap) {
			while (m->data_len + n > m->data_cap)
				m->data_cap = m->data_cap ? 2 * m->data_cap : 1 << 20;
			m->data = xrealloc(m->data, m->data_cap);
		}
		struct fsm_op *op = push(m, FSM_WRITE);
		op->ino = ino;
		op->off = off;
		op->len = n;
		op->data = m->data_len;
		memcpy(m->data + m->data_len, p, n);
		m->data_len += n;
		off += n;
		p += n;
		len -= n;
	}
}

void fsm_truncate(struct fsm *m, int fd, uint64_t len)
{
	int ino = ino_of_fd(m, fd, "truncate");
	if (ino < 0)
		return;
	struct fsm_op *op = push(m, FSM_TRUNC);
	op->ino = ino;
	op->off = len;
}

/* Self-test: pretend the program never made sync number skip_sync. */
static int skipped(struct fsm *m)
{
	return ++m->n_syncs == m->skip_sync;
}

void fsm_sync(struct fsm *m, int fd)
{
	int ino = ino_of_fd(m, fd, "fsync");
	if (ino < 0 || skipped(m))
		return;
	push(m, FSM_SYNC)->ino = ino;
}

void fsm_dirsync(struct fsm *m, const char *dir)
{
	if (strcmp(dir, m->dir) != 0) {
		fail(m, "fsync of directory %s, not %s", dir, m->dir);
		return;
	}
	if (!skipped(m))
		push(m, FSM_DIRSYNC);
}

static void two_names(struct fsm *m, enum fsm_kind kind, const char *from, const char *to)
{
	const char *a = base_of(m, from), *b = base_of(m, to);
	long i;

	if (!a || !b) {
		fail(m, "rename or link %s -> %s leaves %s", from, to, m->dir);
		return;
	}
	if ((i = find_name(m->names, m->n_names, a)) < 0) {
		fail(m, "rename or link of %s, which the recorder never saw made", from);
		return;
	}
	int ino = m->names[i].ino;
	struct fsm_op *op = push(m, kind);
	op->ino = ino;
	op->name = xstrdup(a);
	op->name2 = xstrdup(b);
	rec_set(m, b, ino);
	if (kind == FSM_RENAME)
		rec_del(m, a);
}

void fsm_rename(struct fsm *m, const char *from, const char *to)
{
	two_names(m, FSM_RENAME, from, to);
}

void fsm_link(struct fsm *m, const char *from, const char *to)
{
	two_names(m, FSM_LINK, from, to);
}

void fsm_unlink(struct fsm *m, const char *path)
{
	const char *a = base_of(m, path);
	if (!a) {
		fail(m, "unlink of %s, outside %s", path, m->dir);
		return;
	}
	push(m, FSM_UNLINK)->name = xstrdup(a);
	rec_del(m, a);
}

void fsm_mark(struct fsm *m, long mark)
{
	push(m, FSM_MARK)->mark = mark;
}

void fsm_inject(struct fsm *m, const char *name, uint64_t off, const void *buf, size_t len)
{
	long i = find_name(m->names, m->n_names, name);
	if (i < 0) {
		fail(m, "inject into %s, which does not exist", name);
		return;
	}
	/* Borrow the last fd slot (no real descriptor gets that high here)
	 * so that the write is split into pages like any other. */
	int fd = (int)(sizeof(m->fd_ino) / sizeof(m->fd_ino[0])) - 1, save = m->fd_ino[fd];
	m->fd_ino[fd] = m->names[i].ino + 1;
	fsm_write(m, fd, off, buf, len);
	push(m, FSM_SYNC)->ino = m->names[i].ino;
	m->fd_ino[fd] = save;
}

/* ---- states -------------------------------------------------------------- */

/* A file's bytes are shared with the durable state until a pending
 * operation changes them (cap 0 = borrowed). */
static void own(struct fsm_file *f)
{
	if (f->cap)
		return;
	unsigned char *b = xrealloc(NULL, f->len ? f->len : 1);
	if (f->len)
		memcpy(b, f->b, f->len);
	f->b = b;
	f->cap = f->len ? f->len : 1;
}

static void resize(struct fsm_file *f, uint64_t len)
{
	own(f);
	if (len > f->cap) {
		uint64_t cap = f->cap;
		while (cap < len)
			cap *= 2;
		f->b = xrealloc(f->b, cap);
		f->cap = cap;
	}
	if (len > f->len)
		memset(f->b + f->len, 0, len - f->len);
	f->len = len;
}

static void set_name(struct fsm_state *st, char *name, int ino)
{
	long i = find_name(st->names, st->n_names, name);
	if (i >= 0) {
		st->names[i].ino = ino;
		return;
	}
	st->names = xrealloc(st->names, (st->n_names + 1) * sizeof(*st->names));
	st->names[st->n_names++] = (struct fsm_ent){ name, ino };
}

static void del_name(struct fsm_state *st, const char *name)
{
	long i = find_name(st->names, st->n_names, name);
	if (i >= 0)
		st->names[i] = st->names[--st->n_names];
}

/* Apply op @p op; a WRITE only its first @p part bytes (torn) if nonzero. */
static void apply(const struct fsm *m, struct fsm_state *st, const struct fsm_op *op, uint64_t part)
{
	struct fsm_file *f = op->ino >= 0 ? &st->ino[op->ino] : NULL;
	long i;

	switch (op->kind) {
	case FSM_CREATE:
		if (find_name(st->names, st->n_names, op->name) < 0)
			set_name(st, op->name, op->ino);
		break;
	case FSM_WRITE: {
		uint64_t n = part ? part : op->len;
		if (f->len < op->off + n)
			resize(f, op->off + n);
		own(f);
		memcpy(f->b + op->off, m->data + op->data, n);
		break;
	}
	case FSM_TRUNC:
		resize(f, op->off);
		break;
	case FSM_RENAME:
		/* A subset may hold the rename without the create. */
		if ((i = find_name(st->names, st->n_names, op->name)) >= 0) {
			int ino = st->names[i].ino;
			del_name(st, op->name);
			set_name(st, op->name2, ino);
		}
		break;
	case FSM_LINK:
		if ((i = find_name(st->names, st->n_names, op->name)) >= 0 &&
		    find_name(st->names, st->n_names, op->name2) < 0)
			set_name(st, op->name2, st->names[i].ino);
		break;
	case FSM_UNLINK:
		del_name(st, op->name);
		break;
	case FSM_SYNC:
	case FSM_DIRSYNC:
	case FSM_MARK:
		break;
	}
}

static void state_free(struct fsm_state *st)
{
	for (int i = 0; i < st->n_ino; i++)
		if (st->ino[i].cap)
			free(st->ino[i].b);
	free(st->ino);
	free(st->names);
	memset(st, 0, sizeof(*st));
}

/* A copy whose files borrow @p from's bytes. */
static void state_borrow(struct fsm_state *to, const struct fsm_state *from)
{
	to->n_ino = from->n_ino;
	to->ino = xrealloc(NULL, (size_t)from->n_ino * sizeof(*to->ino));
	for (int i = 0; i < from->n_ino; i++)
		to->ino[i] = (struct fsm_file){ from->ino[i].b, from->ino[i].len, 0 };
	to->n_names = from->n_names;
	to->names = xrealloc(NULL, from->n_names * sizeof(*to->names));
	if (from->n_names) /* memcpy from NULL is undefined, even of 0 bytes */
		memcpy(to->names, from->names, from->n_names * sizeof(*to->names));
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct fsm_ent *)a)->name, ((const struct fsm_ent *)b)->name);
}

static uint64_t state_hash(struct fsm_state *st)
{
	uint64_t h = 0x5eed;

	qsort(st->names, st->n_names, sizeof(*st->names), by_name);
	for (size_t i = 0; i < st->n_names; i++) {
		const struct fsm_file *f = &st->ino[st->names[i].ino];
		h = XXH3_64bits_withSeed(st->names[i].name, strlen(st->names[i].name), h);
		h = XXH3_64bits_withSeed(f->b, f->len, h ^ (uint64_t)st->names[i].ino * 0x9e37);
	}
	return h;
}

static int is_dirop(enum fsm_kind k)
{
	return k == FSM_CREATE || k == FSM_RENAME || k == FSM_LINK || k == FSM_UNLINK;
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* States already tried, by hash of state and epoch (open addressing). */
struct seen { uint64_t *v; size_t cap, n; };

static int seen_add(struct seen *s, uint64_t h)
{
	if (!h)
		h = 1;
	if (2 * (s->n + 1) > s->cap) {
		struct seen t = { xrealloc(NULL, (s->cap ? 2 * s->cap : 4096) * sizeof(uint64_t)),
				  s->cap ? 2 * s->cap : 4096, 0 };
		memset(t.v, 0, t.cap * sizeof(uint64_t));
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i])
				seen_add(&t, s->v[i]);
		free(s->v);
		*s = t;
	}
	for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (s->v[i] == h)
			return 0;
		if (!s->v[i]) {
			s->v[i] = h;
			s->n++;
			return 1;
		}
	}
}

struct replay {
	const struct fsm *m;
	struct fsm_state dur;
	size_t *pend, n_pend;
	struct seen seen;
	fsm_epoch_fn epoch;
	fsm_check_fn fn;
	void *arg;
	struct fsm_stats *stats;
	size_t cut;
	uint64_t cut_epoch;
};

/* How much of a torn write reaches the disk: the sectors before the one
 * nearest its middle (a sector is written whole or not at all), or with
 * @p tear 1, half its bytes.  0: it cannot tear. */
static uint64_t torn_part(const struct fsm_op *op, int tear)
{
	uint64_t mid = op->off + op->len / 2, b;

	if (tear == 1)
		return op->len / 2;
	b = mid - mid % FSM_SECTOR;
	return b > op->off && b < op->off + op->len ? b - op->off : 0;
}

/* Try the durable state plus the pending ops @p sel selects, in the order
 * @p order gives (NULL: issue order); the last op torn if @p torn. */
static int try_state(struct replay *r, const unsigned char *sel, const size_t *order,
		     int torn, const char *what)
{
	struct fsm_state st;
	int rc = 0;

	state_borrow(&st, &r->dur);
	for (size_t k = 0; k < r->n_pend; k++) {
		size_t j = order ? order[k] : k;
		if (!sel[j])
			continue;
		const struct fsm_op *op = &r->m->ops[r->pend[j]];
		uint64_t part = torn && j == r->n_pend - 1 ? torn_part(op, r->m->tear) : 0;
		apply(r->m, &st, op, part);
	}
	r->stats->states++;
	if (seen_add(&r->seen, state_hash(&st) ^ (r->cut_epoch * 0x9e3779b97f4a7c15ull))) {
		r->stats->unique++;
		rc = r->fn(r->arg, r->cut, what, &st);
	} else {
		r->stats->skipped_same++;
	}
	state_free(&st);
	return rc;
}

static int cut_states(struct replay *r, int exhaustive, int samples, int reorders, uint64_t *rs)
{
	size_t n = r->n_pend;
	unsigned char *sel = xrealloc(NULL, n + 1);
	size_t *order = xrealloc(NULL, (n + 1) * sizeof(*order));
	int rc;

	r->stats->cuts++;
	if (n > r->stats->max_pending)
		r->stats->max_pending = n;
	memset(sel, 1, n);
	r->stats->full++;
	if ((rc = try_state(r, sel, NULL, 0, "every pending write")) != 0)
		goto out;
	if (n == 0)
		goto out;
	memset(sel, 0, n);
	r->stats->none++;
	if ((rc = try_state(r, sel, NULL, 0, "no pending write")) != 0)
		goto out;
	/* The newest write torn, with and without the rest. */
	if (r->m->ops[r->pend[n - 1]].kind == FSM_WRITE &&
	    torn_part(&r->m->ops[r->pend[n - 1]], r->m->tear) && r->pend[n - 1] == r->cut - 1) {
		memset(sel, 1, n);
		r->stats->torn += 2;
		if ((rc = try_state(r, sel, NULL, 1, "every pending write, the last torn")) != 0)
			goto out;
		memset(sel, 0, n);
		sel[n - 1] = 1;
		if ((rc = try_state(r, sel, NULL, 1, "only the last write, torn")) != 0)
			goto out;
	}
	if ((int)n <= exhaustive) {
		for (uint64_t mask = 1; mask + 1 < ((uint64_t)1 << n); mask++) {
			for (size_t j = 0; j < n; j++)
				sel[j] = (mask >> j) & 1;
			r->stats->subsets++;
			if ((rc = try_state(r, sel, NULL, 0, "a subset of the pending writes")) != 0)
				goto out;
		}
	} else {
		for (int s = 0; s < samples; s++) {
			for (size_t j = 0; j < n; j++)
				sel[j] = rnd(rs) & 1;
			r->stats->subsets++;
			if ((rc = try_state(r, sel, NULL, 0, "a random subset of the pending writes")) != 0)
				goto out;
		}
	}
	for (int s = 0; n >= 2 && s < reorders; s++) {
		for (size_t j = 0; j < n; j++) {
			sel[j] = (rnd(rs) & 3) != 0;
			order[j] = j;
		}
		for (size_t j = n - 1; j > 0; j--) {
			size_t k = rnd(rs) % (j + 1), t = order[j];
			order[j] = order[k];
			order[k] = t;
		}
		r->stats->reordered++;
		if ((rc = try_state(r, sel, order, 0, "pending writes reordered")) != 0)
			goto out;
	}
out:
	free(sel);
	free(order);
	return rc;
}

int fsm_replay(const struct fsm *m, int exhaustive, int samples, int reorders, uint64_t seed,
	       fsm_epoch_fn epoch, fsm_check_fn fn, void *arg, struct fsm_stats *stats)
{
	struct replay r = { .m = m, .epoch = epoch, .fn = fn, .arg = arg, .stats = stats };
	uint64_t rs = seed;
	int rc = 0;

	if (exhaustive > 20)
		exhaustive = 20;
	memset(stats, 0, sizeof(*stats));
	r.dur.n_ino = m->n_inodes;
	r.dur.ino = xrealloc(NULL, (size_t)m->n_inodes * sizeof(*r.dur.ino));
	for (int i = 0; i < m->n_inodes; i++)
		r.dur.ino[i] = (struct fsm_file){ xrealloc(NULL, 1), 0, 1 };
	r.pend = xrealloc(NULL, (m->n_ops + 1) * sizeof(*r.pend));
	for (size_t cut = 0;; cut++) {
		r.cut = cut;
		r.cut_epoch = epoch(arg, cut);
		if ((rc = cut_states(&r, exhaustive, samples, reorders, &rs)) != 0 || cut == m->n_ops)
			break;
		const struct fsm_op *op = &m->ops[cut];
		size_t k = 0;
		switch (op->kind) {
		case FSM_SYNC:
		case FSM_DIRSYNC:
			/* Make the pending operations it covers durable, in
			 * issue order; keep the others pending. */
			for (size_t j = 0; j < r.n_pend; j++) {
				const struct fsm_op *p = &m->ops[r.pend[j]];
				int covered = op->kind == FSM_SYNC ? !is_dirop(p->kind) && p->ino == op->ino
								   : is_dirop(p->kind);
				if (covered)
					apply(m, &r.dur, p, 0);
				else
					r.pend[k++] = r.pend[j];
			}
			r.n_pend = k;
			break;
		case FSM_MARK:
			break;
		default:
			r.pend[r.n_pend++] = cut;
		}
	}
	free(r.pend);
	free(r.seen.v);
	state_free(&r.dur);
	return rc;
}

/* ---- files ---------------------------------------------------------------- */

static int empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[8192];

	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
	return 0;
}

int fsm_materialize(const struct fsm_state *st, const char *dir)
{
	char p[8192], first[8192];
	int rc;

	if ((rc = empty_dir(dir)) != 0)
		return rc;
	for (size_t i = 0; i < st->n_names; i++) {
		const struct fsm_ent *e = &st->names[i];
		long k;
		snprintf(p, sizeof(p), "%s/%s", dir, e->name);
		for (k = 0; k < (long)i; k++)
			if (st->names[k].ino == e->ino)
				break;
		if (k < (long)i) {
			snprintf(first, sizeof(first), "%s/%s", dir, st->names[k].name);
			if (link(first, p) != 0)
				return -errno;
			continue;
		}
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		const struct fsm_file *f = &st->ino[e->ino];
		for (uint64_t done = 0; done < f->len;) {
			ssize_t n = write(fd, f->b + done, f->len - done);
			if (n <= 0) {
				rc = n < 0 ? -errno : -EIO;
				close(fd);
				return rc;
			}
			done += (uint64_t)n;
		}
		close(fd);
	}
	return 0;
}

int fsm_compare(const struct fsm *m, const char *dir, char *why, size_t len)
{
	struct fsm_state st = { 0 };
	char p[8192];
	int rc = 0;

	st.n_ino = m->n_inodes;
	st.ino = xrealloc(NULL, (size_t)m->n_inodes * sizeof(*st.ino));
	for (int i = 0; i < m->n_inodes; i++)
		st.ino[i] = (struct fsm_file){ xrealloc(NULL, 1), 0, 1 };
	for (size_t i = 0; i < m->n_ops; i++)
		apply(m, &st, &m->ops[i], 0);
	for (size_t i = 0; i < st.n_names && !rc; i++) {
		const struct fsm_file *f = &st.ino[st.names[i].ino];
		snprintf(p, sizeof(p), "%s/%s", dir, st.names[i].name);
		FILE *fp = fopen(p, "rb");
		unsigned char *b = xrealloc(NULL, f->len + 1);
		size_t got = fp ? fread(b, 1, f->len + 1, fp) : 0;
		if (!fp) {
			snprintf(why, len, "%s: in the model, not on disk", st.names[i].name);
			rc = -1;
		} else if (got != f->len || memcmp(b, f->b, f->len) != 0) {
			snprintf(why, len, "%s: %zu bytes on disk, %llu in the model%s",
				 st.names[i].name, got, (unsigned long long)f->len,
				 got == f->len ? ", contents differ" : "");
			rc = -1;
		}
		if (fp)
			fclose(fp);
		free(b);
	}
	DIR *d = opendir(dir);
	struct dirent *de;
	while (!rc && d && (de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    find_name(st.names, st.n_names, de->d_name) < 0) {
			snprintf(why, len, "%s: on disk, not in the model", de->d_name);
			rc = -1;
		}
	if (d)
		closedir(d);
	state_free(&st);
	return rc;
}

const char *fsm_describe(const struct fsm *m, size_t i, char *buf, size_t len)
{
	static const char *kinds[] = { "create", "write", "truncate", "fsync", "fsync dir",
				       "rename", "link", "unlink", "mark" };
	const struct fsm_op *op;

	if (i >= m->n_ops)
		return snprintf(buf, len, "(end)"), buf;
	op = &m->ops[i];
	switch (op->kind) {
	case FSM_WRITE:
		snprintf(buf, len, "write inode %d, %llu bytes at %llu", op->ino,
			 (unsigned long long)op->len, (unsigned long long)op->off);
		break;
	case FSM_TRUNC:
		snprintf(buf, len, "truncate inode %d to %llu", op->ino, (unsigned long long)op->off);
		break;
	case FSM_SYNC:
		snprintf(buf, len, "fsync inode %d", op->ino);
		break;
	case FSM_MARK:
		snprintf(buf, len, "mark %ld", op->mark);
		break;
	default:
		snprintf(buf, len, "%s %s%s%s (inode %d)", kinds[op->kind], op->name ? op->name : "",
			 op->name2 ? " -> " : "", op->name2 ? op->name2 : "", op->ino);
	}
	return buf;
}
