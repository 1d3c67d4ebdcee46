/*
 * client.c - the HTTP client of the remote tier, on libcurl: one request
 * function, and on it the lookup (GET /ac, GET /cas, verify) and the
 * store (HEAD /cas, PUT /cas, GET /ac, PUT /ac) of docs/REMOTE.md.
 *
 * With an S3-compatible store (SCRIPTCACHE_REMOTE_S3), libcurl signs every
 * request with AWS Signature Version 4 (CURLOPT_AWS_SIGV4) instead of basic
 * authentication, and a 403 AccessDenied on a read means "absent" (below).
 *
 * Every request is bounded in time (connect included), follows no
 * redirect (one could carry the credentials elsewhere), speaks only HTTP
 * and HTTPS, verifies TLS peers, and accepts no more response bytes than
 * the object may have: the server is trusted for availability, never for
 * the bytes, which are checked against the SHA-256 their record names.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "remote_i.h"

struct sc_remote {
	char *r_url;            /* base URL, no trailing '/' */
	sc_remote_mode r_mode;
	long r_timeout_ms;
	char *r_user, *r_pass;  /* NULL: no authentication */
	char *r_ca;
	char *r_sigv4;          /* "aws:amz:REGION:s3"; NULL: basic authentication */
	char *r_token_hdr;      /* "x-amz-security-token: ..."; NULL: none */
	pthread_mutex_t r_lock; /* r_idle and r_stats */
	CURL *r_idle;           /* kept between requests: its connection is reused */
	sc_remote_stats r_stats;
};

int sc_remote_is_transport_error(int err)
{
	return err == SC_REMOTE_ETIMEOUT || err == SC_REMOTE_ECONNECT || err == SC_REMOTE_ETLS ||
	       err == SC_REMOTE_EAUTH || err == SC_REMOTE_ETRANSFER;
}

