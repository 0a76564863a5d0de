/* sn_tls_stream: TLS 1.2 / 1.3 over an sn_tcp_peer (Godot: StreamPeerTLS).
 *
 * The session (tls/backend.h) moves ciphertext straight through the TCP peer's socket with two
 * non-blocking callbacks. Two small buffers, each at most one record's plaintext, live here:
 *  - read-ahead: poll() reads one record when nothing is decrypted yet, so that it notices data,
 *    close_notify and truncation without the program reading; get_partial_data serves it first
 *    and then reads from the session straight into the caller's buffer;
 *  - write stash: a record the session took but could not flush (the socket buffer was full).
 *    The TLS library has committed those bytes, so they count as sent and are retried from the
 *    stash, never from the caller's buffer (which may hold other data by then).
 * Nothing else is buffered: a peer that never reads stalls writes at the kernel's buffers.
 */
#include "keys_internal.h"
#include "tcp_transport.h"

#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SN_TLS_RECORD_MAX                   16384 /* TLS plaintext record limit */
#define SN_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS 30000
#define SN_TLS_WAIT_SLICE_MS                100

struct sn_tls_stream {
    sn_tcp_peer *tcp; /* owned */
    sn_tls_session *tls;
    sn_tls_status status;
    bool started; /* the handshake runs (TCP is up) */
    int handshake_timeout_ms;
    uint64_t handshake_started_ms;
    uint8_t *rbuf; /* read-ahead, SN_TLS_RECORD_MAX bytes once allocated */
    size_t rpos, rlen;
    uint8_t *wbuf; /* write stash, SN_TLS_RECORD_MAX bytes once allocated */
    size_t wpos, wlen;
    char description[96];
    char peer_fingerprint[96]; /* of the remote's certificate, once connected */
    char error[512];
    sn_tls_chain *peer_chain; /* what the remote presented, kept when the session goes */
};

static const sn_tls_backend *be(void)
{
    return sn_tls_backend_get();
}

/* --- default client options: built once (loading the system CAs is not cheap) -------------- */

static pthread_mutex_t defaults_lock = PTHREAD_MUTEX_INITIALIZER;
static sn_tls_options *defaults;

static const sn_tls_options *default_client_options(void)
{
    pthread_mutex_lock(&defaults_lock);
    if (!defaults) defaults = sn_tls_options_client(NULL, NULL);
    const sn_tls_options *o = defaults;
    pthread_mutex_unlock(&defaults_lock);
    return o;
}

/* --- transport callbacks --------------------------------------------------------------------- */

_Static_assert((int)SN_NET_IO_WOULD_BLOCK == (int)SN_TLS_IO_WOULD_BLOCK &&
                   (int)SN_NET_IO_EOF == (int)SN_TLS_IO_EOF &&
                   (int)SN_NET_IO_ERROR == (int)SN_TLS_IO_ERROR,
               "the TCP moves hand their results straight to the TLS session");

static long io_send(void *user, const void *data, size_t len)
{
    return sn_tcp_peer_io_send(user, data, len);
}

static long io_recv(void *user, void *buf, size_t cap)
{
    return sn_tcp_peer_io_recv(user, buf, cap);
}

/* --- lifecycle ------------------------------------------------------------------------------- */

sn_tls_stream *sn_tls_stream_new(void)
{
    sn_tls_stream *s = sn_calloc(1, sizeof *s);
    if (!s) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory allocating a TLS stream");
    s->handshake_timeout_ms = SN_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    return s;
}

/* Drops the session and closes the TCP connection; the TCP peer object stays (get_stream). */
static void release(sn_tls_stream *s)
{
    if (s->tls && be()->peer_chain) { /* optional in a backend */
        sn_tls_chain *c = be()->peer_chain(s->tls);
        if (c) {
            if (s->peer_chain) be()->chain_unref(s->peer_chain);
            s->peer_chain = c;
        }
    }
    be()->session_free(s->tls);
    s->tls = NULL;
    s->started = false;
    s->wpos = s->wlen = 0;
    if (s->tcp && sn_tcp_peer_get_status(s->tcp) != SN_TCP_STATUS_NONE)
        sn_tcp_peer_shutdown(s->tcp);
}

