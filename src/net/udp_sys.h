/* The datagram system calls, through the program's transport override when there is one
 * (udp_sys.c). Not installed. */
#ifndef SN_UDP_SYS_H
#define SN_UDP_SYS_H

#include "net.h"

/* sendto (to != NULL) or send on a connected socket; EINTR retried. -1 with errno. */
ssize_t sn_udp_sys_send(int fd, const void *buf, size_t len, const struct sockaddr *to,
                        socklen_t to_len);
/* sendmmsg of n messages (each one iovec, msg_name set); EINTR retried. Returns how many left,
 * -1 with errno when the first failed. Through an override: one send call per message,
 * stopping at the first failure as the kernel does. */
int sn_udp_sys_sendmmsg(int fd, struct mmsghdr *msgs, unsigned n);
/* recvmmsg(MSG_DONTWAIT) for up to n messages; EINTR retried. -1 with errno (EAGAIN: none). */
int sn_udp_sys_recvmmsg(int fd, struct mmsghdr *msgs, unsigned n);
/* Datagrams dropped before they were read on socket fd: the override's drops() when it has
 * one, else the kernel's counter (a getsockopt; 0 when the kernel cannot tell or fd < 0). */
uint64_t sn_udp_sys_drops(int fd);
/* Tells the override (when it asks to know) that fd was just bound or connected, or is about to
 * be closed. */
void sn_udp_sys_forget(int fd);
/* Closes a UDP socket, telling the override first (sn_udp_sys_forget). fd < 0: nothing. */
void sn_udp_sys_close(int fd);

#endif
