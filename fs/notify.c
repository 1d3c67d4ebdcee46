/*
 * notify.c - keeping the kernel's caches coherent with the shard.
 *
 * One thread, the watcher, owns every kernel notification.  It wakes on
 *   - inotify events for the shard (its directory is watched, so that a
 *     shard replaced by rename after a compaction or clear is seen too),
 *   - inotify events in the directories of the sources and writer
 *     executables of the entries the kernel knows,
 *   - an eventfd poked by request handlers that queued a notification,
 *   - a 25 ms tick, which also polls the shard's commit counter (a writer
 *     on another filesystem namespace, or an event lost to queue overflow,
 *     is still seen within the 100 ms the mount promises).
 * It then re-reads every entry directory the kernel holds (fs_resync_dir),
 * which queues notifications for what changed, unless the shard changed
 * only by the daemon's own commits, which fs_commit has applied already;
 * and it sends the queue with no lock held: fuse_lowlevel_notify_* must
 * never run inside a handler or under a lock a handler needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xxhash.h>

#include "fs_i.h"

#define TICK_MS        25
#define TRIM_EVERY_S   2.0
#define SRC_MASK  (IN_ATTRIB | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | \
		   IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

void fs_note(struct fs *fs, enum fs_note_kind kind, uint64_t parent, uint64_t child,
	     const char *name)
{
	size_t nl = name ? strlen(name) : 0;
	struct fs_note *t = malloc(sizeof *t + nl + 1);
	if (!t)
		return; /* the next resync or timeout repairs it */
	t->t_kind = kind;
	t->t_parent = parent;
	t->t_child = child;
	t->t_next = NULL;
	memcpy(t->t_name, name ? name : "", nl + 1);
	pthread_mutex_lock(&fs->fs_qlock);
	if (kind == FS_NOTE_ATTR) {
		t->t_next = fs->fs_ahead;
		fs->fs_ahead = t;
	} else {
		*fs->fs_qtail = t;
		fs->fs_qtail = &t->t_next;
	}
	pthread_mutex_unlock(&fs->fs_qlock);
}

/*
 * Send the queued attribute-only invalidations.  Unlike the others, the
 * kernel takes no inode or page lock for them, so any thread may send them
 * at any time: a request handler whose change altered other inodes'
 * attributes (a link count, linking or unlinking a name) sends them before
 * its reply, so that a stat(2) right after the call sees them.  No lock
 * held.
 */
void fs_send_attr_notes(struct fs *fs)
{
	pthread_mutex_lock(&fs->fs_qlock);
	struct fs_note *t = fs->fs_ahead;
	fs->fs_ahead = NULL;
	pthread_mutex_unlock(&fs->fs_qlock);
	while (t) {
		struct fs_note *next = t->t_next;
		fuse_lowlevel_notify_inval_inode(fs->fs_se, t->t_parent, -1, 0);
		FS_COUNT(fs, st_notes, 1);
		free(t);
		t = next;
	}
}

void fs_wake(struct fs *fs)
{
	uint64_t one = 1;
	if (fs->fs_wake >= 0 && write(fs->fs_wake, &one, sizeof one) < 0) {
		/* counter full: the watcher is awake anyway */
	}
}

static int path_under(const char *path, size_t len, const char *dir)
{
	size_t dl = strlen(dir);
	return len >= dl && memcmp(path, dir, dl) == 0 && (len == dl || path[dl] == '/');
}

static int watch_dir_of(struct fs *fs, const char *path, size_t len)
{
	char dir[PATH_MAX];
	size_t i = len;
	while (i > 0 && path[i - 1] != '/')
		i--;
	if (i == 0 || i >= sizeof dir)
		return 0;
	if (i == 1)
		i = 2; /* "/" */
	memcpy(dir, path, i - 1);
	dir[i - 1] = '\0';
	if (dir[0] == '\0')
		strcpy(dir, "/");
	/* a source inside our own mount would make us call into ourselves */
	if (path_under(dir, strlen(dir), fs->fs_o.o_mountpoint))
		return 0;
	return inotify_add_watch(fs->fs_inotify, dir, SRC_MASK) >= 0;
}