/* Ends the connection in `status` with a message ("" for a quiet end). */
SN_PRINTF(3, 4)
static void end_with(sn_tls_stream *s, sn_tls_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    if (s->error[0]) sn_fail(SN_FAILED, "%s", s->error);
    s->status = status;
    release(s);
}

/* The session failed: name the cause, and pick the status the way DTLS does. */
static void fail_from_session(sn_tls_stream *s)
{
    const char *why = "TLS failure";
    sn_tls_failure f = be()->failure(s->tls, &why);
    const char *tcp_why = s->tcp ? sn_tcp_peer_get_error_message(s->tcp) : "";
    switch (f) {
    case SN_TLS_FAIL_HOSTNAME:
        end_with(s, SN_TLS_STATUS_ERROR_HOSTNAME_MISMATCH, "%s", why);
        break;
    case SN_TLS_FAIL_TRUNCATED:
        end_with(s, SN_TLS_STATUS_DISCONNECTED, "%s", why);
        break;
    case SN_TLS_FAIL_TRANSPORT:
        end_with(s, SN_TLS_STATUS_ERROR, "%s%s%s", why, tcp_why[0] ? ": " : "", tcp_why);
        break;
    default:
        end_with(s, SN_TLS_STATUS_ERROR, "%s", why);
        break;
    }
}

/* The remote sent close_notify: answer it and close, quietly. */
static void closed_by_remote(sn_tls_stream *s)
{
    be()->close(s->tls);
    end_with(s, SN_TLS_STATUS_DISCONNECTED, "%s", "");
}

void sn_tls_stream_disconnect_from_stream(sn_tls_stream *s)
{
    if (!s) return;
    if (s->status == SN_TLS_STATUS_CONNECTED) be()->close(s->tls);
    release(s);
    if (s->status == SN_TLS_STATUS_CONNECTED || s->status == SN_TLS_STATUS_HANDSHAKING)
        s->status = SN_TLS_STATUS_DISCONNECTED;
}

void sn_tls_stream_free(sn_tls_stream *s)
{
    if (!s) return;
    sn_tls_stream_disconnect_from_stream(s);
    sn_tcp_peer_free(s->tcp);
    sn_free(s->rbuf);
    sn_free(s->wbuf);
    if (s->peer_chain) be()->chain_unref(s->peer_chain);
    sn_free(s);
}

sn_err sn_tls_stream_set_handshake_timeout_ms(sn_tls_stream *s, int timeout_ms)
{
    if (!s) return sn_fail(SN_ERR_INVALID_PARAMETER, "no TLS stream given");
    s->handshake_timeout_ms = timeout_ms;
    return SN_OK;
}

/* Shared by connect_to_stream and accept_stream once the arguments are checked: takes tcp. */
static sn_err start(sn_tls_stream *s, sn_tcp_peer *tcp, const sn_tls_options *opts,
                    const char *hostname)
{
    release(s);
    sn_tcp_peer_free(s->tcp);
    s->tcp = tcp;
    s->rpos = s->rlen = 0;
    s->error[0] = s->description[0] = s->peer_fingerprint[0] = '\0';
    if (s->peer_chain) be()->chain_unref(s->peer_chain);
    s->peer_chain = NULL;
    if (!s->rbuf && !(s->rbuf = sn_malloc(SN_TLS_RECORD_MAX))) {
        end_with(s, SN_TLS_STATUS_ERROR, "out of memory");
        return SN_ERR_OUT_OF_MEMORY;
    }
    sn_tls_config *config = sn_tls_options_get_config(opts, false);
    /* A client resumes the last session it had with this server (same options, name, port). */
    char resume_key[300] = "";
    if (!sn_tls_options_is_server(opts))
        snprintf(resume_key, sizeof resume_key, "%s:%d",
                 hostname && *hostname ? hostname : sn_tcp_peer_get_connected_host(tcp),
                 sn_tcp_peer_get_connected_port(tcp));
    sn_tls_session_params params = {.hostname = hostname, .resume_key = resume_key};
    sn_tls_io io = {.user = tcp, .send = io_send, .recv = io_recv};
    s->tls = config ? be()->session_new(config, &params, &io) : NULL;
    if (!s->tls) {
        end_with(s, SN_TLS_STATUS_ERROR, "cannot start TLS session: %s", sn_last_error_message());
        return SN_FAILED;
    }
    s->status = SN_TLS_STATUS_HANDSHAKING;
    sn_tls_stream_poll(s);
    return SN_OK;
}

