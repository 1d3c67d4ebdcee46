/*
 * remote_i.h - internal declarations of libscriptcache-remote, shared by
 *   config.c   environment, auth file, URL checks
 *   client.c   the libcurl client: requests, lookup, store, counters
 * (key.c and negcache.c need nothing beyond sc_remote.h).
 */
#ifndef SC_REMOTE_I_H
#define SC_REMOTE_I_H

#include <stddef.h>

#include "sc_remote.h"

/* snprintf into an optional reason buffer.  Never give it a credential. */
void scr_why(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* What the client needs to know about a base URL. */
struct scr_url {
	int https;     /* 1: https://, 0: http:// */
	int loopback;  /* host is localhost, 127.0.0.0/8 or ::1 */
	char *host;    /* malloc'd, for netrc "machine" matching */
};

/*
 * Check a base URL: http:// or https:// only, no user name or password in
 * it, a host.  Fills @p u (free u->host) on success.  The message never
 * repeats a URL that carries credentials.
 * @return 0, SC_REMOTE_ECONFIG, -ENOMEM.
 */
int scr_url_check(const char *url, struct scr_url *u, char *why, size_t why_len);

/*
 * The rules of an S3 configuration (cfg->s3_region set): a region
 * CURLOPT_AWS_SIGV4 can carry, an access key and secret, a session token
 * without line breaks, a URL http(s)://ENDPOINT/BUCKET[/PREFIX] whose path
 * needs no URI encoding.  @return 0, SC_REMOTE_ECONFIG, -ENOMEM.
 */
int scr_s3_check(const sc_remote_config *cfg, char *why, size_t why_len);

/* Overwrite and free a secret (NULL allowed). */
void scr_free_secret(char *s);

#endif /* SC_REMOTE_I_H */
