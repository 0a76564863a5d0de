/* What is the same for every backend: the version string and the allocator hook. */
#include "backend.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

const char *sn_version(void)
{
    static char version[160];
    if (!version[0])
        snprintf(version, sizeof version, "%s (%s)", SN_VERSION_STRING,
                 sn_tls_backend_get()->library_version());
    return version;
}

static bool backend_routed;

sn_err sn_set_allocator(const sn_allocator *a)
{
    sn_err e = sn_core_set_allocator(a);
    if (e != SN_OK) return e;
    /* The backend binds to the allocator current at this moment, or refuses (it has allocated
     * already); it never follows a later change, so its blocks are always freed by their own. */
    const sn_tls_backend *be = sn_tls_backend_get();
    backend_routed = a && be->route_allocator && be->route_allocator(sn_core_allocator());
    return SN_OK;
}

bool sn_allocator_covers_backend(void)
{
    return backend_routed;
}

sn_err sn_tls_require(unsigned caps, const char *what)
{
    const sn_tls_backend *be = sn_tls_backend_get();
    if ((be->caps & caps) == caps) return SN_OK;
    return sn_fail(SN_ERR_UNAVAILABLE, "the %s backend does not support %s", be->name, what);
}

/* --- session-ticket keys -------------------------------------------------------------------- */

struct sn_tls_ticket_keys {
    atomic_int refs;
    pthread_mutex_t lock;
    size_t n;
    uint8_t keys[SN_TICKET_KEYS_MAX][SN_TICKET_KEY_LEN];
    _Atomic uint64_t counters[4]; /* in sn_tls_ticket_counters order */
};

sn_tls_ticket_keys *sn_tls_ticket_keys_new(void)
{
    sn_tls_ticket_keys *k = sn_calloc(1, sizeof *k);
    if (!k) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    atomic_init(&k->refs, 1);
    if (pthread_mutex_init(&k->lock, NULL) != 0) {
        sn_free(k);
        return sn_fail_null(SN_FAILED, "cannot create a mutex");
    }
    for (int i = 0; i < 4; i++)
        atomic_init(&k->counters[i], 0);
    return k;
}

sn_tls_ticket_keys *sn_tls_ticket_keys_ref(sn_tls_ticket_keys *k)
{
    if (k) atomic_fetch_add(&k->refs, 1);
    return k;
}

void sn_tls_ticket_keys_unref(sn_tls_ticket_keys *k)
{
    if (!k || atomic_fetch_sub(&k->refs, 1) != 1) return;
    pthread_mutex_destroy(&k->lock);
    /* Whoever holds these keys can open every ticket: do not leave them in freed memory. */
    memset(k->keys, 0, sizeof k->keys);
    sn_free(k);
}

sn_err sn_tls_ticket_keys_set(sn_tls_ticket_keys *k, const uint8_t *keys, size_t n)
{
    if (!k || !keys) return sn_fail(SN_ERR_INVALID_PARAMETER, "ticket keys: NULL argument");
    if (n < 1 || n > SN_TICKET_KEYS_MAX)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                       "ticket keys: %zu keys given; 1 (current) or 2 (current, previous)", n);
    pthread_mutex_lock(&k->lock);
    memset(k->keys, 0, sizeof k->keys);
    memcpy(k->keys, keys, n * SN_TICKET_KEY_LEN);
    k->n = n;
    pthread_mutex_unlock(&k->lock);
    return SN_OK;
}

bool sn_tls_ticket_keys_current(sn_tls_ticket_keys *k, uint8_t out[SN_TICKET_KEY_LEN])
{
    pthread_mutex_lock(&k->lock);
    bool ok = k->n > 0;
    if (ok) memcpy(out, k->keys[0], SN_TICKET_KEY_LEN);
    pthread_mutex_unlock(&k->lock);
    return ok;
}

int sn_tls_ticket_keys_find(sn_tls_ticket_keys *k, const uint8_t *name,
                            uint8_t out[SN_TICKET_KEY_LEN])
{
    int found = 0;
    pthread_mutex_lock(&k->lock);
    for (size_t i = 0; i < k->n && !found; i++)
        if (memcmp(k->keys[i], name, 16) == 0) {
            memcpy(out, k->keys[i], SN_TICKET_KEY_LEN);
            found = (int)i + 1;
        }
    pthread_mutex_unlock(&k->lock);
    return found;
}

void sn_tls_ticket_keys_count(sn_tls_ticket_keys *k, size_t field_offset)
{
    if (k) atomic_fetch_add(&k->counters[field_offset / sizeof(uint64_t)], 1);
}

void sn_tls_ticket_keys_counters(sn_tls_ticket_keys *k, sn_tls_ticket_counters *out)
{
    memset(out, 0, sizeof *out);
    if (!k) return;
    out->issued = atomic_load(&k->counters[0]);
    out->resumed = atomic_load(&k->counters[1]);
    out->unknown_key = atomic_load(&k->counters[2]);
    out->rejected = atomic_load(&k->counters[3]);
}

/* ---- saved client sessions --------------------------------------------------------------------
 */

void sn_tls_saved_init(sn_tls_saved_sessions *s, void (*drop)(void *session))
{
    memset(s->slot, 0, sizeof s->slot);
    s->use_clock = 0;
    s->drop = drop;
    pthread_mutex_init(&s->lock, NULL);
}

void sn_tls_saved_destroy(sn_tls_saved_sessions *s)
{
    for (int i = 0; i < SN_TLS_SAVED_SESSIONS; i++)
        if (s->slot[i].session) s->drop(s->slot[i].session);
    pthread_mutex_destroy(&s->lock);
}

bool sn_tls_saved_use(sn_tls_saved_sessions *s, const char *key,
                      void (*use)(void *session, void *user), void *user)
{
    bool found = false;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < SN_TLS_SAVED_SESSIONS && !found; i++) {
        struct sn_tls_saved_session *e = &s->slot[i];
        if (!e->session || strcmp(e->key, key) != 0) continue;
        use(e->session, user);
        e->used = ++s->use_clock;
        found = true;
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

void sn_tls_saved_put(sn_tls_saved_sessions *s, const char *key, void *session)
{
    if (strlen(key) >= sizeof s->slot[0].key) {
        s->drop(session);
        return;
    }
    pthread_mutex_lock(&s->lock);
    struct sn_tls_saved_session *slot = NULL;
    for (int i = 0; i < SN_TLS_SAVED_SESSIONS && !slot; i++)
        if (s->slot[i].session && strcmp(s->slot[i].key, key) == 0) slot = &s->slot[i];
    for (int i = 0; i < SN_TLS_SAVED_SESSIONS && !slot; i++)
        if (!s->slot[i].session) slot = &s->slot[i];
    if (!slot) {
        slot = &s->slot[0];
        for (int i = 1; i < SN_TLS_SAVED_SESSIONS; i++)
            if (s->slot[i].used < slot->used) slot = &s->slot[i];
    }
    void *old = slot->session;
    slot->session = session;
    slot->used = ++s->use_clock;
    snprintf(slot->key, sizeof slot->key, "%s", key);
    pthread_mutex_unlock(&s->lock);
    if (old) s->drop(old);
}
