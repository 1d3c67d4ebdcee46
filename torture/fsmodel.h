/*
 * fsmodel.h - a recorded sequence of file-system operations in one
 * directory, and the states a crash could leave it in (torture/crashsim.c
 * uses it; it knows nothing of scriptcache, so another format can reuse it).
 *
 * The model, as ALICE and SQLite's crash tests have it:
 *  - a file's writes reach the disk in any order and any subset until an
 *    fsync/fdatasync of that file, which makes all of them durable;
 *  - writes are recorded in pieces that never cross a 4 KiB page, so a cut
 *    can fall inside a large write and a page of it can be lost alone;
 *  - creating, renaming, linking and unlinking names are durable only after
 *    an fsync of the directory; before it any subset of them may survive;
 *  - a write in flight at the cut may be torn at a 512-byte sector
 *    boundary (sectors are written whole), or anywhere with tear = 1;
 *  - a process crash (SIGKILL) loses nothing that was written: the cut with
 *    every pending operation applied is that case.
 */
#ifndef SC_FSMODEL_H
#define SC_FSMODEL_H

#include <stddef.h>
#include <stdint.h>

#define FSM_PAGE 4096u
#define FSM_SECTOR 512u

enum fsm_kind {
	FSM_CREATE,   /* name -> new empty inode */
	FSM_WRITE,    /* inode: len bytes at off */
	FSM_TRUNC,    /* inode: size := off */
	FSM_SYNC,     /* inode: every earlier write durable */
	FSM_DIRSYNC,  /* every earlier name operation durable */
	FSM_RENAME,   /* name -> name2, replacing it */
	FSM_LINK,     /* name2 := name's inode */
	FSM_UNLINK,   /* name */
	FSM_MARK,     /* a point the caller named (not a file operation) */
};

struct fsm_op {
	enum fsm_kind kind;
	int ino;
	uint64_t off, len;
	size_t data;          /* WRITE: offset of its bytes in fsm.data */
	char *name, *name2;
	long mark;
};

struct fsm {
	char dir[4096];       /* the directory recorded; other paths are errors */
	struct fsm_op *ops;
	size_t n_ops, cap_ops;
	unsigned char *data;
	size_t data_len, data_cap;
	/* recording: what the directory holds now */
	int fd_ino[4096];     /* fd -> inode + 1; 0 unknown */
	struct fsm_ent { char *name; int ino; } *names;
	size_t n_names;
	int n_inodes;
	char error[512];      /* first thing the recorder could not model */
	long skip_sync;       /* self-test: leave out the sync with this number (1-based) */
	long n_syncs;
	int tear;             /* 0: torn writes keep whole sectors; 1: any byte */
};

void fsm_init(struct fsm *m, const char *dir);
void fsm_free(struct fsm *m);
/* Recording; @p path is absolute.  Paths outside the directory are errors,
 * except directories opened to be synced. */
void fsm_open(struct fsm *m, const char *path, int flags, int fd);
void fsm_write(struct fsm *m, int fd, uint64_t off, const void *buf, size_t len);
void fsm_truncate(struct fsm *m, int fd, uint64_t len);
void fsm_sync(struct fsm *m, int fd);
void fsm_dirsync(struct fsm *m, const char *dir);
void fsm_rename(struct fsm *m, const char *from, const char *to);
void fsm_link(struct fsm *m, const char *from, const char *to);
void fsm_unlink(struct fsm *m, const char *path);
void fsm_mark(struct fsm *m, long mark);
/* A write the program under test did not make (a disk fault), durable at
 * once; the file must exist. */
void fsm_inject(struct fsm *m, const char *name, uint64_t off, const void *buf, size_t len);

/* One crash state: names and file contents. */
struct fsm_file { unsigned char *b; uint64_t len, cap; };
struct fsm_state {
	struct fsm_file *ino;
	int n_ino;
	struct fsm_ent *names;   /* names point into the ops; not owned */
	size_t n_names;
};

/*
 * Walk every cut point: before op 0, and after each op.  For each, @p fn is
 * called with the cut (ops [0, cut) were issued) and each crash state to
 * try; it returns 0 to go on.  What is tried at each cut: every pending
 * operation applied (a process crash), none (a power loss right after the
 * last syncs), the last write torn in half, every subset of the pending
 * operations if there are at most @p exhaustive of them, else @p samples
 * random subsets; and @p reorders random orders of a subset.  States equal
 * to one already tried at the same @p epoch (the caller's oracle for the
 * cut) are skipped.
 */
struct fsm_stats {
	uint64_t cuts, states, unique, skipped_same, max_pending;
	uint64_t full, none, torn, subsets, reordered;
};
typedef int (*fsm_check_fn)(void *arg, size_t cut, const char *what,
			    const struct fsm_state *st);
typedef uint64_t (*fsm_epoch_fn)(void *arg, size_t cut);
int fsm_replay(const struct fsm *m, int exhaustive, int samples, int reorders, uint64_t seed,
	       fsm_epoch_fn epoch, fsm_check_fn fn, void *arg, struct fsm_stats *stats);

/* Write @p st into @p dir (emptied first), names as hard links of their
 * inode's file, mode 0600.  @return 0 or -errno. */
int fsm_materialize(const struct fsm_state *st, const char *dir);
/* The state with every recorded operation applied must equal @p dir: a
 * check that the recording missed nothing.  @return 0, or -1 with @p why. */
int fsm_compare(const struct fsm *m, const char *dir, char *why, size_t len);
/* Describe op @p i in @p buf. */
const char *fsm_describe(const struct fsm *m, size_t i, char *buf, size_t len);

#endif
