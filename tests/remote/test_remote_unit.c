/*
 * test_remote_unit.c - the parts of libscriptcache-remote that need no
 * server: the action key (against a vector computed independently, with
 * Python's hashlib, from docs/REMOTE.md), the record format and its parser
 * on hostile input, the negative cache, and the configuration checks
 * (credentials in URLs, auth file permissions, modes, the S3 settings),
 * and the bound on sc_remote_lookup() against a socket that never answers.  The client
 * against a real server is tests/remote/test_remote.py.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "sc_remote.h"
#include "tap.h"

static char tmpdir[] = "/tmp/sc-remote-unit.XXXXXX";

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fchmod(fd, mode) != 0) {
		printf("Bail out! cannot write %s\n", path);
		exit(1);
	}
	close(fd);
}

static void clear_env(void)
{
	unsetenv("SCRIPTCACHE_REMOTE");
	unsetenv("SCRIPTCACHE_REMOTE_MODE");
	unsetenv("SCRIPTCACHE_REMOTE_TIMEOUT_MS");
	unsetenv("SCRIPTCACHE_REMOTE_AUTH");
	unsetenv("SCRIPTCACHE_REMOTE_AUTH_FILE");
	unsetenv("SCRIPTCACHE_REMOTE_CA_FILE");
	unsetenv("SCRIPTCACHE_REMOTE_S3");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
}

static void test_key(void)
{
	sc_remote_ident id = {
		.tag = "lua 5.4", .tag_len = 7,
		.exe_id = "build-id:abcd", .exe_id_len = 13,
		.source_hash = { 0x1122334455667788ull, 0x99aabbccddeeff00ull },
		.source_size = 1234,
	};
	unsigned char k[SC_REMOTE_DIGEST], k2[SC_REMOTE_DIGEST];
	char hex[SC_REMOTE_HEX];
	XXH128_hash_t h;

	TAP_EQ(sc_remote_action_key(&id, k), 0, "action key computed");
	tap_ok(strcmp(sc_remote_hex(k, hex),
		      "15b793a64405528c77ce8bcbd78ee3ce2ca785115bffa1b33fdc838a284dffd9") == 0,
	       "action key matches the documented serialization (got %s)", hex);

	/* Moving a byte from one field to the next changes the key: the
	 * length prefixes make the serialization unambiguous. */
	id.tag = "lua 5.4b";
	id.tag_len = 8;
	id.exe_id = "uild-id:abcd";
	id.exe_id_len = 12;
	sc_remote_action_key(&id, k2);
	tap_ok(memcmp(k, k2, sizeof(k)) != 0, "fields are length-prefixed (no ambiguity)");
	id.tag = "lua 5.4";
	id.tag_len = 7;
	id.exe_id = "build-id:abcd";
	id.exe_id_len = 13;
	id.source_size = 1235;
	sc_remote_action_key(&id, k2);
	tap_ok(memcmp(k, k2, sizeof(k)) != 0, "the source size is part of the key");

	sc_remote_ident_for_source(&id, "t", "stat:1:2.3", "print(1)\n", 9);
	h = XXH3_128bits("print(1)\n", 9);
	tap_ok(id.source_hash[0] == h.low64 && id.source_hash[1] == h.high64 &&
		       id.source_size == 9 && id.tag_len == 1 && id.exe_id_len == 10,
	       "ident from source bytes: XXH3-128 low/high as the core records it");

	sc_remote_sha256("hello", 5, k);
	tap_ok(strcmp(sc_remote_hex(k, hex),
		      "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824") == 0,
	       "SHA-256 of 'hello'");
}

static int parse(const char *text)
{
	sc_remote_record rec;

	return sc_remote_record_parse(text, strlen(text), &rec);
}

