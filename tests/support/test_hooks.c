/* Test doubles for the clock and the UDP transport (test_hooks.h). */
#include "test_hooks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

static uint64_t fake_us;

static uint64_t fake_clock(void *user)
{
    (void)user;
    return __atomic_load_n(&fake_us, __ATOMIC_ACQUIRE);
}

void sn_test_clock_install(uint64_t start_ms)
{
    __atomic_store_n(&fake_us, start_ms * 1000u, __ATOMIC_RELEASE);
    sn_set_clock(fake_clock, NULL);
}

void sn_test_clock_advance(uint64_t ms)
{
    __atomic_fetch_add(&fake_us, ms * 1000u, __ATOMIC_ACQ_REL);
}

uint64_t sn_test_clock_now_ms(void)
{
    return fake_clock(NULL) / 1000u;
}

void sn_test_clock_remove(void)
{
    sn_set_clock(NULL, NULL);
}

static int fail_fd = -2, fail_errno;
static int fail_port, fail_port_errno;

static int port_of(const struct sockaddr *to)
{
    if (!to) return -1;
    if (to->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)to)->sin_port);
    if (to->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)to)->sin6_port);
    return -1;
}
static unsigned long failed_sends;

static long pass_send(void *user, int fd, const void *buf, size_t len, const struct sockaddr *to,
                      unsigned to_len)
{
    (void)user;
    if (fail_port_errno && port_of(to) == fail_port) {
        failed_sends++;
        errno = fail_port_errno;
        return -1;
    }
    if (fail_errno && (fail_fd == -1 || fail_fd == fd)) {
        failed_sends++;
        errno = fail_errno;
        return -1;
    }
    return to ? (long)sendto(fd, buf, len, MSG_DONTWAIT, to, (socklen_t)to_len)
              : (long)send(fd, buf, len, MSG_DONTWAIT);
}

static long pass_recv(void *user, int fd, void *buf, size_t cap, struct sockaddr *from,
                      unsigned *from_len)
{
    (void)user;
    socklen_t fl = (socklen_t)*from_len;
    ssize_t r = recvfrom(fd, buf, cap, MSG_DONTWAIT | MSG_TRUNC, from, &fl);
    *from_len = (unsigned)fl;
    return (long)r;
}

void sn_test_transport_install(void)
{
    static const sn_udp_transport t = {.send = pass_send, .recv = pass_recv};
    fail_fd = -2;
    fail_errno = 0;
    fail_port_errno = 0;
    failed_sends = 0;
    sn_set_udp_transport(&t);
}

void sn_test_transport_remove(void)
{
    sn_set_udp_transport(NULL);
}

void sn_test_transport_fail_sends(int fd, int err)
{
    fail_fd = fd;
    fail_errno = err;
}

unsigned long sn_test_transport_failed_sends(void)
{
    return failed_sends;
}

void sn_test_transport_fail_sends_to(int port, int err)
{
    fail_port = port;
    fail_port_errno = err;
}