const char *sc_remote_strerror(int err)
{
	switch (err) {
	case SC_REMOTE_ENOTFOUND: return "not on the remote";
	case SC_REMOTE_EINTEGRITY: return "remote blob failed verification (SHA-256 or size mismatch)";
	case SC_REMOTE_ERECORD: return "malformed remote action record";
	case SC_REMOTE_ETIMEOUT: return "remote did not answer within the timeout";
	case SC_REMOTE_ECONNECT: return "cannot connect to the remote";
	case SC_REMOTE_ETLS: return "TLS failure with the remote (certificate not verified?)";
	case SC_REMOTE_EAUTH: return "the remote refused the credentials";
	case SC_REMOTE_EHTTP: return "unexpected HTTP status from the remote";
	case SC_REMOTE_ETRANSFER: return "transfer with the remote failed";
	case SC_REMOTE_EREADONLY: return "remote is read-only (SCRIPTCACHE_REMOTE_MODE=ro)";
	case SC_REMOTE_EOFF: return "remote is off (SCRIPTCACHE_REMOTE_MODE=off)";
	case SC_REMOTE_ECONFIG: return "bad remote configuration";
	case SC_REMOTE_ETOOBIG: return "the remote sent more bytes than expected";
	default: return sc_strerror(err);
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Pay now the one-time costs of the first request, rather than in the
 * first lookup, for which a process may be waiting (the mount's misses
 * have a budget of a few hundred milliseconds): OpenSSL 3 loads its
 * configuration and providers at the first digest (5 to 150 ms measured,
 * docs/BENCHMARKS.md), and the first easy handle is kept for reuse anyway.
 * Failures are not errors here: the first request meets them again.
 */
static void warm_up(sc_remote *r)
{
	unsigned char d[SC_REMOTE_DIGEST];

	(void)sc_remote_sha256("", 0, d);
	r->r_idle = curl_easy_init();
}

int sc_remote_open(sc_remote **out, const sc_remote_config *cfg, char *why, size_t why_len)
{
	struct scr_url u;
	sc_remote *r;
	size_t n;
	int rc;

	*out = NULL;
	if (cfg->mode == SC_REMOTE_OFF) {
		scr_why(why, why_len, "the remote is off (SCRIPTCACHE_REMOTE_MODE=off)");
		return SC_REMOTE_EOFF;
	}
	rc = scr_url_check(cfg->url, &u, why, why_len);
	if (rc != 0)
		return rc;
	if (cfg->username && !u.https && !u.loopback) {
		/* Basic auth over plain HTTP hands the password to the network. */
		scr_why(why, why_len,
			"remote %s: credentials are sent only over https:// (or to a loopback "
			"address)", cfg->url);
		free(u.host);
		return SC_REMOTE_ECONFIG;
	}
	free(u.host);
	if (cfg->s3_region && (rc = scr_s3_check(cfg, why, why_len)) != 0)
		return rc;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	r = calloc(1, sizeof(*r));
	if (!r) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	r->r_mode = cfg->mode;
	r->r_timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : SC_REMOTE_DEFAULT_TIMEOUT_MS;
	r->r_url = strdup(cfg->url);
	if (cfg->username) {
		r->r_user = strdup(cfg->username);
		r->r_pass = strdup(cfg->password ? cfg->password : "");
	}
	if (cfg->ca_file)
		r->r_ca = strdup(cfg->ca_file);
	if (cfg->s3_region && asprintf(&r->r_sigv4, "aws:amz:%s:s3", cfg->s3_region) < 0)
		r->r_sigv4 = NULL;
	if (cfg->s3_region && cfg->s3_session_token &&
	    asprintf(&r->r_token_hdr, "x-amz-security-token: %s", cfg->s3_session_token) < 0)
		r->r_token_hdr = NULL;
	if (pthread_mutex_init(&r->r_lock, NULL) != 0 || !r->r_url ||
	    (cfg->username && (!r->r_user || !r->r_pass)) || (cfg->ca_file && !r->r_ca) ||
	    (cfg->s3_region && !r->r_sigv4) ||
	    (cfg->s3_region && cfg->s3_session_token && !r->r_token_hdr)) {
		free(r->r_url);
		free(r->r_user);
		scr_free_secret(r->r_pass);
		free(r->r_ca);
		free(r->r_sigv4);
		scr_free_secret(r->r_token_hdr);
		free(r);
		curl_global_cleanup();
		return -ENOMEM;
	}
	n = strlen(r->r_url);
	while (n > 0 && r->r_url[n - 1] == '/')
		r->r_url[--n] = '\0';
	warm_up(r);
	*out = r;
	return 0;
}

void sc_remote_close(sc_remote *r)
{
	if (!r)
		return;
	if (r->r_idle)
		curl_easy_cleanup(r->r_idle);
	pthread_mutex_destroy(&r->r_lock);
	free(r->r_url);
	free(r->r_user);
	scr_free_secret(r->r_pass);
	free(r->r_ca);
	free(r->r_sigv4);
	scr_free_secret(r->r_token_hdr);
	free(r);
	curl_global_cleanup();
}

sc_remote_mode sc_remote_get_mode(const sc_remote *r)
{
	return r->r_mode;
}

const char *sc_remote_url(const sc_remote *r)
{
	return r->r_url;
}

void sc_remote_get_stats(sc_remote *r, sc_remote_stats *out)
{
	pthread_mutex_lock(&r->r_lock);
	*out = r->r_stats;
	pthread_mutex_unlock(&r->r_lock);
}

#define COUNT(r, field, n)                         \
	do {                                       \
		pthread_mutex_lock(&(r)->r_lock);  \
		(r)->r_stats.field += (n);         \
		pthread_mutex_unlock(&(r)->r_lock); \
	} while (0)

/* ---- one request ---- */

struct req {
	CURL *h;              /* while it runs */
	const char *method;   /* GET, HEAD, PUT */
	const char *kind;     /* "ac" or "cas" */
	const char *hex;      /* object name */
	const void *body;     /* PUT */
	size_t body_len, body_off;
	const char *body_sha; /* hex SHA-256 of the body if the caller knows it, for SigV4 */
	size_t max_down;      /* response bytes accepted */
	long timeout_ms;
	/* results */
	long status;
	char *resp;
	size_t resp_len, resp_cap;
	int too_big;
};

/* Of an error answer's body, what is kept: enough for an S3 error
 * document's <Code> (s3_error_code), never the whole of a server's page. */
#define ERR_BODY_MAX 4096

static int keep_bytes(struct req *q, const char *p, size_t n, size_t limit)
{
	if (q->resp_len + n > q->resp_cap) {
		size_t cap = q->resp_cap ? q->resp_cap : 4096;
		char *nb;

		while (cap < q->resp_len + n)
			cap *= 2;
		if (cap > limit)
			cap = limit;
		nb = realloc(q->resp, cap);
		if (!nb)
			return -1;
		q->resp = nb;
		q->resp_cap = cap;
	}
	memcpy(q->resp + q->resp_len, p, n);
	q->resp_len += n;
	return 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct req *q = arg;
	size_t n = size * nmemb;
	long status = 0;

	if (n == 0)
		return 0;
	/* The body of an error (nginx's 404 page, S3's error document) is not
	 * the object: no reason to call a small blob too long.  Its head is
	 * kept to name the error; the rest is read and dropped. */
	curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		size_t room = q->resp_len < ERR_BODY_MAX ? ERR_BODY_MAX - q->resp_len : 0;

		if (room && keep_bytes(q, p, n < room ? n : room, ERR_BODY_MAX) != 0)
			return 0;
		return n;
	}
	if (n > q->max_down - q->resp_len) {
		q->too_big = 1;
		return 0; /* CURLE_WRITE_ERROR: stop the transfer */
	}
	return keep_bytes(q, p, n, q->max_down) == 0 ? n : 0;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
	struct req *q = arg;
	size_t n = size * nmemb, left = q->body_len - q->body_off;

	if (n > left)
		n = left;
	memcpy(p, (const char *)q->body + q->body_off, n);
	q->body_off += n;
	return n;
}

static int map_curl(CURLcode c, const struct req *q)
{
	switch (c) {
	case CURLE_OK: return 0;
	case CURLE_OPERATION_TIMEDOUT: return SC_REMOTE_ETIMEOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT: return SC_REMOTE_ECONNECT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS: return SC_REMOTE_ETLS;
	case CURLE_OUT_OF_MEMORY: return -ENOMEM;
	case CURLE_WRITE_ERROR: return q->too_big ? SC_REMOTE_ETOOBIG : -ENOMEM;
	default: return SC_REMOTE_ETRANSFER;
	}
}

/* The SHA-256 of an empty body: GET and HEAD requests. */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Wipe a header list that may hold the session token, then free it. */
static void free_headers(struct curl_slist *l)
{
	struct curl_slist *p;

	for (p = l; p; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

/*
 * The headers of a SigV4-signed request.  libcurl 7.88 signs every header
 * of CURLOPT_HTTPHEADER, even one that only removes a header ("Expect:"),
 * which it then does not send: the server's signature would differ, so
 * there is none such here.  It takes the payload hash from
 * x-amz-content-sha256 when the header is there, and otherwise hashes
 * CURLOPT_POSTFIELDS, which an upload does not use: the header is always
 * set, to the body's real SHA-256, so that S3 also checks the bytes it got.
 */
static int s3_headers(const sc_remote *r, const struct req *q, struct curl_slist **out)
{
	char line[128], hex[SC_REMOTE_HEX];
	const char *sha = EMPTY_SHA256;
	unsigned char d[SC_REMOTE_DIGEST];
	struct curl_slist *l = NULL, *t;
	int rc;

	if (q->body_sha) {
		sha = q->body_sha;
	} else if (q->body) {
		if ((rc = sc_remote_sha256(q->body, q->body_len, d)) != 0)
			return rc;
		sha = sc_remote_hex(d, hex);
	}
	snprintf(line, sizeof(line), "x-amz-content-sha256: %s", sha);
	if (!(t = curl_slist_append(l, line)))
		goto nomem;
	l = t;
	if (q->body) {
		if (!(t = curl_slist_append(l, "Content-Type: application/octet-stream")))
			goto nomem;
		l = t;
	}
	if (r->r_token_hdr) {
		if (!(t = curl_slist_append(l, r->r_token_hdr)))
			goto nomem;
		l = t;
	}
	*out = l;
	return 0;
nomem:
	free_headers(l);
	return -ENOMEM;
}

/*
 * Send one request.  0 when an HTTP answer came back (q->status holds
 * it, q->resp the body); a transport code otherwise, with @p why filled.
 */
static int do_request(sc_remote *r, struct req *q, char *why, size_t why_len)
{
	char url[8192];
	struct curl_slist *hdrs = NULL;
	uint64_t t0;
	CURLcode c;
	CURL *h;
	int rc;

	if ((size_t)snprintf(url, sizeof(url), "%s/%s/%s", r->r_url, q->kind, q->hex) >= sizeof(url))
		return -ENAMETOOLONG;
	if (q->timeout_ms <= 0) { /* to libcurl, 0 would mean no limit at all */
		scr_why(why, why_len, "%s %s: %s", q->method, url, sc_remote_strerror(SC_REMOTE_ETIMEOUT));
		return SC_REMOTE_ETIMEOUT;
	}
	if (r->r_sigv4 && (rc = s3_headers(r, q, &hdrs)) != 0)
		return rc;
	pthread_mutex_lock(&r->r_lock);
	h = r->r_idle;
	r->r_idle = NULL;
	pthread_mutex_unlock(&r->r_lock);
	if (!h && !(h = curl_easy_init())) {
		free_headers(hdrs);
		return -ENOMEM;
	}
	curl_easy_reset(h);
	q->h = h;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, q->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, q->timeout_ms);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "scriptcache/" SC_VERSION_STRING);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (r->r_ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, r->r_ca);
	if (r->r_sigv4) {
		/* The secret never leaves: it keys the signature's HMAC. */
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, r->r_sigv4);
		curl_easy_setopt(h, CURLOPT_USERNAME, r->r_user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, r->r_pass);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	} else if (r->r_user) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, r->r_user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, r->r_pass);
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
	if (strcmp(q->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(q->method, "PUT") == 0) {
		if (!r->r_sigv4) {
			/* No "Expect: 100-continue" round trip before the body. */
			hdrs = curl_slist_append(hdrs, "Expect:");
			hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
			curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		}
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, q);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_len);
	}
	t0 = now_ns();
	c = curl_easy_perform(h);
	q->status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &q->status);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	free_headers(hdrs);

	pthread_mutex_lock(&r->r_lock);
	r->r_stats.requests++;
	r->r_stats.time_ns += now_ns() - t0;
	r->r_stats.bytes_down += q->resp_len;
	r->r_stats.bytes_up += q->body_off;
	if (!r->r_idle) {
		r->r_idle = h;
		h = NULL;
	}
	pthread_mutex_unlock(&r->r_lock);
	if (h)
		curl_easy_cleanup(h);

	rc = map_curl(c, q);
	if (rc != 0)
		scr_why(why, why_len, "%s %s: %s", q->method, url,
			rc == SC_REMOTE_ETRANSFER ? curl_easy_strerror(c) : sc_remote_strerror(rc));
	return rc;
}

