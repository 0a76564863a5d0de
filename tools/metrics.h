/* Metrics of the long-running commands (`sealnet proxy`, `sealnet dtls-server --host`) in the
 * Prometheus text exposition format (version 0.0.4): served over HTTP at /metrics with
 * --metrics ADDR:PORT (libmicrohttpd, driven from the command's own loop), and printed on stdout
 * on SIGUSR1. Any loop can use it:
 *
 *     metrics *m = metrics_start(addr_or_NULL, render, ctx);   // prints where it listens
 *     ... add metrics_fd(m) to the loop's poll set, sleep at most metrics_timeout_ms(m) ...
 *     metrics_poll(m);                                       // every turn; never blocks
 *     metrics_stop(m);
 *
 * render() is called from metrics_poll only, on the loop's thread, so it may read the loop's
 * state without locks. Not installed. */
#ifndef SN_METRICS_H
#define SN_METRICS_H

#include <sealnet/sealnet.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growing text buffer; on allocation failure `failed` is set and further writes are
 * ignored (the scrape is answered 500). */
typedef struct metrics_text {
    char *data;
    size_t len, cap;
    bool failed;
} metrics_text;

/* "# HELP name help" and "# TYPE name type" (type "counter" or "gauge"): once per family. */
void metrics_family(metrics_text *t, const char *name, const char *type, const char *help);
/* One sample: `name{labels} value`; labels NULL for none, else e.g. `reason="idle"`. */
void metrics_sample(metrics_text *t, const char *name, const char *labels, uint64_t value);
/* A family with a single unlabelled sample. Counter names end in _total. */
void metrics_counter(metrics_text *t, const char *name, const char *help, uint64_t value);
void metrics_gauge(metrics_text *t, const char *name, const char *help, uint64_t value);
/* Every field of sn_host_stats as sealnet_host_* counters and gauges (docs/proxy.md lists
 * them). */
void metrics_host_stats(metrics_text *t, const sn_host_stats *s);

typedef void (*metrics_render_fn)(metrics_text *out, void *ctx);
typedef struct metrics metrics;

/* Installs the SIGUSR1 handler and, when listen is not NULL ("ADDR:PORT", "[v6]:PORT", "*:PORT"
 * or "PORT"; port 0 picks a free one), starts the HTTP endpoint and prints
 * "metrics on http://ADDR:PORT/metrics". NULL after printing the reason (bad address, port in
 * use, built without libmicrohttpd). The caller owns the result (metrics_stop). */
metrics *metrics_start(const char *listen, metrics_render_fn render, void *ctx);
/* The descriptor that becomes readable when the endpoint has work (-1 without HTTP). */
int metrics_fd(const metrics *m);
/* Longest the loop may sleep before metrics_poll has timer work (-1: none). */
int metrics_timeout_ms(const metrics *m);
/* Answers the requests that are waiting and, after a SIGUSR1, prints the metrics on stdout.
 * Never blocks. NULL is fine. */
void metrics_poll(metrics *m);
/* Closes the endpoint and frees m. NULL is fine. */
void metrics_stop(metrics *m);
/* The port the endpoint listens on (0 without HTTP). */
int metrics_port(const metrics *m);

/* Splits "HOST:PORT", "[V6]:PORT" or (allow_bare) "PORT" into host (without brackets; "" for a
 * bare port) and port in 0..65535. false for anything else. Used by --metrics and the proxy's
 * address options. */
bool addr_port_split(const char *s, bool allow_bare, char *host, size_t cap, long *port);

#endif
