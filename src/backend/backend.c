/* What is the same for every backend: the version string and the allocator hook. */
#include "backend.h"

#include <stdio.h>

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