/*
 * The <Code> of an S3 error document (AccessDenied, SignatureDoesNotMatch,
 * RequestTimeTooSkewed, ...) into @p out, or "" when the body has none.
 * Only letters and digits are kept: the bytes come from the server.
 */
static void s3_error_code(const struct req *q, char *out, size_t cap)
{
	const char *b, *e;
	size_t n = 0;

	out[0] = '\0';
	if (!q->resp || q->resp_len == 0)
		return;
	b = memmem(q->resp, q->resp_len, "<Code>", 6);
	if (!b)
		return;
	b += 6;
	e = q->resp + q->resp_len;
	while (b < e && n + 1 < cap && ((*b >= 'A' && *b <= 'Z') || (*b >= 'a' && *b <= 'z') ||
					 (*b >= '0' && *b <= '9')))
		out[n++] = *b++;
	out[n] = '\0';
}

/*
 * Whether an S3 store's answer to a read means "no such object".  S3 answers
 * 404 NoSuchKey only to a caller allowed to list the bucket; to one that is
 * not, a missing key is 403 AccessDenied, so that the answer does not tell
 * which keys exist.  A wrong key or signature is another code
 * (SignatureDoesNotMatch, InvalidAccessKeyId): still a refusal.  A HEAD has
 * no body to tell: the store treats its 403 as absent and uploads, and a
 * refusal shows on the PUT.
 */
