/* Socket reuse for fuzz targets that open, bind, connect and close one UDP socket per input
 * (fuzz_dtls_client: sn_udp_peer_connect_to_host, then sn_dtls_peer_free closes it).
 *
 * The kernel's share of that life (socket, bind to an ephemeral port, connect, close, and the
 * names read back) was ~12 % of an input's CPU, none of it about the input: datagrams travel on
 * the in-memory network (fuzz_common.h), never through the socket. So the link wraps those calls
 * (-Wl,--wrap=..., fuzz/CMakeLists.txt): sealnet still makes every call, in the same order, and
 * gets the same answers; only the kernel work is done once per process instead of per input.
 *
 * One socket is kept. A datagram socket sealnet opens and binds to the wildcard address, port 0,
 * is remembered; when sealnet closes it, it stays open as the spare. The next socket() of the
 * same family and type gets the spare back. Its bind to the wildcard address, port 0, succeeds
 * without the kernel (it is bound so already, to the same port, which an input never depends
 * on). A bind anywhere else would fail on the spare (already bound) where a fresh socket would
 * bind, so only a target whose sockets are all bound to the wildcard address may link this
 * file. A connect to the address it is already connected to succeeds without the kernel
 * (connecting a UDP socket again to the same address changes nothing). Its name and peer name are
 * read from the kernel once after each real bind or connect. One answer differs: between that bind
 * and the connect, getsockname shows the address the kept socket is still connected from, not the
 * wildcard; sealnet reads only the family and port there. Any other call goes to the kernel.
 * Single-threaded, as the targets are. */
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

int __real_socket(int domain, int type, int protocol);
int __real_bind(int fd, const struct sockaddr *addr, socklen_t len);
int __real_connect(int fd, const struct sockaddr *addr, socklen_t len);
int __real_close(int fd);
int __wrap_socket(int domain, int type, int protocol);
int __wrap_bind(int fd, const struct sockaddr *addr, socklen_t len);
int __wrap_connect(int fd, const struct sockaddr *addr, socklen_t len);
int __wrap_close(int fd);
int __real_getsockname(int fd, struct sockaddr *addr, socklen_t *len);
int __real_getpeername(int fd, struct sockaddr *addr, socklen_t *len);
int __wrap_getsockname(int fd, struct sockaddr *addr, socklen_t *len);
int __wrap_getpeername(int fd, struct sockaddr *addr, socklen_t *len);

static struct {
    int fd;                          /* the kept socket, -1 before the first */
    int domain, type, protocol;      /* as it was opened */
    bool wildcard_bound;             /* bound to the wildcard address, port 0 asked */
    bool open;                       /* sealnet holds it (false: it is the spare) */
    struct sockaddr_storage peer;    /* what it is connected to */
    socklen_t peer_len;              /* 0: not connected */
    struct sockaddr_storage name[2]; /* getsockname, getpeername since the last bind or connect */
    socklen_t name_len[2];           /* 0: not asked yet */
} kept = {.fd = -1};

static void names_changed(void)
{
    kept.name_len[0] = kept.name_len[1] = 0;
}

/* The kept socket's name or peer name: asked once after each real bind or connect. */
static int cached_name(int which, int fd, struct sockaddr *addr, socklen_t *len)
{
    if (fd < 0 || fd != kept.fd || !kept.open)
        return which ? __real_getpeername(fd, addr, len) : __real_getsockname(fd, addr, len);
    if (!kept.name_len[which]) {
        socklen_t n = sizeof kept.name[which];
        struct sockaddr *a = (struct sockaddr *)&kept.name[which];
        int r = which ? __real_getpeername(fd, a, &n) : __real_getsockname(fd, a, &n);
        if (r != 0) return r;
        kept.name_len[which] = n;
    }
    socklen_t n = kept.name_len[which];
    memcpy(addr, &kept.name[which], n < *len ? n : *len);
    *len = n;
    return 0;
}

int __wrap_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    return cached_name(0, fd, addr, len);
}

int __wrap_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    return cached_name(1, fd, addr, len);
}

static bool is_wildcard_any_port(const struct sockaddr *a, socklen_t len)
{
    if (a->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
        return v4->sin_port == 0 && v4->sin_addr.s_addr == htonl(INADDR_ANY);
    }
    if (a->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;
        return v6->sin6_port == 0 && !memcmp(&v6->sin6_addr, &in6addr_any, sizeof in6addr_any);
    }
    return false;
}

int __wrap_socket(int domain, int type, int protocol)
{
    if (kept.fd >= 0 && !kept.open && kept.domain == domain && kept.type == type &&
        kept.protocol == protocol) {
        kept.open = true;
        return kept.fd;
    }
    int fd = __real_socket(domain, type, protocol);
    if (fd >= 0 && kept.fd < 0 && (type & 0xff) == SOCK_DGRAM) {
        kept.fd = fd;
        kept.domain = domain;
        kept.type = type;
        kept.protocol = protocol;
        kept.wildcard_bound = false;
        kept.open = true;
        kept.peer_len = 0;
        names_changed();
    }
    return fd;
}

int __wrap_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (fd != kept.fd || fd < 0) return __real_bind(fd, addr, len);
    bool wildcard = is_wildcard_any_port(addr, len);
    if (kept.wildcard_bound && wildcard) return 0;
    int r = __real_bind(fd, addr, len);
    names_changed();
    if (r == 0) kept.wildcard_bound = wildcard;
    return r;
}

int __wrap_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (fd != kept.fd || fd < 0) return __real_connect(fd, addr, len);
    if (kept.peer_len == len && len <= sizeof kept.peer && !memcmp(&kept.peer, addr, len)) return 0;
    int r = __real_connect(fd, addr, len);
    names_changed();
    kept.peer_len = 0;
    if (r == 0 && len <= sizeof kept.peer) {
        memcpy(&kept.peer, addr, len);
        kept.peer_len = len;
    }
    return r;
}

int __wrap_close(int fd)
{
    if (fd < 0 || fd != kept.fd) return __real_close(fd);
    /* Only a socket in the state a fresh one reaches by the same calls is kept: one bound
     * anywhere else would answer a later bind differently from a fresh socket. */
    if (!kept.wildcard_bound) {
        kept.fd = -1;
        return __real_close(fd);
    }
    kept.open = false;
    return 0;
}