static void test_record(void)
{
	static const char k[] = "15b793a64405528c77ce8bcbd78ee3ce2ca785115bffa1b33fdc838a284dffd9";
	static const char b[] = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
	sc_remote_record rec, back;
	char buf[SC_REMOTE_RECORD_MAX], text[1024], big[SC_REMOTE_RECORD_MAX + 200];
	int n;

	memset(&rec, 0, sizeof(rec));
	memset(rec.key, 0xab, sizeof(rec.key));
	memset(rec.blob_sha256, 0x01, sizeof(rec.blob_sha256));
	rec.blob_size = 4242;
	n = sc_remote_record_format(&rec, buf, sizeof(buf));
	tap_ok(n > 0 && strncmp(buf, "scriptcache-record 1\nkey abab", 29) == 0,
	       "record formatted as text");
	tap_ok(sc_remote_record_parse(buf, (size_t)n, &back) == 0 &&
		       memcmp(&back, &rec, sizeof(rec)) == 0,
	       "record round trip");
	TAP_EQ(sc_remote_record_format(&rec, buf, 20), -ENOBUFS, "small buffer: -ENOBUFS");

	snprintf(text, sizeof(text), "scriptcache-record 1\nkey %s\nblob-sha256 %s\nblob-size 5\n", k, b);
	TAP_EQ(parse(text), 0, "well-formed record");
	snprintf(text, sizeof(text),
		 "scriptcache-record 1\ncompiler-note x y z\nkey %s\nblob-sha256 %s\nblob-size 5\n", k, b);
	TAP_EQ(parse(text), 0, "unknown field skipped");
	snprintf(text, sizeof(text), "scriptcache-record 2\nkey %s\nblob-sha256 %s\nblob-size 5\n", k, b);
	TAP_EQ(parse(text), SC_REMOTE_ERECORD, "another version refused");
	snprintf(text, sizeof(text), "scriptcache-record 1\nkey %s\nblob-sha256 %s\n", k, b);
	TAP_EQ(parse(text), SC_REMOTE_ERECORD, "missing field refused");
	snprintf(text, sizeof(text), "scriptcache-record 1\nkey %s\nkey %s\nblob-sha256 %s\nblob-size 5\n",
		 k, k, b);
	TAP_EQ(parse(text), SC_REMOTE_ERECORD, "repeated field refused");
	snprintf(text, sizeof(text), "scriptcache-record 1\nkey %s\nblob-sha256 %s\nblob-size 5", k, b);
	TAP_EQ(parse(text), SC_REMOTE_ERECORD, "cut record (no final newline) refused");
	snprintf(text, sizeof(text), "scriptcache-record 1\nkey %.63sA\nblob-sha256 %s\nblob-size 5\n", k, b);
	TAP_EQ(parse(text), SC_REMOTE_ERECORD, "upper-case hex refused");
	snprintf(text, sizeof(text), "scriptcache-record 1\nkey %s\nblob-sha256 %s\nblob-size 1073741825\n",
		 k, b);
	TAP_EQ(parse(text), SC_REMOTE_ERECORD, "blob size above SC_MAX_BLOB refused");
	snprintf(text, sizeof(text), "scriptcache-record 1\nkey %s\nblob-sha256 %s\nblob-size 05\n", k, b);
	TAP_EQ(parse(text), SC_REMOTE_ERECORD, "size with a leading zero refused");
	snprintf(text, sizeof(text),
		 "scriptcache-record 1\nkey %s\nblob-sha256 %s\nblob-size 99999999999999999999999\n", k, b);
	TAP_EQ(parse(text), SC_REMOTE_ERECORD, "size overflowing 64 bits refused");
	TAP_EQ(parse(""), SC_REMOTE_ERECORD, "empty record refused");
	TAP_EQ(parse("<html>404</html>\n"), SC_REMOTE_ERECORD, "an HTML page refused");
	memset(big, 'x', sizeof(big));
	TAP_EQ(sc_remote_record_parse(big, sizeof(big), &back), SC_REMOTE_ERECORD,
	       "oversized record refused");
}

