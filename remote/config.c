/*
 * config.c - where the remote is and how to talk to it, from the
 * environment (docs/REMOTE.md, "Configuration").
 *
 * Credentials never come from the command line, where ps(1) shows them to
 * every user, nor from the URL, which ends up in messages and logs: a URL
 * with user:password@ is refused.  They come from SCRIPTCACHE_REMOTE_AUTH
 * or from a file that only its owner may read, as ssh and netrc insist.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "remote_i.h"

#define AUTH_FILE_MAX 65536

void scr_why(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (!why || why_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
}

void scr_free_secret(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static int is_loopback(const char *host)
{
	return strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

int scr_url_check(const char *url, struct scr_url *u, char *why, size_t why_len)
{
	char *scheme = NULL, *user = NULL, *pass = NULL, *host = NULL;
	CURLU *h;
	int rc = SC_REMOTE_ECONFIG;

	memset(u, 0, sizeof(*u));
	if (!url || !*url) {
		scr_why(why, why_len, "no remote URL: set SCRIPTCACHE_REMOTE or give --remote URL");
		return SC_REMOTE_ECONFIG;
	}
	h = curl_url();
	if (!h)
		return -ENOMEM;
	/* No "guess scheme": "host:port" alone is refused, the scheme says
	 * whether the bytes and credentials travel encrypted. */
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK) {
		/* The text may hold a password: do not repeat it. */
		scr_why(why, why_len, "the remote URL is not a valid http:// or https:// URL");
		goto out;
	}
	if (curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_OK ||
	    curl_url_get(h, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
		scr_why(why, why_len,
			"the remote URL carries a user name or password (user:password@): refused, "
			"so that they never show in ps, logs or messages; put them in "
			"SCRIPTCACHE_REMOTE_AUTH_FILE or SCRIPTCACHE_REMOTE_AUTH");
		goto out;
	}
	if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		scr_why(why, why_len, "remote URL %s: only http:// and https:// are supported", url);
		goto out;
	}
	if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
		scr_why(why, why_len, "remote URL %s: no host", url);
		goto out;
	}
	u->host = strdup(host);
	if (!u->host) {
		rc = -ENOMEM;
		goto out;
	}
	u->https = strcmp(scheme, "https") == 0;
	u->loopback = is_loopback(host);
	rc = 0;
out:
	curl_free(scheme);
	if (user)
		explicit_bzero(user, strlen(user));
	if (pass)
		explicit_bzero(pass, strlen(pass));
	curl_free(user);
	curl_free(pass);
	curl_free(host);
	curl_url_cleanup(h);
	return rc;
}

/* An S3 region: what CURLOPT_AWS_SIGV4 puts between ':' (at most 64 bytes). */
static int s3_region_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return 0;
	return 1;
}

/*
 * libcurl 7.88 signs the path as it is sent, while S3 signs it URI-encoded:
 * they agree only on characters that need no encoding.  Keys are hex, so
 * only the bucket and the prefix could differ; they must be unreserved
 * characters too.
 */
