/*
 * sc_remote.h - libscriptcache-remote: a shared tier of compiled scripts on
 * an existing HTTP cache server (docs/REMOTE.md).
 *
 * A remote entry is keyed by what makes it valid on any machine: the
 * interpreter fingerprint (tag and executable identity) and the source's
 * content (XXH3-128 and size), never a path or an mtime.  The server holds
 * two kinds of objects in the Bazel remote-cache HTTP layout:
 *
 *   /ac/<action key, 64 hex>   the action record (sc_remote_record_*)
 *   /cas/<sha256, 64 hex>      the compiled bytes, content-addressed
 *
 * Every downloaded blob is checked against the SHA-256 its record names.
 *
 * This library sits beside libscriptcache, not in it: it links libcurl and
 * OpenSSL's libcrypto, and only tools (the scriptcache CLI, the FUSE daemon)
 * use it, so an interpreter linked to libscriptcache never waits on the
 * network.  It uses only the public API of scriptcache.h.
 *
 * Conventions, as in scriptcache.h: functions return 0 or a negative code,
 * either SC_REMOTE_E* (-31099..-31000), an SC_E* code of the core, or a
 * negated errno; sc_remote_strerror() describes them all.  The library
 * never prints; the messages it fills in (@p why buffers) never contain
 * credentials.  A handle (sc_remote) may be used from several threads.
 */