static void test_negcache(void)
{
	unsigned char a[SC_REMOTE_DIGEST], b[SC_REMOTE_DIGEST];
	sc_remote_negcache *nc = sc_remote_negcache_new(100, 150), *off;
	struct timespec ts = { 0, 300 * 1000000L };

	memset(a, 1, sizeof(a));
	memset(b, 1, sizeof(b));
	b[31] = 2; /* same slot as a, another key */
	tap_ok(nc != NULL, "negative cache created");
	tap_ok(!sc_remote_negcache_has(nc, a), "empty: no miss remembered");
	sc_remote_negcache_add(nc, a);
	tap_ok(sc_remote_negcache_has(nc, a), "a miss is remembered");
	tap_ok(!sc_remote_negcache_has(nc, b), "another key in the same slot is not");
	nanosleep(&ts, NULL);
	tap_ok(!sc_remote_negcache_has(nc, a), "forgotten after the TTL");
	sc_remote_negcache_add(nc, a);
	sc_remote_negcache_clear(nc);
	tap_ok(!sc_remote_negcache_has(nc, a), "clear forgets");
	sc_remote_negcache_free(nc);
	off = sc_remote_negcache_new(1, 0);
	sc_remote_negcache_add(off, a);
	tap_ok(!sc_remote_negcache_has(off, a), "TTL 0 remembers nothing");
	sc_remote_negcache_free(off);
}