static int s3_absent(const sc_remote *r, const struct req *q)
{
	char code[64];

	if (!r->r_sigv4 || q->status != 403)
		return 0;
	if (strcmp(q->method, "HEAD") == 0)
		return 1;
	s3_error_code(q, code, sizeof(code));
	return strcmp(code, "AccessDenied") == 0;
}

/* The code for an HTTP answer that is neither success nor "absent". */
static int status_error(const struct req *q, const char *base, char *why, size_t why_len)
{
	int rc = q->status == 401 || q->status == 403 ? SC_REMOTE_EAUTH : SC_REMOTE_EHTTP;
	char code[64];

	s3_error_code(q, code, sizeof(code));
	scr_why(why, why_len, "%s %s/%s/%s: HTTP %ld%s%s (%s)", q->method, base, q->kind, q->hex,
		q->status, code[0] ? " " : "", code, sc_remote_strerror(rc));
	return rc;
}

static void req_init(struct req *q, const char *method, const char *kind, const char *hex,
		     long timeout_ms)
{
	memset(q, 0, sizeof(*q));
	q->method = method;
	q->kind = kind;
	q->hex = hex;
	q->timeout_ms = timeout_ms;
}

/* Time left before @p deadline (0: none) as a request timeout; <= 0: spent. */
static long time_left(const sc_remote *r, uint64_t deadline)
{
	uint64_t now;

	if (!deadline)
		return r->r_timeout_ms;
	now = now_ns();
	if (now >= deadline)
		return 0;
	return (long)((deadline - now + 999999) / 1000000);
}

