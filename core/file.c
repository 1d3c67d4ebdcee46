/*
 * file.c - shard files as wholes, beside the path: a new empty shard put in
 * place, and the temp files a killed writer left behind.  Below the handle
 * and the heal (both create shards); above os.c and format.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc_int.h"

/*
 * A new shard is written completely into a temp file in the same directory
 * and then linked into place, so no process ever sees a half-initialised
 * header.  link() rather than rename(): if another process created the shard
 * meanwhile, we keep theirs.  With @p replace (a heal, writer lock held) it
 * is renamed over whatever is at the path.
 */
int sc_create_shard(const char *path, int replace)
{
	unsigned char *page = NULL;
	char tmp[PATH_MAX];
	int fd = -1, rc;
	size_t table = (size_t)SC_MIN_INDEX_SLOTS * sizeof(struct sc_disk_slot);
	size_t btable = (size_t)SC_MIN_BLOB_SLOTS * sizeof(struct sc_disk_bslot);
	struct sc_disk_meta m;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	/* calloc: the empty indexes after the first page are all zeros. */
	page = calloc(1, SC_DATA_OFF + table + btable);
	if (!page)
		return -ENOMEM;
	if ((fd = sc_mkostemp(tmp)) < 0) {
		rc = fd;
		goto out;
	}
	memset(&m, 0, sizeof(m));
	m.index_off = SC_DATA_OFF;
	m.index_slots = SC_MIN_INDEX_SLOTS;
	m.blobs_off = SC_DATA_OFF + table;
	m.blob_slots = SC_MIN_BLOB_SLOTS;
	m.data_end = SC_DATA_OFF + table + btable;
	sc_image_init(page, &m);
	if ((rc = sc_write_full(fd, page, SC_DATA_OFF + table + btable, 0)) != 0)
		goto out;
	if (fchmod(fd, 0600) != 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = sc_fsync(fd)) != 0)
		goto out;
	rc = replace ? sc_rename(tmp, path) : sc_link(tmp, path);
	if (rc != 0 && rc != -EEXIST)
		goto out;
	rc = sc_fsync_dir(path);
out:
	if (fd >= 0) {
		close(fd);
		(void)sc_unlink(tmp);
	}
	free(page);
	return rc;
}

void sc_clean_temps(const char *shard_path)
{
	char dir[PATH_MAX], prefix[NAME_MAX + 8], victim[PATH_MAX + NAME_MAX + 2];
	const char *slash = strrchr(shard_path, '/');
	DIR *d;
	struct dirent *de;
	size_t plen;

	if (!slash || (size_t)(slash - shard_path) >= sizeof(dir))
		return;
	memcpy(dir, shard_path, (size_t)(slash - shard_path));
	dir[slash - shard_path] = '\0';
	if (!dir[0])
		strcpy(dir, "/");
	if (snprintf(prefix, sizeof(prefix), "%s.tmp.", slash + 1) >= (int)sizeof(prefix))
		return;
	plen = strlen(prefix);
	if (!(d = opendir(dir)))
		return;
	while ((de = readdir(d)) != NULL) {
		/* We hold the writer lock: no live writer owns such a file. */
		if (strncmp(de->d_name, prefix, plen) == 0 &&
		    snprintf(victim, sizeof(victim), "%s/%s", dir, de->d_name) < (int)sizeof(victim))
			(void)sc_unlink(victim);
	}
	closedir(d);
}