/* The checks both entry points make; SN_OK or an error (tcp already freed). */
static sn_err check_start(sn_tls_stream *s, sn_tcp_peer *tcp, const sn_tls_options *opts,
                          bool server, const char *fn)
{
    sn_err e = SN_OK;
    if (!s || !tcp)
        e = sn_fail(SN_ERR_INVALID_PARAMETER, "%s: no %s given", fn, s ? "TCP peer" : "stream");
    else if (s->status == SN_TLS_STATUS_HANDSHAKING || s->status == SN_TLS_STATUS_CONNECTED)
        e = sn_fail(SN_ERR_ALREADY_IN_USE, "%s: the stream is already %s", fn,
                    s->status == SN_TLS_STATUS_CONNECTED ? "connected" : "handshaking");
    else if (server && !opts)
        e = sn_fail(SN_ERR_INVALID_PARAMETER, "%s: server options are required", fn);
    else if (opts && sn_tls_options_is_server(opts) != server)
        e = sn_fail(SN_ERR_INVALID_PARAMETER, "%s needs %s options, not %s options", fn,
                    server ? "server" : "client", server ? "client" : "server");
    else if (sn_tcp_peer_get_status(tcp) != SN_TCP_STATUS_CONNECTED &&
             sn_tcp_peer_get_status(tcp) != SN_TCP_STATUS_CONNECTING)
        e = sn_fail(SN_ERR_UNCONFIGURED, "%s: the TCP peer is not connected (%s)", fn,
                    sn_tcp_peer_get_error_message(tcp)[0] ? sn_tcp_peer_get_error_message(tcp)
                                                          : "never connected");
    if (e != SN_OK) sn_tcp_peer_free(tcp);
    return e;
}

sn_err sn_tls_stream_connect_to_stream(sn_tls_stream *s, sn_tcp_peer *tcp, const char *common_name,
                                       const sn_tls_options *client_options)
{
    sn_err e = check_start(s, tcp, client_options, false, "connect_to_stream");
    if (e != SN_OK) return e;
    if (!client_options && !(client_options = default_client_options())) {
        sn_tcp_peer_free(tcp);
        return SN_FAILED;
    }
    /* As Godot: an unsafe client sends no SNI and checks no name. */
    const char *name = NULL;
    if (!sn_tls_options_is_unsafe_client(client_options)) {
        const char *override = sn_tls_options_get_common_name_override(client_options);
        name = override && *override ? override : common_name;
        if (!name || !*name) {
            sn_tcp_peer_free(tcp);
            return sn_fail(SN_ERR_INVALID_PARAMETER,
                           "connect_to_stream: a common name is needed to verify the server "
                           "(sn_tls_options_client_unsafe skips name checks)");
        }
    }
    return start(s, tcp, client_options, name);
}

sn_err sn_tls_stream_accept_stream(sn_tls_stream *s, sn_tcp_peer *tcp,
                                   const sn_tls_options *server_options)
{
    sn_err e = check_start(s, tcp, server_options, true, "accept_stream");
    if (e != SN_OK) return e;
    return start(s, tcp, server_options, NULL);
}

/* --- progress -------------------------------------------------------------------------------- */