#ifndef SC_REMOTE_H
#define SC_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "scriptcache.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup remote_errors Error codes of the remote tier
 * @{ */
#define SC_REMOTE_ENOTFOUND  (-31000) /**< remote miss: no record for this key (HTTP 404) */
#define SC_REMOTE_EINTEGRITY (-31001) /**< downloaded blob does not have the record's SHA-256 or size */
#define SC_REMOTE_ERECORD    (-31002) /**< the action record is malformed, of another version or for another key */
#define SC_REMOTE_ETIMEOUT   (-31003) /**< the server did not answer within the timeout */
#define SC_REMOTE_ECONNECT   (-31004) /**< cannot resolve or connect to the server */
#define SC_REMOTE_ETLS       (-31005) /**< TLS handshake or certificate verification failed */
#define SC_REMOTE_EAUTH      (-31006) /**< the server refused the credentials (HTTP 401/403) */
#define SC_REMOTE_EHTTP      (-31007) /**< unexpected HTTP status */
#define SC_REMOTE_ETRANSFER  (-31008) /**< other transfer failure (connection reset, ...) */
#define SC_REMOTE_EREADONLY  (-31009) /**< remote mode is read-only: nothing is ever sent */
#define SC_REMOTE_EOFF       (-31010) /**< remote mode is off */
#define SC_REMOTE_ECONFIG    (-31011) /**< bad configuration (see the @p why message) */
#define SC_REMOTE_ETOOBIG    (-31012) /**< the server sent more than the record or the format allows */
/** @} */

/** Nonzero for the codes that say the server is unusable right now (it
 *  did not answer, refused the connection, the TLS or the credentials):
 *  a batch should stop rather than wait again for every item. */
int sc_remote_is_transport_error(int err);

/** Describe any code of this library, of the core, or -errno.  Never NULL. */
const char *sc_remote_strerror(int err);

/* ---- Keys and records (pure functions, no network) ---- */

/** Length of a SHA-256 digest, and of its hex spelling with the NUL. */
#define SC_REMOTE_DIGEST 32
#define SC_REMOTE_HEX (2 * SC_REMOTE_DIGEST + 1)

/** Version string hashed first into every action key (docs/REMOTE.md). */
#define SC_REMOTE_KEY_SCHEME "scriptcache-ac-v1"

/** What makes a compiled script valid anywhere: the inputs of the action key. */
typedef struct sc_remote_ident {
	const char *tag;         /**< fingerprint tag (need not be NUL-terminated) */
	size_t tag_len;
	const char *exe_id;      /**< sc_exe_identity(), or sc_entry_info.exe_id */
	size_t exe_id_len;
	uint64_t source_hash[2]; /**< XXH3-128 of the source's bytes (low, high), as sc_entry_info */
	uint64_t source_size;    /**< the source's size in bytes */
} sc_remote_ident;

/**
 * Fill @p id from an entry of the local shard.  The pointers in @p id point
 * into @p e and live as long as it does.
 * @return 0, or SC_REMOTE_ENOTFOUND if the entry has no source or no
 *         source hash (it cannot be keyed portably).
 */
int sc_remote_ident_from_entry(const sc_entry_info *e, sc_remote_ident *id);

/**
 * Fill @p id for a source whose bytes the caller has read: hashes
 * @p source (XXH3-128, as the core records it) and points tag/exe_id at the
 * caller's strings, which must outlive @p id.
 */
void sc_remote_ident_for_source(sc_remote_ident *id, const char *tag, const char *exe_id,
				const void *source, size_t source_len);

/**
 * The action key: SHA-256 over the length-prefixed fields SC_REMOTE_KEY_SCHEME,
 * tag, exe_id, source hash (16 bytes, XXH128 canonical big-endian) and source
 * size (8 bytes big-endian), each field a 4-byte big-endian length and its
 * bytes.  @return 0, or -EINVAL for a field longer than 2^32-1 bytes.
 */
int sc_remote_action_key(const sc_remote_ident *id, unsigned char key[SC_REMOTE_DIGEST]);

/** SHA-256 of @p len bytes.  @return 0 or -ENOMEM. */
int sc_remote_sha256(const void *data, size_t len, unsigned char out[SC_REMOTE_DIGEST]);

/** Lower-case hex of a digest, NUL-terminated.  Returns @p out. */
char *sc_remote_hex(const unsigned char d[SC_REMOTE_DIGEST], char out[SC_REMOTE_HEX]);

/** The action record stored at /ac/<key>. */
typedef struct sc_remote_record {
	unsigned char key[SC_REMOTE_DIGEST];         /**< the action key it answers */
	unsigned char blob_sha256[SC_REMOTE_DIGEST]; /**< name of the blob under /cas/ */
	uint64_t blob_size;
} sc_remote_record;

/** Largest action record accepted from a server, in bytes. */
#define SC_REMOTE_RECORD_MAX 4096

/**
 * Write @p rec in the record format (version 1, docs/REMOTE.md) into
 * @p buf.  @return its length, or -ENOBUFS if @p cap is too small
 * (SC_REMOTE_RECORD_MAX always suffices).
 */
int sc_remote_record_format(const sc_remote_record *rec, char *buf, size_t cap);

/**
 * Parse a record received from a server (hostile input).
 * @return 0; SC_REMOTE_ERECORD for anything but a well-formed version 1
 *         record (missing or repeated field, bad hex, a size above
 *         SC_MAX_BLOB, another version, longer than SC_REMOTE_RECORD_MAX).
 */
int sc_remote_record_parse(const void *buf, size_t len, sc_remote_record *rec);

/* ---- Configuration ---- */

typedef enum sc_remote_mode {
	SC_REMOTE_OFF = 0, /**< never talk to a server */
	SC_REMOTE_RO,      /**< look up and download only: never sends PUT */
	SC_REMOTE_RW,      /**< look up, download and upload */
} sc_remote_mode;

/** Default per-request timeout of tools (SCRIPTCACHE_REMOTE_TIMEOUT_MS). */
#define SC_REMOTE_DEFAULT_TIMEOUT_MS 2000

/** How to reach the server.  Strings are owned by the configuration when it
 *  was filled by sc_remote_config_from_env(); free with sc_remote_config_clear(). */
typedef struct sc_remote_config {
	char *url;        /**< base URL, http:// or https://, without credentials */
	sc_remote_mode mode;
	long timeout_ms;  /**< bound on each request (connect included) */
	char *username;   /**< NULL: no authentication */
	char *password;
	char *ca_file;    /**< PEM file of CA certificates; NULL: the system store */
	/** S3-compatible object store (docs/REMOTE.md): the region every request
	 *  is signed for with AWS Signature Version 4 (username: access key,
	 *  password: secret key); NULL: plain HTTP, basic authentication. */
	char *s3_region;
	char *s3_session_token; /**< AWS_SESSION_TOKEN, sent as x-amz-security-token; NULL: none */
} sc_remote_config;

/**
 * Fill @p cfg from the environment (docs/REMOTE.md): SCRIPTCACHE_REMOTE
 * (overridden by @p url if not NULL), SCRIPTCACHE_REMOTE_MODE (rw, ro,
 * off; default rw), SCRIPTCACHE_REMOTE_TIMEOUT_MS, SCRIPTCACHE_REMOTE_AUTH
 * ("user:password") or SCRIPTCACHE_REMOTE_AUTH_FILE (a "user:password"
 * line or netrc-style "machine HOST login USER password PASS" lines; the
 * file must be yours and not readable by group or others), and
 * SCRIPTCACHE_REMOTE_CA_FILE.  SCRIPTCACHE_REMOTE_S3=REGION signs every
 * request with AWS Signature Version 4 instead (an S3-compatible object
 * store, URL http(s)://ENDPOINT/BUCKET[/PREFIX]); its access key and secret
 * come from the same two variables ("ACCESS_KEY:SECRET"), else from
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.  The URL
 * is checked as sc_remote_open() would (see there).  A mode of off needs no
 * URL.
 *
 * @param[out] why  on failure, a one-line reason that never contains a
 *                  credential (@p why_len bytes, may be 0).
 * @return 0; SC_REMOTE_ECONFIG (no URL, a URL with credentials, a bad mode,
 *         timeout or auth file); -errno (an unreadable auth file); -ENOMEM.
 *         On failure @p cfg holds nothing to free.
 */
int sc_remote_config_from_env(sc_remote_config *cfg, const char *url, char *why, size_t why_len);

/** Free the strings of @p cfg (the password is wiped first) and zero it. */
void sc_remote_config_clear(sc_remote_config *cfg);

/* ---- The client ---- */

/** Opaque handle on one remote. */
typedef struct sc_remote sc_remote;

/**
 * Open a client on @p cfg (copied: @p cfg may be cleared afterwards).
 * Refuses a URL that is not http:// or https://, or that carries a user
 * name or password (credentials belong in the auth file or environment,
 * where ps(1) and logs do not show them), and credentials for a plain
 * http:// URL other than a loopback host.  Nothing is sent yet.
 * @param[out] why  as sc_remote_config_from_env().
 * @return 0; SC_REMOTE_EOFF (mode off: *out is NULL); SC_REMOTE_ECONFIG;
 *         -ENOMEM.  sc_remote_close() is safe on *out after a failure.
 */
int sc_remote_open(sc_remote **out, const sc_remote_config *cfg, char *why, size_t why_len);

/** Close a client.  NULL is allowed. */
void sc_remote_close(sc_remote *r);

/** The client's mode and base URL (credential-free; valid until close). */
sc_remote_mode sc_remote_get_mode(const sc_remote *r);
const char *sc_remote_url(const sc_remote *r);

/** Counters since sc_remote_open(). */
typedef struct sc_remote_stats {
	uint64_t hits;               /**< lookups answered with a verified blob */
	uint64_t misses;             /**< lookups without a record (404) */
	uint64_t negative_hits;      /**< misses answered by the negative cache, no request */
	uint64_t errors;             /**< failed requests (transport, HTTP, bad record) */
	uint64_t integrity_failures; /**< blobs refused: SHA-256 or size mismatch */
	uint64_t blobs_uploaded;     /**< PUT /cas/ */
	uint64_t blobs_present;      /**< uploads skipped: the server had the blob */
	uint64_t records_uploaded;   /**< PUT /ac/ */
	uint64_t records_present;    /**< record uploads skipped: the server had the same record */
	uint64_t requests;           /**< HTTP requests sent */
	uint64_t bytes_down;         /**< response bodies received */
	uint64_t bytes_up;           /**< request bodies sent */
	uint64_t time_ns;            /**< wall time spent in requests */
} sc_remote_stats;

void sc_remote_get_stats(sc_remote *r, sc_remote_stats *out);

/* ---- Negative cache: recent remote misses, so that a miss costs one
 * request per key per TTL, not one per lookup ---- */

typedef struct sc_remote_negcache sc_remote_negcache;

/**
 * A negative cache of @p slots entries (rounded up to a power of two; a
 * key that collides replaces the older one), each remembered for
 * @p ttl_ms milliseconds.  Thread-safe.  @return NULL on ENOMEM.
 */
sc_remote_negcache *sc_remote_negcache_new(size_t slots, unsigned ttl_ms);
void sc_remote_negcache_free(sc_remote_negcache *nc);
/** Nonzero if @p key missed less than the TTL ago. */
int sc_remote_negcache_has(sc_remote_negcache *nc, const unsigned char key[SC_REMOTE_DIGEST]);
void sc_remote_negcache_add(sc_remote_negcache *nc, const unsigned char key[SC_REMOTE_DIGEST]);
/** Forget every miss (e.g. after a push). */
void sc_remote_negcache_clear(sc_remote_negcache *nc);

/* ---- Operations ---- */

/**
 * Look up the compiled blob for @p id: GET /ac/<key>, check the record,
 * GET /cas/<sha256>, check the blob's size and SHA-256.  The whole lookup
 * (both requests, connect included) takes at most @p timeout_ms
 * milliseconds (<= 0: the handle's timeout per request).
 *
 * @param nc  a negative cache, or NULL: a key in it misses at once; a
 *            key the server does not have (404) is added to it.  Errors
 *            are not cached as misses.
 * @param[out] blob  on success, malloc'd bytes the caller frees.
 * @param[out] len   their length.
 * @param[out] why   on an error other than a miss, one line naming the
 *                   request and what went wrong (may be NULL).
 * @return 0; SC_REMOTE_ENOTFOUND; SC_REMOTE_EINTEGRITY; SC_REMOTE_ERECORD;
 *         SC_REMOTE_ETIMEOUT and the other transport codes; SC_REMOTE_ETOOBIG;
 *         -ENOMEM.
 */
int sc_remote_lookup(sc_remote *r, const sc_remote_ident *id, long timeout_ms,
		     sc_remote_negcache *nc, void **blob, size_t *len, char *why, size_t why_len);

/**
 * sc_remote_lookup() for a checker (scriptcache verify --remote), without
 * a negative cache, that also says what the record was: *have_rec is 1
 * and *rec filled once the server gave a valid record for the key, so
 * that a record whose blob is gone (SC_REMOTE_ENOTFOUND with *have_rec)
 * is told from no record at all, and the blob's name can be compared with
 * the SHA-256 of a local copy.  Same returns as sc_remote_lookup().
 */
int sc_remote_fetch(sc_remote *r, const sc_remote_ident *id, long timeout_ms,
		    sc_remote_record *rec, int *have_rec, void **blob, size_t *len, char *why,
		    size_t why_len);

/**
 * Upload one compiled blob for @p id: HEAD /cas/<sha256> and PUT it only
 * if the server does not have it; GET /ac/<key> and PUT the record only if
 * the server's differs.  @p blob must already be checked by the caller
 * (sc_lookup() checksums it).  @p why: as sc_remote_lookup().
 * @return 0; SC_REMOTE_EREADONLY (mode ro: nothing is sent); transport and
 *         HTTP codes; -ENOMEM.
 */
int sc_remote_store(sc_remote *r, const sc_remote_ident *id, const void *blob, size_t len,
		    char *why, size_t why_len);

#ifdef __cplusplus
}
#endif
#endif /* SC_REMOTE_H */
