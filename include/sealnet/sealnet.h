/* sealnet — Godot's secure networking model for C programs, on OpenSSL or mbed TLS (one per
 * build: -DSEALNET_TLS_BACKEND; sn_version() names it; docs/backends.md lists the differences).
 *
 * One include for everything. Threading contract: an object is used by one thread at a time;
 * distinct objects may live on distinct threads. Nothing blocks unless its name says so
 * (wait, get_data, put_data): progress happens inside the *_poll calls made from your loop.
 */
#ifndef SEALNET_H
#define SEALNET_H

#include <sealnet/error.h>
#include <sealnet/platform.h>
#include <sealnet/crypto.h>
#include <sealnet/tls_options.h>
#include <sealnet/udp.h>
#include <sealnet/dtls.h>
#include <sealnet/tcp.h>
#include <sealnet/tls.h>
#include <sealnet/host.h>
#include <sealnet/workers.h>

#endif
