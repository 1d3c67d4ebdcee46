/*
 * negcache.c - recent remote misses.  A mount that looks up every script
 * an interpreter opens would otherwise ask the server again for each open
 * of a script the fleet never compiled.  Direct-mapped: the action key is
 * a SHA-256, so its first bytes are already a uniform slot number, and a
 * collision only costs one more request later.  Memory is fixed at
 * creation; nothing here can grow with the number of keys.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sc_remote.h"

struct negslot {
	unsigned char key[SC_REMOTE_DIGEST];
	uint64_t until_ns; /* CLOCK_MONOTONIC; 0: empty */
};

struct sc_remote_negcache {
	pthread_mutex_t nc_lock;
	size_t nc_mask;
	uint64_t nc_ttl_ns;
	struct negslot *nc_slots;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t slot_of(const sc_remote_negcache *nc, const unsigned char key[SC_REMOTE_DIGEST])
{
	uint64_t v;

	memcpy(&v, key, sizeof(v));
	return (size_t)v & nc->nc_mask;
}

sc_remote_negcache *sc_remote_negcache_new(size_t slots, unsigned ttl_ms)
{
	sc_remote_negcache *nc;
	size_t n = 1;

	if (slots > ((size_t)1 << 24))
		slots = (size_t)1 << 24;
	while (n < slots)
		n <<= 1;
	nc = calloc(1, sizeof(*nc));
	if (!nc)
		return NULL;
	nc->nc_slots = calloc(n, sizeof(*nc->nc_slots));
	if (!nc->nc_slots || pthread_mutex_init(&nc->nc_lock, NULL) != 0) {
		free(nc->nc_slots);
		free(nc);
		return NULL;
	}
	nc->nc_mask = n - 1;
	nc->nc_ttl_ns = (uint64_t)ttl_ms * 1000000u;
	return nc;
}

void sc_remote_negcache_free(sc_remote_negcache *nc)
{
	if (!nc)
		return;
	pthread_mutex_destroy(&nc->nc_lock);
	free(nc->nc_slots);
	free(nc);
}

int sc_remote_negcache_has(sc_remote_negcache *nc, const unsigned char key[SC_REMOTE_DIGEST])
{
	struct negslot *s = &nc->nc_slots[slot_of(nc, key)];
	int has;

	pthread_mutex_lock(&nc->nc_lock);
	has = s->until_ns != 0 && memcmp(s->key, key, SC_REMOTE_DIGEST) == 0 &&
	      now_ns() < s->until_ns;
	pthread_mutex_unlock(&nc->nc_lock);
	return has;
}

void sc_remote_negcache_add(sc_remote_negcache *nc, const unsigned char key[SC_REMOTE_DIGEST])
{
	struct negslot *s = &nc->nc_slots[slot_of(nc, key)];

	if (nc->nc_ttl_ns == 0)
		return;
	pthread_mutex_lock(&nc->nc_lock);
	memcpy(s->key, key, SC_REMOTE_DIGEST);
	s->until_ns = now_ns() + nc->nc_ttl_ns;
	pthread_mutex_unlock(&nc->nc_lock);
}

void sc_remote_negcache_clear(sc_remote_negcache *nc)
{
	pthread_mutex_lock(&nc->nc_lock);
	memset(nc->nc_slots, 0, (nc->nc_mask + 1) * sizeof(*nc->nc_slots));
	pthread_mutex_unlock(&nc->nc_lock);
}
