/*
 * fingerprint.c - the identity of an interpreter executable.
 *
 * An entry is only usable by the build that wrote it.  The running
 * executable's identity comes from its ELF GNU build-id note, read from the
 * already-mapped program headers (dl_iterate_phdr: no system call); when the
 * binary has no build-id, its size and mtime stand in.  The same identity can
 * be computed for any executable on disk by parsing its notes, so that a tool
 * that is not the interpreter (the CLI, the mount) can tell whether the
 * writer of an entry has since been rebuilt.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc_int.h"

#if UINTPTR_MAX > 0xffffffffu
typedef Elf64_Ehdr sc_ehdr;
typedef Elf64_Phdr sc_phdr;
typedef Elf64_Nhdr sc_nhdr;
#define SC_ELFCLASS ELFCLASS64
#else
typedef Elf32_Ehdr sc_ehdr;
typedef Elf32_Phdr sc_phdr;
typedef Elf32_Nhdr sc_nhdr;
#define SC_ELFCLASS ELFCLASS32
#endif

#define NOTE_ALIGN(x) (((x) + 3u) & ~(size_t)3u)

/* Find the GNU build-id in a buffer of notes; returns its length or 0. */
static size_t find_build_id(const unsigned char *p, size_t len, const unsigned char **id)
{
	size_t pos = 0;

	while (len - pos >= sizeof(sc_nhdr)) {
		sc_nhdr n;
		size_t name, desc;

		memcpy(&n, p + pos, sizeof(n));
		pos += sizeof(n);
		name = NOTE_ALIGN((size_t)n.n_namesz);
		desc = NOTE_ALIGN((size_t)n.n_descsz);
		if (name > len - pos || desc > len - pos - name)
			return 0;
		if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 &&
		    memcmp(p + pos, "GNU", 4) == 0 && n.n_descsz > 0 && n.n_descsz <= 64) {
			*id = p + pos + name;
			return n.n_descsz;
		}
		pos += name + desc;
	}
	return 0;
}

static int format_build_id(const unsigned char *id, size_t n, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t need = 9 + 2 * n + 1;

	if (len < need)
		return -ENAMETOOLONG;
	memcpy(buf, "build-id:", 9);
	for (size_t i = 0; i < n; i++) {
		buf[9 + 2 * i] = hex[id[i] >> 4];
		buf[10 + 2 * i] = hex[id[i] & 15];
	}
	buf[need - 1] = '\0';
	return 0;
}

static int format_stat(const struct stat *st, char *buf, size_t len)
{
	int n = snprintf(buf, len, "stat:%lld:%lld.%09ld", (long long)st->st_size,
			 (long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- the running executable ---- */

/* Together, so that the first lookup of a fresh process touches one page
 * of .bss for them, not two. */
static struct {
	pthread_once_t once, path_once;
	char id[SC_IDENTITY_MAX];
} self = { .once = PTHREAD_ONCE_INIT, .path_once = PTHREAD_ONCE_INIT };
static char self_path[PATH_MAX];

struct phdr_arg {
	char *buf;
	size_t len;
	int found;
};

static int main_object_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct phdr_arg *a = arg;
	(void)size;

	/* The first object dl_iterate_phdr reports is the main program. */
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const unsigned char *id;
		size_t n;

		if (ph->p_type != PT_NOTE)
			continue;
		n = find_build_id((const unsigned char *)(info->dlpi_addr + ph->p_vaddr),
				  ph->p_memsz, &id);
		if (n && format_build_id(id, n, a->buf, a->len) == 0) {
			a->found = 1;
			break;
		}
	}
	return 1;
}

static void self_init(void)
{
	struct phdr_arg a = { self.id, sizeof(self.id), 0 };

	dl_iterate_phdr(main_object_cb, &a);
	if (!a.found) {
		struct stat st;
		if (stat("/proc/self/exe", &st) != 0 || format_stat(&st, self.id, sizeof(self.id)))
			strcpy(self.id, "unknown");
	}
}

const char *sc_self_identity(size_t *len)
{
	pthread_once(&self.once, self_init);
	if (len)
		*len = strlen(self.id);
	return self.id;
}

/*
 * The path recorded as an entry's writer must lead, from this process's
 * root, to the running executable: other processes check it to tell a
 * rebuilt writer from a live one.  /proc/self/exe does not always give
 * that.  In a chroot that then unshared its mount namespace (a container
 * setting up its mounts, a sandbox) the kernel spells the path from the
 * root of the original namespace ("/var/lib/machines/x/usr/bin/lua5.4"),
 * which does not exist from here; every entry written would then look
 * stale to the CLI and the mount.  So keep the path only if it names the
 * executable itself (same device and inode as /proc/self/exe), else the
 * first of its tails that does ("/b/c" and "/c" for "/a/b/c"), else the
 * kernel's text as it is (a deleted or unreachable executable).
 */
static void self_path_init(void)
{
	struct stat self, st;
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);

	if (n < 0)
		n = 0;
	self_path[n] = '\0';
	if (self_path[0] != '/' || stat("/proc/self/exe", &self) != 0)
		return;
	for (const char *p = self_path; p; p = strchr(p + 1, '/')) {
		if (stat(p, &st) == 0 && st.st_dev == self.st_dev && st.st_ino == self.st_ino) {
			memmove(self_path, p, strlen(p) + 1);
			return;
		}
	}
}

