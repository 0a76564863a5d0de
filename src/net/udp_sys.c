/* The datagram system calls every UDP socket of sealnet makes, in one place: the kernel's
 * sendto/send/recvmmsg, or the program's sn_udp_transport override. A port to another system
 * starts here. */
#include "udp_sys.h"

#include <linux/sock_diag.h>

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static sn_udp_transport installed;
static atomic_bool overridden;

sn_err sn_set_udp_transport(const sn_udp_transport *t)
{
    if (t && (!t->send || !t->recv))
        return sn_fail(SN_ERR_INVALID_PARAMETER,
                       "sn_set_udp_transport: both send and recv are required");
    atomic_store(&overridden, false);
    if (t) {
        installed = *t;
        atomic_store(&overridden, true);
    }
    return SN_OK;
}

bool sn_udp_transport_is_overridden(void)
{
    return atomic_load_explicit(&overridden, memory_order_acquire);
}

ssize_t sn_udp_sys_send(int fd, const void *buf, size_t len, const struct sockaddr *to,
                        socklen_t to_len)
{
    ssize_t r;
    if (sn_udp_transport_is_overridden()) {
        r = installed.send(installed.user, fd, buf, len, to, to ? (unsigned)to_len : 0);
        return r;
    }
    do
        r = to ? sendto(fd, buf, len, 0, to, to_len) : send(fd, buf, len, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

int sn_udp_sys_sendmmsg(int fd, struct mmsghdr *msgs, unsigned n)
{
    if (sn_udp_transport_is_overridden()) {
        for (unsigned i = 0; i < n; i++) {
            const struct msghdr *h = &msgs[i].msg_hdr;
            long r = installed.send(installed.user, fd, h->msg_iov[0].iov_base,
                                    h->msg_iov[0].iov_len, h->msg_name, (unsigned)h->msg_namelen);
            if (r < 0) return i > 0 ? (int)i : -1; /* errno from the hook */
            msgs[i].msg_len = (unsigned)r;
        }
        return (int)n;
    }
    int r;
    do
        r = sendmmsg(fd, msgs, n, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

/* recvmmsg through the override: one call per datagram, scattered into the message's iovecs
 * as the kernel would (MSG_TRUNC when it did not fit). */
static int emulate_recvmmsg(int fd, struct mmsghdr *msgs, unsigned n)
{
    static _Thread_local uint8_t buf[65536];
    for (unsigned i = 0; i < n; i++) {
        struct msghdr *h = &msgs[i].msg_hdr;
        unsigned from_len = (unsigned)h->msg_namelen;
        long r = installed.recv(installed.user, fd, buf, sizeof buf, h->msg_name, &from_len);
        if (r < 0) {
            if (i > 0) return (int)i; /* the error shows again at the next call */
            return -1;
        }
        size_t len = (size_t)r < sizeof buf ? (size_t)r : sizeof buf, off = 0;
        for (size_t k = 0; k < h->msg_iovlen && off < len; k++) {
            size_t part = h->msg_iov[k].iov_len < len - off ? h->msg_iov[k].iov_len : len - off;
            memcpy(h->msg_iov[k].iov_base, buf + off, part);
            off += part;
        }
        h->msg_namelen = (socklen_t)from_len;
        h->msg_flags = (size_t)r > off ? MSG_TRUNC : 0;
        msgs[i].msg_len = (unsigned)off;
    }
    return (int)n;
}

int sn_udp_sys_recvmmsg(int fd, struct mmsghdr *msgs, unsigned n)
{
    if (sn_udp_transport_is_overridden()) return emulate_recvmmsg(fd, msgs, n);
    int r;
    do
        r = recvmmsg(fd, msgs, n, MSG_DONTWAIT, NULL);
    while (r < 0 && errno == EINTR);
    return r;
}

uint64_t sn_udp_sys_drops(int fd)
{
    if (fd < 0) return 0;
    if (sn_udp_transport_is_overridden() && installed.drops)
        return installed.drops(installed.user, fd);
    uint32_t info[SK_MEMINFO_VARS] = {0};
    socklen_t len = sizeof info;
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, info, &len) != 0 ||
        len < (socklen_t)((SK_MEMINFO_DROPS + 1) * sizeof info[0]))
        return 0;
    return info[SK_MEMINFO_DROPS];
}

void sn_udp_sys_forget(int fd)
{
    if (fd >= 0 && sn_udp_transport_is_overridden() && installed.forget)
        installed.forget(installed.user, fd);
}

void sn_udp_sys_close(int fd)
{
    if (fd < 0) return;
    sn_udp_sys_forget(fd);
    close(fd);
}