/* ---- lookup ---- */

/* sc_remote_lookup() and sc_remote_fetch(): @p out_rec, if not NULL,
 * receives the record once the server gave a valid one (*have_rec). */
static int lookup(sc_remote *r, const sc_remote_ident *id, long timeout_ms, sc_remote_negcache *nc,
		  sc_remote_record *out_rec, int *have_rec, void **blob, size_t *len, char *why,
		  size_t why_len)
{
	unsigned char key[SC_REMOTE_DIGEST], sha[SC_REMOTE_DIGEST];
	char key_hex[SC_REMOTE_HEX], sha_hex[SC_REMOTE_HEX];
	uint64_t deadline = timeout_ms > 0 ? now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
	sc_remote_record rec;
	struct req q;
	int rc;

	*blob = NULL;
	*len = 0;
	if (have_rec)
		*have_rec = 0;
	if ((rc = sc_remote_action_key(id, key)) != 0)
		return rc;
	if (nc && sc_remote_negcache_has(nc, key)) {
		COUNT(r, negative_hits, 1);
		return SC_REMOTE_ENOTFOUND;
	}
	sc_remote_hex(key, key_hex);

	req_init(&q, "GET", "ac", key_hex, time_left(r, deadline));
	q.max_down = SC_REMOTE_RECORD_MAX;
	rc = do_request(r, &q, why, why_len);
	if (rc == SC_REMOTE_ETOOBIG && q.status != 200 && q.status != 0)
		rc = 0; /* an error page longer than any record: its status tells */
	if (rc == SC_REMOTE_ETOOBIG) {
		rc = SC_REMOTE_ERECORD;
		scr_why(why, why_len, "GET %s/ac/%s: longer than any record", r->r_url, key_hex);
	}
	if (rc != 0)
		goto error;
	if (q.status == 404 || s3_absent(r, &q)) {
		COUNT(r, misses, 1);
		if (nc)
			sc_remote_negcache_add(nc, key);
		rc = SC_REMOTE_ENOTFOUND;
		goto out;
	}
	if (q.status != 200) {
		rc = status_error(&q, r->r_url, why, why_len);
		goto error;
	}
	if (sc_remote_record_parse(q.resp, q.resp_len, &rec) != 0 ||
	    memcmp(rec.key, key, SC_REMOTE_DIGEST) != 0) {
		rc = SC_REMOTE_ERECORD;
		scr_why(why, why_len, "GET %s/ac/%s: not a scriptcache record for this key",
			r->r_url, key_hex);
		goto error;
	}
	free(q.resp);
	if (out_rec) {
		*out_rec = rec;
		*have_rec = 1;
	}

	sc_remote_hex(rec.blob_sha256, sha_hex);
	req_init(&q, "GET", "cas", sha_hex, time_left(r, deadline));
	/* One byte more than the record says, so that a longer blob is seen
	 * as such rather than cut to the right size. */
	q.max_down = (size_t)rec.blob_size + 1;
	rc = do_request(r, &q, why, why_len);
	if (rc == SC_REMOTE_ETOOBIG) {
		rc = SC_REMOTE_EINTEGRITY;
		scr_why(why, why_len, "GET %s/cas/%s: more bytes than the record's %llu", r->r_url,
			sha_hex, (unsigned long long)rec.blob_size);
		COUNT(r, integrity_failures, 1);
		goto out;
	}
	if (rc != 0)
		goto error;
	if (q.status == 404 || s3_absent(r, &q)) {
		/* The server dropped the blob but kept the record. */
		COUNT(r, misses, 1);
		rc = SC_REMOTE_ENOTFOUND;
		goto out;
	}
	if (q.status != 200) {
		rc = status_error(&q, r->r_url, why, why_len);
		goto error;
	}
	if (q.resp_len != rec.blob_size || (rc = sc_remote_sha256(q.resp, q.resp_len, sha)) != 0 ||
	    memcmp(sha, rec.blob_sha256, SC_REMOTE_DIGEST) != 0) {
		if (rc == 0) {
			rc = SC_REMOTE_EINTEGRITY;
			scr_why(why, why_len, "GET %s/cas/%s: %s", r->r_url, sha_hex,
				q.resp_len != rec.blob_size ? "size differs from the record's"
							    : "SHA-256 mismatch");
			COUNT(r, integrity_failures, 1);
		}
		goto out;
	}
	COUNT(r, hits, 1);
	if (!q.resp) /* an empty blob */
		q.resp = malloc(1);
	if (!q.resp)
		return -ENOMEM;
	*blob = q.resp;
	*len = q.resp_len;
	return 0;
error:
	COUNT(r, errors, 1);
out:
	free(q.resp);
	return rc;
}