int fs_watch_entry(struct fs *fs, const sc_entry_info *e)
{
	int ok = 1;
	if (fs->fs_inotify < 0)
		return 0;
	if (e->has_source) {
		char buf[SC_MAX_KEY + 1];
		size_t klen;
		const char *key = fs_entry_key(e, buf, &klen);
		ok &= key && watch_dir_of(fs, key, klen);
	}
	if (e->exe_path_len > 0)
		ok &= watch_dir_of(fs, e->exe_path, e->exe_path_len);
	return ok;
}

static void send_notes(struct fs *fs)
{
	pthread_mutex_lock(&fs->fs_qlock);
	struct fs_note *t = fs->fs_qhead;
	fs->fs_qhead = NULL;
	fs->fs_qtail = &fs->fs_qhead;
	pthread_mutex_unlock(&fs->fs_qlock);
	fs_send_attr_notes(fs);
	while (t) {
		struct fs_note *next = t->t_next;
		switch (t->t_kind) {
		case FS_NOTE_ENTRY:
			fuse_lowlevel_notify_inval_entry(fs->fs_se, t->t_parent, t->t_name,
							 strlen(t->t_name));
			break;
		case FS_NOTE_DELETE:
			fuse_lowlevel_notify_delete(fs->fs_se, t->t_parent, t->t_child,
						    t->t_name, strlen(t->t_name));
			break;
		case FS_NOTE_INODE:
			fuse_lowlevel_notify_inval_inode(fs->fs_se, t->t_parent, 0, 0);
			break;
		case FS_NOTE_ATTR: /* on fs_ahead (fs_send_attr_notes) */
			break;
		}
		FS_COUNT(fs, st_notes, 1);
		free(t);
		t = next;
	}
}

struct known {
	uint64_t ino;
	char *key;
};

/* Re-read every entry directory the kernel knows. */
static void resync(struct fs *fs, int check_status)
{
	struct known *v;
	size_t n = 0;
	FS_COUNT(fs, st_resyncs, 1);
	pthread_mutex_lock(&fs->fs_lock);
	v = malloc((fs->fs_kcount + 1) * sizeof(*v));
	if (v) {
		for (size_t i = 0; i < fs->fs_kcap; i++)
			for (struct fs_node *d = fs->fs_ktab[i]; d; d = d->n_knext) {
				v[n].ino = d->n_ino;
				v[n].key = strdup(d->n_key);
				if (v[n].key)
					n++;
			}
	}
	pthread_mutex_unlock(&fs->fs_lock);
	for (size_t i = 0; i < n; i++) {
		fs_resync_dir(fs, v[i].ino, v[i].key, check_status);
		free(v[i].key);
	}
	free(v);
}

/*
 * The state of the lower shards, folded into one number: a lower shard
 * replaced (a package upgrade), fixed or become unusable changes it.
 * Asking also drives the library's once-a-second path check of each lower
 * shard, which lookups alone would only make when someone asks for a key.
 */