static void handshake(sn_tls_stream *s)
{
    if (!s->started) {
        sn_tcp_peer_poll(s->tcp);
        switch (sn_tcp_peer_get_status(s->tcp)) {
        case SN_TCP_STATUS_CONNECTING:
            return;
        case SN_TCP_STATUS_CONNECTED:
            break;
        case SN_TCP_STATUS_ERROR:
            end_with(s, SN_TLS_STATUS_ERROR, "TCP connection failed: %s",
                     sn_tcp_peer_get_error_message(s->tcp));
            return;
        default:
            end_with(s, SN_TLS_STATUS_ERROR, "TCP connection closed before the handshake");
            return;
        }
        s->started = true;
        s->handshake_started_ms = sn_now_ms();
    }
    switch (be()->handshake(s->tls)) {
    case SN_TLS_OK:
        s->status = SN_TLS_STATUS_CONNECTED;
        snprintf(s->description, sizeof s->description, "%s", be()->describe(s->tls));
        if (be()->peer_fingerprint(s->tls, s->peer_fingerprint) != SN_OK)
            s->peer_fingerprint[0] = '\0';
        sn_log(SN_LOG_DEBUG, "TLS connected with %s:%d (%s)",
               sn_tcp_peer_get_connected_host(s->tcp), sn_tcp_peer_get_connected_port(s->tcp),
               s->description);
        return;
    case SN_TLS_WANT:
        /* Read at each check, so that a timeout set after the start applies too. */
        if (s->handshake_timeout_ms > 0 &&
            sn_now_ms() - s->handshake_started_ms >= (uint64_t)s->handshake_timeout_ms)
            end_with(s, SN_TLS_STATUS_ERROR, "handshake timed out after %g s",
                     s->handshake_timeout_ms / 1000.0);
        return;
    default:
        fail_from_session(s);
        return;
    }
}

/* Retries the stashed record. SN_OK when the stash is empty afterwards, SN_ERR_BUSY while it is
 * not, SN_ERR_CONNECTION_ERROR when the session ended. */
static sn_err flush_stash(sn_tls_stream *s)
{
    while (s->wpos < s->wlen) {
        size_t n = 0;
        sn_tls_result r = be()->write(s->tls, s->wbuf + s->wpos, s->wlen - s->wpos, &n);
        if (r == SN_TLS_WANT) return SN_ERR_BUSY;
        if (r != SN_TLS_OK) {
            if (r == SN_TLS_CLOSED)
                closed_by_remote(s);
            else
                fail_from_session(s);
            return SN_ERR_CONNECTION_ERROR;
        }
        s->wpos += n;
    }
    s->wpos = s->wlen = 0;
    return SN_OK;
}

/* Reads decrypted bytes from the session into buf until cap, WANT, or the end of the session.
 * The byte count; the session's end is reflected in the status. */
static size_t read_session(sn_tls_stream *s, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap && s->status == SN_TLS_STATUS_CONNECTED) {
        size_t n = 0;
        sn_tls_result r = be()->read(s->tls, buf + got, cap - got, &n);
        if (r == SN_TLS_OK && n > 0) {
            got += n;
            continue;
        }
        if (r == SN_TLS_CLOSED)
            closed_by_remote(s);
        else if (r == SN_TLS_FAILED)
            fail_from_session(s);
        break;
    }
    return got;
}

void sn_tls_stream_poll(sn_tls_stream *s)
{
    if (!s) return;
    if (s->status == SN_TLS_STATUS_HANDSHAKING) {
        /* No read-ahead in the call that finishes the handshake: the program sees CONNECTED at
         * least once, even when the remote closes right after its handshake. */
        handshake(s);
        return;
    }
    if (s->status != SN_TLS_STATUS_CONNECTED) return;
    if (s->wlen && flush_stash(s) == SN_ERR_CONNECTION_ERROR) return;
    /* Read ahead only when nothing decrypted waits: enough to notice data and the remote's
     * close, never more than one record's worth. */
    if (s->rpos == s->rlen && be()->pending(s->tls) == 0) {
        s->rpos = 0;
        s->rlen = read_session(s, s->rbuf, SN_TLS_RECORD_MAX);
    }
}

sn_tls_status sn_tls_stream_get_status(const sn_tls_stream *s)
{
    return s ? s->status : SN_TLS_STATUS_DISCONNECTED;
}

int sn_tls_stream_get_available_bytes(sn_tls_stream *s)
{
    if (!s) return 0;
    size_t n = s->rlen - s->rpos;
    if (s->tls && s->status == SN_TLS_STATUS_CONNECTED) n += be()->pending(s->tls);
    return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}

/* --- data ------------------------------------------------------------------------------------ */