int sc_remote_lookup(sc_remote *r, const sc_remote_ident *id, long timeout_ms,
		     sc_remote_negcache *nc, void **blob, size_t *len, char *why, size_t why_len)
{
	return lookup(r, id, timeout_ms, nc, NULL, NULL, blob, len, why, why_len);
}

int sc_remote_fetch(sc_remote *r, const sc_remote_ident *id, long timeout_ms,
		    sc_remote_record *rec, int *have_rec, void **blob, size_t *len, char *why,
		    size_t why_len)
{
	return lookup(r, id, timeout_ms, NULL, rec, have_rec, blob, len, why, why_len);
}

/* ---- store ---- */

static int is_2xx(long status)
{
	return status >= 200 && status < 300;
}

int sc_remote_store(sc_remote *r, const sc_remote_ident *id, const void *blob, size_t len,
		    char *why, size_t why_len)
{
	char key_hex[SC_REMOTE_HEX], sha_hex[SC_REMOTE_HEX], record[SC_REMOTE_RECORD_MAX];
	sc_remote_record rec;
	struct req q;
	int rc, n;

	if (r->r_mode != SC_REMOTE_RW) {
		scr_why(why, why_len, "%s", sc_remote_strerror(SC_REMOTE_EREADONLY));
		return SC_REMOTE_EREADONLY;
	}
	memset(&rec, 0, sizeof(rec));
	if ((rc = sc_remote_action_key(id, rec.key)) != 0 ||
	    (rc = sc_remote_sha256(blob, len, rec.blob_sha256)) != 0)
		return rc;
	rec.blob_size = len;
	n = sc_remote_record_format(&rec, record, sizeof(record));
	if (n < 0)
		return n;
	sc_remote_hex(rec.key, key_hex);
	sc_remote_hex(rec.blob_sha256, sha_hex);

	/* The blob first: a record must never name a blob the server lacks. */
	req_init(&q, "HEAD", "cas", sha_hex, r->r_timeout_ms);
	q.max_down = 0;
	if ((rc = do_request(r, &q, why, why_len)) != 0)
		goto error;
	if (q.status == 200) {
		COUNT(r, blobs_present, 1);
	} else if (q.status == 404 || s3_absent(r, &q)) {
		req_init(&q, "PUT", "cas", sha_hex, r->r_timeout_ms);
		q.body = blob;
		q.body_len = len;
		q.body_sha = sha_hex;
		q.max_down = 65536; /* a server's short answer page */
		if ((rc = do_request(r, &q, why, why_len)) != 0)
			goto error;
		if (!is_2xx(q.status)) {
			rc = status_error(&q, r->r_url, why, why_len); /* reads the error body */
			goto error;
		}
		free(q.resp);
		q.resp = NULL;
		COUNT(r, blobs_uploaded, 1);
	} else {
		rc = status_error(&q, r->r_url, why, why_len);
		goto error;
	}

	req_init(&q, "GET", "ac", key_hex, r->r_timeout_ms);
	q.max_down = SC_REMOTE_RECORD_MAX;
	rc = do_request(r, &q, why, why_len);
	if (rc == SC_REMOTE_ETOOBIG && q.status == 200)
		rc = 0, q.status = 0; /* not ours: replace it */
	else if (rc == SC_REMOTE_ETOOBIG && q.status != 0)
		rc = 0; /* an error page longer than any record: its status tells */
	else if (rc != 0)
		goto error;
	if (q.status == 200 && q.resp_len == (size_t)n && memcmp(q.resp, record, (size_t)n) == 0) {
		COUNT(r, records_present, 1);
		free(q.resp);
		return 0;
	}
	if (q.status != 200 && q.status != 404 && q.status != 0 && !s3_absent(r, &q)) {
		rc = status_error(&q, r->r_url, why, why_len);
		goto error;
	}
	free(q.resp);
	req_init(&q, "PUT", "ac", key_hex, r->r_timeout_ms);
	q.body = record;
	q.body_len = (size_t)n;
	q.max_down = 65536;
	if ((rc = do_request(r, &q, why, why_len)) != 0)
		goto error;
	if (!is_2xx(q.status)) {
		rc = status_error(&q, r->r_url, why, why_len);
		goto error;
	}
	COUNT(r, records_uploaded, 1);
	free(q.resp);
	return 0;
error:
	COUNT(r, errors, 1);
	free(q.resp);
	return rc;
}