static int s3_path_ok(const char *p)
{
	if (p[0] != '/' || p[1] == '\0' || strstr(p, "//"))
		return 0;
	for (; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-._~/", *p))
			return 0;
	return 1;
}

int scr_s3_check(const sc_remote_config *cfg, char *why, size_t why_len)
{
	char *path = NULL, *query = NULL;
	CURLU *h;
	int ok;

	if (!s3_region_ok(cfg->s3_region)) {
		scr_why(why, why_len,
			"SCRIPTCACHE_REMOTE_S3=%s: expected a region name such as us-east-1 "
			"(letters, digits, '-', '_')", cfg->s3_region);
		return SC_REMOTE_ECONFIG;
	}
	if (!cfg->username || !*cfg->username || !cfg->password || !*cfg->password) {
		scr_why(why, why_len,
			"SCRIPTCACHE_REMOTE_S3 signs every request: it needs an access key and "
			"secret (ACCESS_KEY:SECRET in SCRIPTCACHE_REMOTE_AUTH_FILE or "
			"SCRIPTCACHE_REMOTE_AUTH, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
		return SC_REMOTE_ECONFIG;
	}
	if (cfg->s3_session_token && strpbrk(cfg->s3_session_token, "\r\n")) {
		/* Never quoted: a token is a credential. */
		scr_why(why, why_len, "AWS_SESSION_TOKEN holds a line break: refused");
		return SC_REMOTE_ECONFIG;
	}
	h = curl_url();
	if (!h)
		return -ENOMEM;
	ok = curl_url_set(h, CURLUPART_URL, cfg->url, 0) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_PATH, &path, 0) == CURLUE_OK && s3_path_ok(path) &&
	     curl_url_get(h, CURLUPART_QUERY, &query, 0) == CURLUE_NO_QUERY;
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(h);
	if (!ok) {
		scr_why(why, why_len,
			"remote URL %s: an S3 store is http(s)://ENDPOINT/BUCKET[/PREFIX] (path "
			"style), with letters, digits and -._~ only, no query", cfg->url);
		return SC_REMOTE_ECONFIG;
	}
	return 0;
}

/* Split "user:password" (the password may contain ':'). */
static int split_userpass(const char *s, size_t len, sc_remote_config *cfg)
{
	const char *colon = memchr(s, ':', len);

	if (!colon || colon == s)
		return SC_REMOTE_ECONFIG;
	cfg->username = strndup(s, (size_t)(colon - s));
	cfg->password = strndup(colon + 1, len - (size_t)(colon - s) - 1);
	if (!cfg->username || !cfg->password)
		return -ENOMEM;
	return 0;
}

/* Next whitespace-separated token of a netrc file. */
static const char *next_token(const char **p, const char *end, size_t *len)
{
	const char *s = *p;

	while (s < end && isspace((unsigned char)*s))
		s++;
	if (s == end)
		return NULL;
	*p = s;
	while (*p < end && !isspace((unsigned char)**p))
		(*p)++;
	*len = (size_t)(*p - s);
	return s;
}

/*
 * netrc-style: "machine HOST login USER password PASS" (any order, any
 * whitespace), "default" for every other host.  The block of the URL's
 * host wins over "default".
 */
static int parse_netrc(const char *buf, size_t n, const char *host, sc_remote_config *cfg)
{
	const char *p = buf, *end = buf + n, *t, *login = NULL, *pass = NULL;
	const char *dlogin = NULL, *dpass = NULL;
	size_t tl, login_len = 0, pass_len = 0, dlogin_len = 0, dpass_len = 0;
	int block = 0; /* 0 none, 1 our host, 2 default, 3 another host */

	while ((t = next_token(&p, end, &tl))) {
		const char *v;
		size_t vl;

		if (tl == 7 && memcmp(t, "default", 7) == 0) {
			block = 2;
			continue;
		}
		v = next_token(&p, end, &vl);
		if (!v)
			return SC_REMOTE_ECONFIG;
		if (tl == 7 && memcmp(t, "machine", 7) == 0) {
			block = strlen(host) == vl && strncasecmp(v, host, vl) == 0 ? 1 : 3;
		} else if (tl == 5 && memcmp(t, "login", 5) == 0) {
			if (block == 1)
				login = v, login_len = vl;
			else if (block == 2)
				dlogin = v, dlogin_len = vl;
		} else if (tl == 8 && memcmp(t, "password", 8) == 0) {
			if (block == 1)
				pass = v, pass_len = vl;
			else if (block == 2)
				dpass = v, dpass_len = vl;
		} else if (tl == 7 && memcmp(t, "account", 7) == 0) {
			continue;
		} else {
			return SC_REMOTE_ECONFIG;
		}
	}
	if (!login) {
		login = dlogin, login_len = dlogin_len;
		pass = dpass, pass_len = dpass_len;
	}
	if (!login)
		return 0; /* no credentials for this host */
	cfg->username = strndup(login, login_len);
	cfg->password = pass ? strndup(pass, pass_len) : strdup("");
	if (!cfg->username || !cfg->password)
		return -ENOMEM;
	return 0;
}

static int read_auth_file(const char *path, const char *host, sc_remote_config *cfg, char *why,
			  size_t why_len)
{
	char *buf = NULL;
	struct stat st;
	size_t n = 0;
	int fd, rc;

	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		rc = -errno;
		scr_why(why, why_len, "cannot open SCRIPTCACHE_REMOTE_AUTH_FILE %s: %s", path,
			strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		scr_why(why, why_len, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		rc = SC_REMOTE_ECONFIG;
		scr_why(why, why_len,
			"SCRIPTCACHE_REMOTE_AUTH_FILE %s must be a regular file of yours that group "
			"and others cannot read (chmod 600)", path);
		goto out;
	}
	if (st.st_size > AUTH_FILE_MAX) {
		rc = SC_REMOTE_ECONFIG;
		scr_why(why, why_len, "SCRIPTCACHE_REMOTE_AUTH_FILE %s is too large", path);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			scr_why(why, why_len, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	{
		const char *p = buf, *t;
		size_t tl;

		t = next_token(&p, buf + n, &tl);
		if (t && ((tl == 7 && memcmp(t, "machine", 7) == 0) ||
			  (tl == 7 && memcmp(t, "default", 7) == 0))) {
			rc = parse_netrc(buf, n, host, cfg);
		} else {
			/* One line "user:password"; trailing newline and spaces dropped. */
			const char *s = buf, *e;

			while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
				s++;
			e = s + strcspn(s, "\r\n");
			rc = split_userpass(s, (size_t)(e - s), cfg);
		}
		if (rc == SC_REMOTE_ECONFIG)
			/* Never quote the file: it holds the password. */
			scr_why(why, why_len,
				"SCRIPTCACHE_REMOTE_AUTH_FILE %s: expected one line user:password, "
				"or netrc lines 'machine HOST login USER password PASS'", path);
	}
out:
	if (buf) {
		explicit_bzero(buf, n);
		free(buf);
	}
	close(fd);
	return rc;
}

static int parse_timeout(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 3600000)
		return -1;
	*out = v;
	return 0;
}

/*
 * SCRIPTCACHE_REMOTE_S3=REGION: the credentials already read (auth file or
 * SCRIPTCACHE_REMOTE_AUTH) are the access key and secret; without them, the
 * AWS variables every S3 tool reads.  A session token belongs to the key
 * it was issued with, so it is taken only with AWS_ACCESS_KEY_ID.
 */
static int s3_config(sc_remote_config *cfg, const char *region, char *why, size_t why_len)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");

	if (!(cfg->s3_region = strdup(region)))
		return -ENOMEM;
	if (!cfg->username && ((id && *id) || (secret && *secret))) {
		if (!id || !*id || !secret || !*secret) {
			scr_why(why, why_len,
				"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: one is not set");
			return SC_REMOTE_ECONFIG;
		}
		cfg->username = strdup(id);
		cfg->password = strdup(secret);
		if (token && *token)
			cfg->s3_session_token = strdup(token);
		if (!cfg->username || !cfg->password || (token && *token && !cfg->s3_session_token))
			return -ENOMEM;
	}
	return scr_s3_check(cfg, why, why_len);
}

void sc_remote_config_clear(sc_remote_config *cfg)
{
	free(cfg->url);
	free(cfg->username);
	scr_free_secret(cfg->password);
	free(cfg->ca_file);
	free(cfg->s3_region);
	scr_free_secret(cfg->s3_session_token);
	memset(cfg, 0, sizeof(*cfg));
}

int sc_remote_config_from_env(sc_remote_config *cfg, const char *url, char *why, size_t why_len)
{
	const char *mode = getenv("SCRIPTCACHE_REMOTE_MODE");
	const char *timeout = getenv("SCRIPTCACHE_REMOTE_TIMEOUT_MS");
	const char *auth = getenv("SCRIPTCACHE_REMOTE_AUTH");
	const char *auth_file = getenv("SCRIPTCACHE_REMOTE_AUTH_FILE");
	const char *ca = getenv("SCRIPTCACHE_REMOTE_CA_FILE");
	const char *s3 = getenv("SCRIPTCACHE_REMOTE_S3");
	struct scr_url u = { 0 };
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (!url || !*url)
		url = getenv("SCRIPTCACHE_REMOTE");
	cfg->mode = SC_REMOTE_RW;
	cfg->timeout_ms = SC_REMOTE_DEFAULT_TIMEOUT_MS;
	if (mode && *mode) {
		if (strcasecmp(mode, "rw") == 0)
			cfg->mode = SC_REMOTE_RW;
		else if (strcasecmp(mode, "ro") == 0)
			cfg->mode = SC_REMOTE_RO;
		else if (strcasecmp(mode, "off") == 0)
			cfg->mode = SC_REMOTE_OFF;
		else {
			scr_why(why, why_len, "SCRIPTCACHE_REMOTE_MODE=%s: expected rw, ro or off", mode);
			return SC_REMOTE_ECONFIG;
		}
	}
	if (cfg->mode == SC_REMOTE_OFF)
		return 0;
	if (timeout && *timeout && parse_timeout(timeout, &cfg->timeout_ms) != 0) {
		scr_why(why, why_len,
			"SCRIPTCACHE_REMOTE_TIMEOUT_MS=%s: expected milliseconds, 1 to 3600000", timeout);
		return SC_REMOTE_ECONFIG;
	}
	rc = scr_url_check(url, &u, why, why_len);
	if (rc != 0)
		return rc;
	rc = -ENOMEM;
	if (!(cfg->url = strdup(url)))
		goto fail;
	if (ca && *ca && !(cfg->ca_file = strdup(ca)))
		goto fail;
	if (auth && *auth && auth_file && *auth_file) {
		rc = SC_REMOTE_ECONFIG;
		scr_why(why, why_len,
			"both SCRIPTCACHE_REMOTE_AUTH and SCRIPTCACHE_REMOTE_AUTH_FILE are set: keep one");
		goto fail;
	}
	if (auth_file && *auth_file) {
		rc = read_auth_file(auth_file, u.host, cfg, why, why_len);
		if (rc != 0)
			goto fail;
	} else if (auth && *auth) {
		rc = split_userpass(auth, strlen(auth), cfg);
		if (rc == SC_REMOTE_ECONFIG)
			scr_why(why, why_len, "SCRIPTCACHE_REMOTE_AUTH: expected user:password");
		if (rc != 0)
			goto fail;
	}
	if (s3 && *s3) {
		rc = s3_config(cfg, s3, why, why_len);
		if (rc != 0)
			goto fail;
	}
	free(u.host);
	return 0;
fail:
	free(u.host);
	sc_remote_config_clear(cfg);
	return rc;
}