static void test_config(void)
{
	char why[512], path[256];
	sc_remote_config cfg;
	sc_remote *r = NULL;
	int rc;

	clear_env();
	rc = sc_remote_config_from_env(&cfg, NULL, why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG && strstr(why, "SCRIPTCACHE_REMOTE"), "no URL: explained (%s)", why);

	setenv("SCRIPTCACHE_REMOTE_MODE", "off", 1);
	rc = sc_remote_config_from_env(&cfg, NULL, why, sizeof(why));
	tap_ok(rc == 0 && cfg.mode == SC_REMOTE_OFF, "mode off needs no URL");
	TAP_EQ(sc_remote_open(&r, &cfg, why, sizeof(why)), SC_REMOTE_EOFF, "open with mode off: EOFF");
	tap_ok(r == NULL, "... and no handle");
	sc_remote_config_clear(&cfg);
	setenv("SCRIPTCACHE_REMOTE_MODE", "sometimes", 1);
	TAP_EQ(sc_remote_config_from_env(&cfg, "http://127.0.0.1:1", why, sizeof(why)),
	       SC_REMOTE_ECONFIG, "bad mode refused");
	setenv("SCRIPTCACHE_REMOTE_MODE", "RO", 1);
	rc = sc_remote_config_from_env(&cfg, "http://127.0.0.1:1/cache", why, sizeof(why));
	tap_ok(rc == 0 && cfg.mode == SC_REMOTE_RO && cfg.timeout_ms == SC_REMOTE_DEFAULT_TIMEOUT_MS &&
		       !cfg.username,
	       "mode ro, default timeout, no credentials");
	sc_remote_config_clear(&cfg);
	unsetenv("SCRIPTCACHE_REMOTE_MODE");

	setenv("SCRIPTCACHE_REMOTE_TIMEOUT_MS", "0", 1);
	TAP_EQ(sc_remote_config_from_env(&cfg, "http://127.0.0.1:1", why, sizeof(why)),
	       SC_REMOTE_ECONFIG, "timeout 0 refused");
	setenv("SCRIPTCACHE_REMOTE_TIMEOUT_MS", "250", 1);
	rc = sc_remote_config_from_env(&cfg, "http://127.0.0.1:1", why, sizeof(why));
	tap_ok(rc == 0 && cfg.timeout_ms == 250, "timeout from the environment");
	sc_remote_config_clear(&cfg);
	unsetenv("SCRIPTCACHE_REMOTE_TIMEOUT_MS");

	rc = sc_remote_config_from_env(&cfg, "http://bob:hunter2@127.0.0.1:1/", why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG && !strstr(why, "hunter2") && strstr(why, "user:password@"),
	       "URL with credentials refused, password not repeated (%s)", why);
	rc = sc_remote_config_from_env(&cfg, "http://hunter2@127.0.0.1:1/", why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG && !strstr(why, "hunter2"), "URL with a user name refused");
	rc = sc_remote_config_from_env(&cfg, "ftp://127.0.0.1/", why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG, "ftp:// refused");
	rc = sc_remote_config_from_env(&cfg, "127.0.0.1:8080", why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG, "a URL without a scheme refused");

	setenv("SCRIPTCACHE_REMOTE_AUTH", "ana:s3cr:et", 1);
	rc = sc_remote_config_from_env(&cfg, "https://cache.example/", why, sizeof(why));
	tap_ok(rc == 0 && cfg.username && strcmp(cfg.username, "ana") == 0 &&
		       strcmp(cfg.password, "s3cr:et") == 0,
	       "SCRIPTCACHE_REMOTE_AUTH user:password (':' allowed in the password)");
	/* Over TLS, a host name that is no loopback address may get them. */
	tap_ok(rc == 0 && sc_remote_open(&r, &cfg, why, sizeof(why)) == 0 && r,
	       "credentials over https:// to a non-loopback host accepted");
	sc_remote_close(r);
	r = NULL;
	sc_remote_config_clear(&cfg);
	rc = sc_remote_config_from_env(&cfg, "http://cache.example/", why, sizeof(why));
	TAP_EQ(rc, 0, "config with credentials for plain http");
	rc = sc_remote_open(&r, &cfg, why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG && !strstr(why, "s3cr"),
	       "credentials over plain http to a non-loopback host refused (%s)", why);
	sc_remote_config_clear(&cfg);
	rc = sc_remote_config_from_env(&cfg, "http://127.0.0.1:1/", why, sizeof(why));
	tap_ok(rc == 0 && sc_remote_open(&r, &cfg, why, sizeof(why)) == 0 && r,
	       "credentials over http to loopback accepted");
	tap_ok(r && strcmp(sc_remote_url(r), "http://127.0.0.1:1") == 0 &&
		       sc_remote_get_mode(r) == SC_REMOTE_RW,
	       "handle: URL without trailing slash, mode rw");
	sc_remote_close(r);
	r = NULL;
	sc_remote_config_clear(&cfg);

	snprintf(path, sizeof(path), "%s/auth", tmpdir);
	setenv("SCRIPTCACHE_REMOTE_AUTH_FILE", path, 1);
	rc = sc_remote_config_from_env(&cfg, "https://cache.example/", why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG && strstr(why, "keep one"), "AUTH and AUTH_FILE both set refused");
	unsetenv("SCRIPTCACHE_REMOTE_AUTH");

	write_file(path, "ana:filepass\n", 0644);
	rc = sc_remote_config_from_env(&cfg, "https://cache.example/", why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG && strstr(why, "chmod 600") && !strstr(why, "filepass"),
	       "auth file readable by others refused (%s)", why);
	write_file(path, "ana:filepass\n", 0600);
	rc = sc_remote_config_from_env(&cfg, "https://cache.example/", why, sizeof(why));
	tap_ok(rc == 0 && cfg.username && strcmp(cfg.username, "ana") == 0 &&
		       strcmp(cfg.password, "filepass") == 0,
	       "auth file user:password, mode 0600");
	sc_remote_config_clear(&cfg);
	write_file(path,
		   "machine other.example login eve password evepass\n"
		   "machine cache.example\n  login ana\n  password netrcpass\n"
		   "default login anon password anonpass\n", 0600);
	rc = sc_remote_config_from_env(&cfg, "https://cache.example:9090/x", why, sizeof(why));
	tap_ok(rc == 0 && cfg.username && strcmp(cfg.username, "ana") == 0 &&
		       strcmp(cfg.password, "netrcpass") == 0,
	       "netrc-style file: the URL's host");
	sc_remote_config_clear(&cfg);
	rc = sc_remote_config_from_env(&cfg, "https://third.example/", why, sizeof(why));
	tap_ok(rc == 0 && cfg.username && strcmp(cfg.username, "anon") == 0, "netrc-style file: default");
	sc_remote_config_clear(&cfg);
	write_file(path, "just-a-password\n", 0600);
	rc = sc_remote_config_from_env(&cfg, "https://cache.example/", why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG && !strstr(why, "just-a-password"),
	       "malformed auth file refused without quoting it");
	unlink(path);
	rc = sc_remote_config_from_env(&cfg, "https://cache.example/", why, sizeof(why));
	TAP_EQ(rc, -ENOENT, "missing auth file: -ENOENT");
	clear_env();
}