static uint64_t lower_state(struct fs *fs)
{
	uint64_t h = 0;
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	for (int i = 1, n = sc_layer_count(fs->fs_cache); i < n; i++) {
		sc_layer_info li;
		if (sc_get_layer_info(fs->fs_cache, i, &li) != 0)
			continue;
		uint64_t v[4] = { li.shard_id, (uint64_t)(int64_t)li.status, li.entries,
				  li.file_size };
		h = XXH3_64bits_withSeed(v, sizeof v, h);
	}
	pthread_rwlock_unlock(&fs->fs_map_lock);
	return h;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *watcher(void *arg)
{
	struct fs *fs = arg;
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	uint64_t last_gen = 0, last_size = 0, last_shard = 0, last_own = 0;
	double last_trim = now_s(), last_idle = 0, deferred_since = 0;
	int need_trim = 0, tree_dirty = 0, lowers = sc_layer_count(fs->fs_cache) > 1;
	uint64_t last_lower = lowers ? lower_state(fs) : 0;
	sc_stats s;

	last_own = __atomic_load_n(&fs->fs_puts_done, __ATOMIC_SEQ_CST);
	if (sc_get_stats(fs->fs_cache, &s) == 0) {
		last_gen = s.generation;
		last_size = s.file_size;
		last_shard = s.shard_id;
	}
	if (!fs->fs_o.o_commit_on_close) {
		/* Teach the kernel at once that OPEN and FLUSH are not
		 * implemented, so the first file a user creates already gets
		 * the same treatment as every later one. */
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", fs->fs_o.o_mountpoint, FS_STATS_NAME);
		/* From a child process, never from a thread of ours: a thread
		 * blocked in a request to its own mount keeps a SIGKILLed
		 * daemon from ever exiting (the request can only be answered
		 * by the process that is dying).  A child that holds no
		 * descriptor of the session just gets ENOTCONN. */
		pid_t pid = fork();
		if (pid == 0) {
			/* Not even the /dev/fuse descriptor: while the child
			 * holds it, a dead daemon's connection never aborts. */
			close_range(3, ~0u, 0);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0)
				close(fd);
			_exit(0);
		}
		if (pid > 0)
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
	}
	/* Only now may the command that mounted us return: an unmount
	 * issued right after it must not find our open file busy. */
	fs_report_ready(fs, 1);
	while (!fs->fs_stop) {
		struct pollfd pfd[2] = {
			{ .fd = fs->fs_wake, .events = POLLIN },
			{ .fd = fs->fs_inotify, .events = POLLIN },
		};
		int shard_dirty = 0, src_dirty = 0;
		int r = poll(pfd, fs->fs_inotify >= 0 ? 2 : 1, TICK_MS);
		if (r < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN) {
			uint64_t cnt;
			if (read(fs->fs_wake, &cnt, sizeof cnt) < 0) {
				/* spurious */
			}
		}
		if (fs->fs_inotify >= 0 && (pfd[1].revents & POLLIN)) {
			ssize_t len;
			while ((len = read(fs->fs_inotify, buf, sizeof buf)) > 0) {
				for (char *p = buf; p < buf + len;) {
					struct inotify_event *ev = (struct inotify_event *)p;
					if (ev->mask & IN_Q_OVERFLOW)
						shard_dirty = src_dirty = 1;
					else if (ev->wd == fs->fs_shard_wd && ev->len &&
						 strncmp(ev->name, fs->fs_shard_base,
							 strlen(fs->fs_shard_base)) == 0)
						; /* the shard (its state is read below, every
						   * round) and its lock and temporary files */
					else
						src_dirty = 1;
					p += sizeof *ev + ev->len;
				}
			}
		}
		if (fs->fs_stop)
			break;
		/*
		 * Did anyone but us commit?  Every commit moves the generation
		 * (a replaced file, the shard id), so the shard's state is the
		 * truth, an inotify event only a reason to look.  Our own count
		 * is read first: each put it counts is in the state read after
		 * it, so a generation that moved by exactly that count moved by
		 * our commits alone.  fs_commit has applied those to their
		 * directories already; resyncing every directory the kernel
		 * knows after each of them made n writes cost O(n^2).
		 */
		uint64_t own = __atomic_load_n(&fs->fs_puts_done, __ATOMIC_SEQ_CST);
		double t = now_s();
		if (sc_get_stats(fs->fs_cache, &s) == 0 &&
		    (s.generation != last_gen || s.file_size != last_size ||
		     s.shard_id != last_shard)) {
			int ours = s.shard_id == last_shard && s.generation - last_gen == own - last_own;
			/* puts of ours begun before the state was read and not
			 * counted in own: one of them may be what we cannot
			 * explain (a put under way, or one that ended since) */
			uint64_t begun = __atomic_load_n(&fs->fs_puts_begun, __ATOMIC_SEQ_CST);
			uint64_t failed = __atomic_load_n(&fs->fs_puts_failed, __ATOMIC_SEQ_CST);
			int uncounted = begun - failed != own;
			need_trim = 1; /* the file may have grown or been replaced */
			if (!ours && uncounted && (deferred_since == 0 || t - deferred_since < 0.05)) {
				/* look again when that commit wakes us, within the
				 * coherence window either way */
				if (deferred_since == 0)
					deferred_since = t;
			} else {
				shard_dirty |= !ours;
				last_gen = s.generation;
				last_size = s.file_size;
				last_shard = s.shard_id;
				last_own = own;
				deferred_since = 0;
			}
		}
		if (lowers) {
			uint64_t ls = lower_state(fs);
			if (ls != last_lower) {
				/* every entry may have changed: as for another
				 * writer's commit, plus the listing and the tree */
				last_lower = ls;
				__atomic_add_fetch(&fs->fs_lower_gen, 1, __ATOMIC_SEQ_CST);
				shard_dirty = need_trim = 1;
			}
		}
		if (shard_dirty || src_dirty) {
			resync(fs, src_dirty);
			tree_dirty |= shard_dirty;
			if (shard_dirty) {
				need_trim = 1;
				pthread_mutex_lock(&fs->fs_lock);
				clock_gettime(CLOCK_REALTIME, &fs->fs_root_mtime);
				pthread_mutex_unlock(&fs->fs_lock);
				fs_note(fs, FS_NOTE_INODE, FS_INO_ROOT, 0, NULL);
			}
		}
		if (tree_dirty && fs_tree_sync(fs, 0) != -EAGAIN)
			tree_dirty = 0;
		send_notes(fs);

		if (t - last_idle >= 0.1) {
			last_idle = t;
			fs_commit_idle(fs, 0);
			send_notes(fs);
		}
		/* Release mappings left behind by growth or compaction, at most
		 * every TRIM_EVERY_S; never wait for readers (trywrlock). */
		if (need_trim && t - last_trim >= TRIM_EVERY_S &&
		    pthread_rwlock_trywrlock(&fs->fs_map_lock) == 0) {
			sc_trim(fs->fs_cache);
			fs->fs_epoch++;
			pthread_rwlock_unlock(&fs->fs_map_lock);
			FS_COUNT(fs, st_trims, 1);
			need_trim = 0;
			last_trim = t;
		}
	}
	return NULL;
}