const char *sc_self_path(size_t *len)
{
	pthread_once(&self.path_once, self_path_init);
	if (len)
		*len = strlen(self_path);
	return self_path;
}

/* ---- an executable on disk ---- */

static int read_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int elf_build_id(int fd, const struct stat *st, char *buf, size_t len)
{
	sc_ehdr eh;
	int rc = 1;

	if (read_full(fd, &eh, sizeof(eh), 0) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != SC_ELFCLASS ||
	    eh.e_phentsize != sizeof(sc_phdr) || eh.e_phnum == 0 || eh.e_phnum > 512)
		return 1;
	for (unsigned i = 0; i < eh.e_phnum && rc == 1; i++) {
		sc_phdr ph;
		unsigned char *notes;
		const unsigned char *id;
		size_t n;

		if (read_full(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))))
			return 1;
		if (ph.p_type != PT_NOTE || ph.p_filesz == 0 || ph.p_filesz > 65536 ||
		    ph.p_offset > (uint64_t)st->st_size || ph.p_filesz > (uint64_t)st->st_size - ph.p_offset)
			continue;
		notes = malloc(ph.p_filesz);
		if (!notes)
			return -ENOMEM;
		if (read_full(fd, notes, ph.p_filesz, (off_t)ph.p_offset) == 0) {
			n = find_build_id(notes, ph.p_filesz, &id);
			if (n)
				rc = format_build_id(id, n, buf, len);
		}
		free(notes);
	}
	return rc;
}

/* Identities of executables on disk are cached by (path, dev, ino, size,
 * mtime): listing 10K entries written by one interpreter parses its ELF
 * notes once, not 10K times. */
#define ID_CACHE 16
static struct {
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
	char id[SC_IDENTITY_MAX];
} id_cache[ID_CACHE];
static unsigned id_cache_next;
static pthread_mutex_t id_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int same_file(const struct stat *a, dev_t dev, ino_t ino, off_t size,
		     const struct timespec *m)
{
	return a->st_dev == dev && a->st_ino == ino && a->st_size == size &&
	       a->st_mtim.tv_sec == m->tv_sec && a->st_mtim.tv_nsec == m->tv_nsec;
}

int sc_file_identity(const char *path, char *buf, size_t len)
{
	struct stat st;
	char id[SC_IDENTITY_MAX];
	int fd, rc;
	size_t plen = strlen(path);

	if (plen >= PATH_MAX)
		return -ENAMETOOLONG;
	/* The path comes from a record: never block on a FIFO, never acquire
	 * a controlling terminal, never read anything but a regular file. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	pthread_mutex_lock(&id_cache_lock);
	for (unsigned i = 0; i < ID_CACHE; i++) {
		if (strcmp(id_cache[i].path, path) == 0 &&
		    same_file(&st, id_cache[i].dev, id_cache[i].ino, id_cache[i].size,
			      &id_cache[i].mtim)) {
			strcpy(id, id_cache[i].id);
			pthread_mutex_unlock(&id_cache_lock);
			close(fd);
			goto out;
		}
	}
	pthread_mutex_unlock(&id_cache_lock);

	rc = elf_build_id(fd, &st, id, sizeof(id));
	close(fd);
	if (rc < 0)
		return rc;
	if (rc == 1 && (rc = format_stat(&st, id, sizeof(id))) != 0)
		return rc;

	pthread_mutex_lock(&id_cache_lock);
	{
		unsigned i = id_cache_next++ % ID_CACHE;
		memcpy(id_cache[i].path, path, plen + 1);
		id_cache[i].dev = st.st_dev;
		id_cache[i].ino = st.st_ino;
		id_cache[i].size = st.st_size;
		id_cache[i].mtim = st.st_mtim;
		strcpy(id_cache[i].id, id);
	}
	pthread_mutex_unlock(&id_cache_lock);
out:
	if (strlen(id) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, id);
	return 0;
}

int sc_exe_identity(const char *path, char *buf, size_t len)
{
	if (!buf || len == 0)
		return -EINVAL;
	if (!path) {
		size_t n;
		const char *id = sc_self_identity(&n);
		if (n >= len)
			return -ENAMETOOLONG;
		memcpy(buf, id, n + 1);
		return 0;
	}
	return sc_file_identity(path, buf, len);
}