/* SCRIPTCACHE_REMOTE_S3: region, credentials, URL shape (docs/REMOTE.md,
 * "S3-compatible object stores"). */
static void test_config_s3(void)
{
	sc_remote_config cfg;
	sc_remote *r = NULL;
	char why[512], path[256];
	int rc;

	clear_env();
	rc = sc_remote_config_from_env(&cfg, "https://s3.example/bkt", why, sizeof(why));
	tap_ok(rc == 0 && !cfg.s3_region, "no SCRIPTCACHE_REMOTE_S3: plain HTTP");
	sc_remote_config_clear(&cfg);

	setenv("SCRIPTCACHE_REMOTE_S3", "us-east-1", 1);
	rc = sc_remote_config_from_env(&cfg, "https://s3.example/bkt", why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG && strstr(why, "AWS_ACCESS_KEY_ID"),
	       "S3 without credentials refused (%s)", why);

	/* The standard AWS variables, session token included. */
	setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
	rc = sc_remote_config_from_env(&cfg, "https://s3.example/bkt", why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG && strstr(why, "go together"),
	       "AWS_ACCESS_KEY_ID without the secret refused (%s)", why);
	setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
	setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLETOKEN", 1);
	rc = sc_remote_config_from_env(&cfg, "https://s3.example/bkt/team/scripts", why, sizeof(why));
	tap_ok(rc == 0 && cfg.s3_region && strcmp(cfg.s3_region, "us-east-1") == 0 &&
		       cfg.username && strcmp(cfg.username, "AKIDEXAMPLE") == 0 &&
		       strcmp(cfg.password, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY") == 0 &&
		       cfg.s3_session_token &&
		       strcmp(cfg.s3_session_token, "FwoGZXIvYXdzEXAMPLETOKEN") == 0,
	       "S3 credentials and session token from the AWS variables");
	tap_ok(rc == 0 && sc_remote_open(&r, &cfg, why, sizeof(why)) == 0 && r,
	       "S3 handle opens over https");
	sc_remote_close(r);
	r = NULL;
	sc_remote_config_clear(&cfg);

	/* SCRIPTCACHE_REMOTE_AUTH wins; the session token is the AWS key's only. */
	setenv("SCRIPTCACHE_REMOTE_AUTH", "minioadmin:minio:secret", 1);
	rc = sc_remote_config_from_env(&cfg, "http://127.0.0.1:9000/bkt", why, sizeof(why));
	tap_ok(rc == 0 && strcmp(cfg.username, "minioadmin") == 0 &&
		       strcmp(cfg.password, "minio:secret") == 0 && !cfg.s3_session_token,
	       "S3 keys from SCRIPTCACHE_REMOTE_AUTH before AWS_*, no session token then");
	sc_remote_config_clear(&cfg);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");

	/* The loopback/https rule stays. */
	rc = sc_remote_config_from_env(&cfg, "http://s3.example/bkt", why, sizeof(why));
	tap_ok(rc == 0 && sc_remote_open(&r, &cfg, why, sizeof(why)) == SC_REMOTE_ECONFIG &&
		       strstr(why, "https"),
	       "S3 over plain http to a non-loopback host refused (%s)", why);
	sc_remote_close(r);
	r = NULL;
	sc_remote_config_clear(&cfg);

	/* Path style, a bucket, nothing that needs URI encoding. */
	static const char *const bad_urls[] = {
		"http://127.0.0.1:9000", "http://127.0.0.1:9000/", "http://127.0.0.1:9000/b%20x",
		"http://127.0.0.1:9000/b?list-type=2", "http://127.0.0.1:9000/b//p",
		"http://127.0.0.1:9000/b/p+q",
	};
	for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		rc = sc_remote_config_from_env(&cfg, bad_urls[i], why, sizeof(why));
		tap_ok(rc == SC_REMOTE_ECONFIG && strstr(why, "BUCKET") && !strstr(why, "secret"),
		       "S3 URL %s refused", bad_urls[i]);
	}
	rc = sc_remote_config_from_env(&cfg, "http://127.0.0.1:9000/my-bucket_1/a.b/c~d/", why,
				       sizeof(why));
	TAP_EQ(rc, 0, "S3 URL with a prefix and unreserved characters");
	sc_remote_config_clear(&cfg);

	static const char *const bad_regions[] = { "us:east", "", "a b", "us-east-1/x",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	for (size_t i = 0; i < sizeof(bad_regions) / sizeof(bad_regions[0]); i++) {
		setenv("SCRIPTCACHE_REMOTE_S3", bad_regions[i], 1);
		rc = sc_remote_config_from_env(&cfg, "http://127.0.0.1:9000/b", why, sizeof(why));
		/* "" means unset, as for every variable here. */
		tap_ok(*bad_regions[i] ? rc == SC_REMOTE_ECONFIG && strstr(why, "region")
				       : rc == 0 && !cfg.s3_region,
		       "SCRIPTCACHE_REMOTE_S3='%.10s...' %s", bad_regions[i],
		       *bad_regions[i] ? "refused" : "is off");
		sc_remote_config_clear(&cfg);
	}
	setenv("SCRIPTCACHE_REMOTE_S3", "auto", 1);
	unsetenv("SCRIPTCACHE_REMOTE_AUTH");

	/* An auth file with ACCESS_KEY:SECRET; an empty secret is refused. */
	snprintf(path, sizeof(path), "%s/s3auth", tmpdir);
	write_file(path, "GOOG1EXAMPLE:gcs-hmac-secret\n", 0600);
	setenv("SCRIPTCACHE_REMOTE_AUTH_FILE", path, 1);
	rc = sc_remote_config_from_env(&cfg, "https://storage.example/bkt", why, sizeof(why));
	tap_ok(rc == 0 && strcmp(cfg.username, "GOOG1EXAMPLE") == 0 &&
		       strcmp(cfg.password, "gcs-hmac-secret") == 0 &&
		       strcmp(cfg.s3_region, "auto") == 0,
	       "S3 keys from the auth file");
	sc_remote_config_clear(&cfg);
	write_file(path, "machine storage.example login GOOG1EXAMPLE\n", 0600);
	rc = sc_remote_config_from_env(&cfg, "https://storage.example/bkt", why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG && strstr(why, "secret"), "S3 key without a secret refused");
	unlink(path);

	/* A session token with a line break could add headers: refused. */
	unsetenv("SCRIPTCACHE_REMOTE_AUTH_FILE");
	setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	setenv("AWS_SESSION_TOKEN", "tok\r\nX-Evil: 1", 1);
	rc = sc_remote_config_from_env(&cfg, "https://s3.example/bkt", why, sizeof(why));
	tap_ok(rc == SC_REMOTE_ECONFIG && strstr(why, "AWS_SESSION_TOKEN") && !strstr(why, "Evil"),
	       "session token with a line break refused, not quoted");

	/* A hand-filled configuration is checked by sc_remote_open() too. */
	cfg = (sc_remote_config){ .url = "http://127.0.0.1:9000/", .mode = SC_REMOTE_RW,
				  .username = "a", .password = "b", .s3_region = "us-east-1" };
	TAP_EQ(sc_remote_open(&r, &cfg, why, sizeof(why)), SC_REMOTE_ECONFIG,
	       "sc_remote_open: S3 URL without a bucket refused");
	sc_remote_close(r);
	r = NULL;
	cfg.url = "http://127.0.0.1:9000/bkt";
	cfg.password = NULL;
	TAP_EQ(sc_remote_open(&r, &cfg, why, sizeof(why)), SC_REMOTE_ECONFIG,
	       "sc_remote_open: S3 without a secret refused");
	sc_remote_close(r);
	clear_env();
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A lookup is bounded as a whole: a server that accepts the connection
 * (the kernel's backlog does) and never answers costs the lookup's own
 * timeout, not the handle's; a refused connection costs nothing.  This is
 * the call a mount makes while a process waits in open(). */
static void test_lookup_bound(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	sc_remote_config cfg = { 0 };
	sc_remote_ident id;
	sc_remote_stats st;
	sc_remote_negcache *nc = sc_remote_negcache_new(16, 60000);
	sc_remote *r = NULL;
	char url[64], why[512] = "";
	unsigned char key[SC_REMOTE_DIGEST];
	void *blob = (void *)1;
	size_t len = 1;
	uint64_t t0, took;
	int fd, rc;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		printf("Bail out! cannot listen on 127.0.0.1\n");
		exit(1);
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
	cfg.url = url;
	cfg.mode = SC_REMOTE_RO;
	cfg.timeout_ms = 20000; /* the handle's: the lookup's own bound must win */
	TAP_EQ(sc_remote_open(&r, &cfg, why, sizeof(why)), 0, "client on a silent socket");
	sc_remote_ident_for_source(&id, "t", "stat:1:1.0", "x", 1);
	t0 = ms_now();
	rc = sc_remote_lookup(r, &id, 300, nc, &blob, &len, why, sizeof(why));
	took = ms_now() - t0;
	TAP_EQ(rc, SC_REMOTE_ETIMEOUT, "silent server: ETIMEOUT (%s)", why);
	tap_ok(took >= 250 && took < 3000, "bounded by the lookup's 300 ms (took %llu ms)",
	       (unsigned long long)took);
	tap_ok(blob == NULL && len == 0, "no blob on failure");
	tap_ok(strstr(why, "GET ") && strstr(why, "/ac/") && strstr(why, url),
	       "the message names the request");
	sc_remote_action_key(&id, key);
	tap_ok(!sc_remote_negcache_has(nc, key), "an error is not cached as a miss");
	sc_remote_get_stats(r, &st);
	tap_ok(st.errors == 1 && st.requests == 1 && st.misses == 0, "counted as an error, not a miss");
	rc = sc_remote_store(r, &id, "b", 1, why, sizeof(why));
	TAP_EQ(rc, SC_REMOTE_EREADONLY, "store in mode ro: EREADONLY, nothing sent");
	sc_remote_get_stats(r, &st);
	TAP_EQ(st.requests, 1, "... no request");
	sc_remote_close(r);
	close(fd); /* now nobody listens there */

	cfg.mode = SC_REMOTE_RW;
	sc_remote_open(&r, &cfg, why, sizeof(why));
	t0 = ms_now();
	rc = sc_remote_lookup(r, &id, 5000, nc, &blob, &len, why, sizeof(why));
	took = ms_now() - t0;
	TAP_EQ(rc, SC_REMOTE_ECONNECT, "nobody listening: ECONNECT");
	tap_ok(took < 2000, "at once (took %llu ms)", (unsigned long long)took);
	tap_ok(sc_remote_is_transport_error(rc), "a transport error: a batch stops");
	sc_remote_close(r);
	sc_remote_negcache_free(nc);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp failed\n");
		return 1;
	}
	test_key();
	test_record();
	test_negcache();
	test_config();
	test_config_s3();
	test_lookup_bound();
	tap_ok(strcmp(sc_remote_strerror(SC_REMOTE_EINTEGRITY), sc_strerror(SC_REMOTE_EINTEGRITY)) != 0 &&
		       strcmp(sc_remote_strerror(SC_ENOTFOUND), sc_strerror(SC_ENOTFOUND)) == 0,
	       "sc_remote_strerror covers its codes and falls back to the core's");
	tap_ok(sc_remote_is_transport_error(SC_REMOTE_ETIMEOUT) &&
		       !sc_remote_is_transport_error(SC_REMOTE_ENOTFOUND) &&
		       !sc_remote_is_transport_error(SC_REMOTE_EINTEGRITY),
	       "transport errors told apart from misses and integrity failures");
	rmdir(tmpdir);
	return tap_done();
}