static sn_err not_connected(const sn_tls_stream *s)
{
    if (!s) return sn_fail(SN_ERR_INVALID_PARAMETER, "no TLS stream given");
    static const char *const names[] = {"DISCONNECTED", "HANDSHAKING", "CONNECTED", "ERROR",
                                        "ERROR_HOSTNAME_MISMATCH"};
    return sn_fail(SN_ERR_UNCONFIGURED, "TLS stream is not connected (status %s%s%s)",
                   names[s->status], s->error[0] ? ": " : "", s->error);
}

sn_err sn_tls_stream_get_partial_data(sn_tls_stream *s, void *buf, size_t cap, size_t *received)
{
    if (received) *received = 0;
    if (!s) return not_connected(s);
    if (!buf && cap) return sn_fail(SN_ERR_INVALID_PARAMETER, "no buffer given");
    uint8_t *out = buf;
    size_t got = 0;
    if (s->rpos < s->rlen && cap) {
        got = s->rlen - s->rpos < cap ? s->rlen - s->rpos : cap;
        memcpy(out, s->rbuf + s->rpos, got);
        s->rpos += got;
    }
    bool was_connected = s->status == SN_TLS_STATUS_CONNECTED;
    if (!was_connected && got == 0) return not_connected(s);
    if (was_connected && got < cap) got += read_session(s, out + got, cap - got);
    if (received) *received = got;
    if (got > 0 || s->status == SN_TLS_STATUS_CONNECTED) return SN_OK;
    /* The session ended during this call with nothing left to deliver. */
    if (s->status == SN_TLS_STATUS_DISCONNECTED && !s->error[0]) return SN_ERR_FILE_EOF;
    return sn_fail(s->status == SN_TLS_STATUS_DISCONNECTED ? SN_ERR_FILE_EOF
                                                           : SN_ERR_CONNECTION_ERROR,
                   "%s", s->error);
}

sn_err sn_tls_stream_put_partial_data(sn_tls_stream *s, const void *buf, size_t len, size_t *sent)
{
    if (sent) *sent = 0;
    if (!s || s->status != SN_TLS_STATUS_CONNECTED) return not_connected(s);
    if (!buf && len) return sn_fail(SN_ERR_INVALID_PARAMETER, "no buffer given");
    sn_err e = s->wlen ? flush_stash(s) : SN_OK;
    if (e == SN_ERR_BUSY) return SN_OK;
    if (e != SN_OK) return sn_fail(e, "%s", s->error);
    const uint8_t *in = buf;
    size_t done = 0;
    while (done < len) {
        size_t chunk = len - done < SN_TLS_RECORD_MAX ? len - done : SN_TLS_RECORD_MAX;
        size_t n = 0;
        sn_tls_result r = be()->write(s->tls, in + done, chunk, &n);
        if (r == SN_TLS_OK) {
            done += n;
            continue;
        }
        if (r == SN_TLS_WANT) {
            /* The library may hold these bytes in a record it could not flush: they are sent
             * as far as the caller is concerned, and retried from the stash. */
            if (!s->wbuf && !(s->wbuf = sn_malloc(SN_TLS_RECORD_MAX))) {
                end_with(s, SN_TLS_STATUS_ERROR, "out of memory");
                break;
            }
            memcpy(s->wbuf, in + done, chunk);
            s->wpos = 0;
            s->wlen = chunk;
            done += chunk;
            break;
        }
        if (r == SN_TLS_CLOSED)
            closed_by_remote(s);
        else
            fail_from_session(s);
        break;
    }
    if (sent) *sent = done;
    if (s->status == SN_TLS_STATUS_CONNECTED) return SN_OK;
    return sn_fail(SN_ERR_CONNECTION_ERROR, "%s", s->error[0] ? s->error : "connection closed");
}

/* Waits until the socket may let the stream progress, in slices so that a write the session
 * needs while reading (or the reverse) is retried. SN_ERR_TIMEOUT once `end` passes (0: never). */
static sn_err wait_io(sn_tls_stream *s, short events, uint64_t end)
{
    int slice = SN_TLS_WAIT_SLICE_MS;
    if (end) {
        uint64_t now = sn_now_ms();
        if (now >= end) return sn_fail(SN_ERR_TIMEOUT, "TLS stream: timed out waiting for data");
        if (end - now < (uint64_t)slice) slice = (int)(end - now);
    }
    if (s->wlen) events |= POLLOUT;
    sn_err e = sn_tcp_wait_fd(sn_tcp_peer_get_fd(s->tcp), events, slice);
    return e == SN_ERR_TIMEOUT ? SN_OK : e;
}

