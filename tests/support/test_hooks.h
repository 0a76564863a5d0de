/* Test doubles for the library's injection points: a clock the test moves by hand, and a UDP
 * transport that passes datagrams to the kernel but can fail sends or inject datagrams. */
#ifndef SN_TEST_HOOKS_H
#define SN_TEST_HOOKS_H

#include <sealnet/sealnet.h>

/* ---- clock ---- */

/* Installs a manual clock starting at `start_ms` (sn_set_clock); sealnet's timers now move
 * only when the test calls sn_test_clock_advance. sn_test_clock_remove restores the real one. */
void sn_test_clock_install(uint64_t start_ms);
void sn_test_clock_advance(uint64_t ms);
uint64_t sn_test_clock_now_ms(void);
void sn_test_clock_remove(void);

/* ---- transport ---- */

/* Installs a pass-through UDP transport (real sendto / recvfrom on the same sockets). */
void sn_test_transport_install(void);
void sn_test_transport_remove(void);
/* From now on, sends from socket fd fail with errno `err` (0: stop failing; fd -1: every
 * socket). Counts the failures. */
void sn_test_transport_fail_sends(int fd, int err);
unsigned long sn_test_transport_failed_sends(void);
/* From now on, sends addressed to `port` (given by the caller: an unconnected socket's
 * sends) fail with errno `err` (0: stop failing). Counted with the others. */
void sn_test_transport_fail_sends_to(int port, int err);

#endif