int fs_watcher_start(struct fs *fs)
{
	const char *path = sc_path(fs->fs_cache);
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];

	fs->fs_qhead = NULL;
	fs->fs_qtail = &fs->fs_qhead;
	fs->fs_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fs->fs_wake < 0)
		return -errno;
	fs->fs_inotify = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	fs->fs_shard_wd = -1;
	fs->fs_shard_base = strdup(slash ? slash + 1 : path);
	if (fs->fs_inotify >= 0 && slash) {
		size_t dl = (size_t)(slash - path);
		if (dl == 0)
			dl = 1;
		if (dl < sizeof dir) {
			memcpy(dir, path, dl);
			dir[dl] = '\0';
			fs->fs_shard_wd = inotify_add_watch(fs->fs_inotify, dir,
				IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE |
				IN_DELETE | IN_ATTRIB | IN_ONLYDIR);
		}
	}
	int r = pthread_create(&fs->fs_watcher, NULL, watcher, fs);
	if (r)
		return -r;
	fs->fs_watcher_up = 1;
	return 0;
}

void fs_watcher_stop(struct fs *fs)
{
	if (fs->fs_watcher_up) {
		fs->fs_stop = 1;
		fs_wake(fs);
		pthread_join(fs->fs_watcher, NULL);
		fs->fs_watcher_up = 0;
	}
	/* drop notifications nobody will send */
	struct fs_note *t = fs->fs_qhead;
	while (t) {
		struct fs_note *next = t->t_next;
		free(t);
		t = next;
	}
	fs->fs_qhead = NULL;
	fs->fs_qtail = &fs->fs_qhead;
	for (t = fs->fs_ahead; t; ) {
		struct fs_note *next = t->t_next;
		free(t);
		t = next;
	}
	fs->fs_ahead = NULL;
	if (fs->fs_inotify >= 0)
		close(fs->fs_inotify);
	if (fs->fs_wake >= 0)
		close(fs->fs_wake);
	fs->fs_inotify = fs->fs_wake = -1;
	free(fs->fs_shard_base);
	fs->fs_shard_base = NULL;
}