static uint64_t blocking_deadline(const sn_tls_stream *s)
{
    int t = s->tcp ? sn_tcp_peer_blocking_timeout_ms(s->tcp) : -1;
    return t >= 0 ? sn_now_ms() + (uint64_t)t : 0;
}

sn_err sn_tls_stream_put_data(sn_tls_stream *s, const void *buf, size_t len)
{
    if (!s || s->status != SN_TLS_STATUS_CONNECTED) return not_connected(s);
    uint64_t end = blocking_deadline(s);
    const uint8_t *in = buf;
    for (;;) {
        size_t n = 0;
        sn_err e = sn_tls_stream_put_partial_data(s, in, len, &n);
        if (e != SN_OK) return e;
        in += n;
        len -= n;
        if (!len) break;
        if (n == 0 && (e = wait_io(s, POLLOUT, end)) != SN_OK) return e;
    }
    /* Blocking means done: the stashed tail goes out too. */
    while (s->wlen) {
        sn_err e = flush_stash(s);
        if (e == SN_ERR_CONNECTION_ERROR) return sn_fail(e, "%s", s->error);
        if (e == SN_ERR_BUSY && (e = wait_io(s, POLLOUT, end)) != SN_OK) return e;
    }
    return SN_OK;
}

sn_err sn_tls_stream_get_data(sn_tls_stream *s, void *buf, size_t len)
{
    if (!s) return not_connected(s);
    uint64_t end = blocking_deadline(s);
    uint8_t *out = buf;
    while (len > 0) {
        size_t n = 0;
        sn_err e = sn_tls_stream_get_partial_data(s, out, len, &n);
        /* A close in an earlier round of this call is still the end of the stream. */
        if (e == SN_ERR_UNCONFIGURED && s->status == SN_TLS_STATUS_DISCONNECTED && out != buf)
            return sn_fail(SN_ERR_FILE_EOF, "TLS stream closed after %zu of %zu bytes",
                           (size_t)(out - (uint8_t *)buf), (size_t)(out - (uint8_t *)buf) + len);
        if (e != SN_OK) return e;
        out += n;
        len -= n;
        if (s->wlen && flush_stash(s) == SN_ERR_CONNECTION_ERROR)
            return sn_fail(SN_ERR_CONNECTION_ERROR, "%s", s->error);
        if (len && n == 0) {
            if ((e = wait_io(s, POLLIN, end)) != SN_OK) return e;
        }
    }
    return SN_OK;
}

size_t sn_tls_stream_get_unsent_bytes(const sn_tls_stream *s)
{
    return s && s->status == SN_TLS_STATUS_CONNECTED ? s->wlen - s->wpos : 0;
}

sn_tcp_peer *sn_tls_stream_get_stream(sn_tls_stream *s)
{
    return s ? s->tcp : NULL;
}

const char *sn_tls_stream_get_error_message(const sn_tls_stream *s)
{
    return s ? s->error : "";
}

const char *sn_tls_stream_get_protocol_description(const sn_tls_stream *s)
{
    return s ? s->description : "";
}

const char *sn_tls_stream_get_peer_fingerprint_sha256(const sn_tls_stream *s)
{
    return s ? s->peer_fingerprint : "";
}

bool sn_tls_stream_is_session_resumed(const sn_tls_stream *s)
{
    return s && s->tls && s->status == SN_TLS_STATUS_CONNECTED && be()->session_resumed &&
           be()->session_resumed(s->tls);
}

sn_x509_cert *sn_tls_stream_get_peer_certificate(const sn_tls_stream *s)
{
    if (!s) return NULL;
    sn_tls_chain *c = s->tls && be()->peer_chain ? be()->peer_chain(s->tls) : NULL;
    if (!c && s->peer_chain) c = be()->chain_ref(s->peer_chain);
    return c ? sn_x509_cert_wrap(c) : NULL;
}
