/* fuzz_host: a host server (sn_host with server options) driven by a fuzzed script of datagrams
 * from many source addresses, clock jumps and program actions, with its invariants checked
 * after every step. No sockets carry anything and time moves only when the script says
 * (fuzz_common.h), so each input replays the same way.
 *
 * Input: two config bytes, then operations (low 4 bits of an op byte; arguments follow):
 *   config 0: max_half_open 1..8 (bits 0-2), max_peers 1..16 (bits 3-6)
 *   config 1: keepalive off/100/250/1000 ms (bits 0-1), idle timeout never/500/3000/30000 ms
 *             (bits 2-3), mtu 512 (bit 4), handshake timeout 1 s (bit 5)
 *   0, 14, 15  datagram: source byte, 2-byte length, bytes — from one of 32 addresses
 *              (8 IPs x 4 ports)
 *   1  get a cookie: source byte, datagram (a ClientHello template): sent, the host
 *      serviced, the cookie of its HelloVerifyRequest to that source kept
 *   13 hello with cookie: source byte, datagram (a ClientHello template): sent with the
 *      source's cookie spliced in — so the rest of the script meets half-open sessions
 *   2  clock: byte t: advance t*10 ms (t < 128) or (t-128)*500 ms
 *   3  service rounds: byte n: 1 + n%8 extra rounds
 *   4  a real client (a second, client-only host in this process) connects
 *   5  the server sends to one of its peers: index byte, length byte
 *   6  the server broadcasts: length byte
 *   7  the server disconnects one of its peers: index byte
 *   8  a real client sends to the server: index byte, length byte
 *   9  a real client disconnects: index byte
 *   10 replay: source byte: what the host sent to that source goes back to the host, as sent
 *   11 the network fails every send (EPERM) for one service round
 *   12 per-peer keepalive: index byte, interval byte (x10 ms)
 *
 * Operations 2, 3, 4 and 11 service the hosts until the network is quiet, and so does the end
 * of the input; the others only queue datagrams or act, so a script can put several things in
 * one service call (junk before a hello, as an attacker would; a send then a kick).
 *
 * Invariants (abort on violation): per peer id, CONNECT < RECEIVE* < DISCONNECT and nothing after
 * DISCONNECT (outgoing peers may end without CONNECT); the event's handle is live for CONNECT and
 * RECEIVE and gone one service call after DISCONNECT; incoming half-open <= max_half_open;
 * handshaking + connected <= max_peers; counters agree with the events delivered and the sends
 * made; memory held <= a fixed part + a bound per peer (FUZZ_SESSION_BOUND, bytes). Counters
 * are checked as deltas from where the input started.
 *
 * What lives across inputs (creating it is most of an input's cost otherwise): the options, key
 * and certificate, the TLS contexts behind them, and a server host and a client host per
 * configuration (CACHED of them, least recently used replaced). Each slot keeps its port and
 * its own client options, which hold a session ticket for that port from one warm-up handshake
 * when the slot's first host was made, so a real client (operation 4) resumes: an abbreviated
 * handshake, no certificate to decode, no key exchange, no signature. (Without it every real
 * client paid a full handshake, ~7 M instructions, a quarter of them OpenSSL 3.0 decoding the
 * server's certificate on the client side.) A client that ends in a way that makes OpenSSL
 * forget its session (timeout, error, refused handshake) has its slot warmed up again before
 * the next input. Every input ends with all peers gone (their events delivered and checked),
 * the network empty and the clock past every timer, so the next input starts from the same
 * state whatever came before: no peer, a ticket for the port, an empty network. A single input
 * replayed on its own (`fuzz_host -runs=0 FILE`) makes its slot afresh (with the warm-up) and
 * meets the same state; only peer ids, cookies, ports and the clock's absolute value differ,
 * and nothing in the harness or the library depends on them. FUZZ_STATS=1 prints how many
 * hosts, warm-ups, full and resumed handshakes the inputs cost.
 *
 * What an input costs (fuzz build, this machine, CPU per input): the harness and libFuzzer
 * alone ~0.06 ms; a cookie exchange ~0.1 ms; a cookie-proven hello to a half-open session and
 * its server flight ~0.13 ms more; a real client (resumed handshake, its HelloVerifyRequest
 * round, its socket, its close) ~1.4 ms for the first, ~0.7 ms for the second. Servicing is
 * skipped where it provably does nothing (fh_drain_events: empty network, nothing due, no
 * program call since the last check), and the network's socket-name cache is emptied before
 * every socket is made (fh_forget_names), so neither changes what an input does. */
#include "fuzz_common.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

enum {
    SOURCES = 32,
    MAX_IDS = 8192,
    MAX_CLIENTS = 2, /* each costs a (resumed) handshake: the bulk of an input's time */
    MAX_ROUNDS = 16,
};

/* Memory a server-side peer may hold in the worst case the script can build (queued datagrams,
 * the TLS library's session and buffers; a half-open one measured about 60 KiB), what an
 * outgoing peer of the client host may hold (it has a socket of its own with its receive
 * batch), and what the hosts hold besides their peers. */
static size_t session_bound = 128 * 1024;
static const size_t client_session_bound = 1024 * 1024;
static const size_t fixed_bound = 256 * 1024;
static size_t mem_base; /* after the server host's first service: its receive buffers exist */

static sn_tls_options *server_opts, *client_opts; /* client_opts: the current slot's */
/* FUZZ_STATS=1: what the inputs cost, printed after 2^k inputs (libFuzzer exits without
 * running atexit handlers). */
static bool stats;
static uint64_t inputs, hosts_made, warmups, handshakes_full, handshakes_resumed;
static sn_test_addr sources[SOURCES];

enum { ID_NONE = 0, ID_CONNECTED = 1, ID_DEAD = 2 };

/* What one host has told the program, to check the next events and its counters against. */
typedef struct tracker {
    sn_host *h;
    int key; /* the config bytes it was made with; -1: free slot */
    const char *name;
    uint8_t state[MAX_IDS];
    uint32_t just_died[64];
    int njust_died;
    sn_host_stats base; /* the host's counters when this input started */
    uint64_t connects, receives, bytes, disconnects; /* this input's */
    uint64_t sends_ok, bytes_sent_ok;
    int max_half_open, max_peers;
    bool dirty; /* the program called the host since its last check_stats */
} tracker;

/* Hosts live across inputs (one pair per config, a few configs cached): creating a host per
 * input costs more than most inputs do (its receive batch, the DTLS server's state). Every
 * input ends with all peers gone and the network empty, so the next starts from the same
 * state, only later on the clock. */
enum { CACHED = 64 };
static tracker servers[CACHED], clients[CACHED];
static int slot_port[CACHED]; /* the port each slot's server keeps (its client has a ticket) */
static bool lost[CACHED];     /* the slot's ticket was lost in the last input */
/* Client options per slot: options remember the sessions of their last 32 servers, fewer than
 * the slots, and a slot's ticket must not depend on what the other slots did. */
static sn_tls_options *slot_client_opts[CACHED];
static unsigned lru[CACHED];
static unsigned lru_clock;
static tracker *srv_t, *cli_t;
#define srv (*srv_t)
#define cli (*cli_t)
static int debug;
static bool tickets; /* the backend resumes sessions from tickets */
static bool in_warmup;
static bool ticket_lost; /* the slot's client lost its ticket during this input */

static void print_stats(void)
{
    fprintf(stderr,
            "fuzz_host: %llu inputs, %llu hosts made, %llu warm-up handshakes, real-client "
            "handshakes: %llu full, %llu resumed\n",
            (unsigned long long)inputs, (unsigned long long)hosts_made, (unsigned long long)warmups,
            (unsigned long long)handshakes_full, (unsigned long long)handshakes_resumed);
}

static void setup(void)
{
    fuzz_platform_init();
#ifdef __GLIBC__
    /* An input allocates and frees a few hundred KiB (TLS sessions, their buffers): glibc would
     * hand the top of the heap back to the kernel after each and fault it in again at the
     * next (page faults and brk were ~7 % of an input). The process keeps it instead. */
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
#endif
    debug = getenv("FUZZ_DEBUG") != NULL;
    const char *b = getenv("FUZZ_SESSION_BOUND");
    if (b) session_bound = (size_t)strtoull(b, NULL, 10);
    server_opts = fuzz_server_options();
    tickets = fuzz_fixed_ticket_keys(server_opts); /* a real client resumes (see the header) */
    stats = getenv("FUZZ_STATS") != NULL;
    for (int i = 0; i < SOURCES; i++)
        sources[i] = fuzz_addr(10 + i % 8, 30000 + i / 8);
}

static void fh_check_stats(tracker *t)
{
    sn_host_stats st;
    sn_host_get_stats(t->h, &st);
    if (debug)
        fprintf(stderr, "%s: half-open %llu handshaking %llu connected %llu peers %zu\n", t->name,
                (unsigned long long)st.incoming_half_open_now,
                (unsigned long long)st.peers_handshaking_now,
                (unsigned long long)st.peers_connected_now, sn_host_get_peers(t->h, NULL, 0));
    FUZZ_CHECK(st.incoming_half_open_now <= (uint64_t)t->max_half_open);
    FUZZ_CHECK(st.peers_handshaking_now + st.peers_connected_now <= (uint64_t)t->max_peers);
    FUZZ_CHECK(st.peers_connected_now == sn_host_peer_count(t->h, SN_HOST_PEER_CONNECTED));
    FUZZ_CHECK(st.peers_handshaking_now == sn_host_peer_count(t->h, SN_HOST_PEER_HANDSHAKING));
    FUZZ_CHECK(st.incoming_half_open_now <= st.peers_handshaking_now);
    FUZZ_CHECK(st.handshakes_completed + st.handshakes_failed <= st.handshakes_started);
    const sn_host_stats *b = &t->base;
    FUZZ_CHECK(st.disconnects - b->disconnects == t->disconnects);
    FUZZ_CHECK(st.packets_received - b->packets_received == t->receives);
    FUZZ_CHECK(st.bytes_received - b->bytes_received == t->bytes);
    FUZZ_CHECK(st.handshakes_completed - b->handshakes_completed >= t->connects);
    FUZZ_CHECK(st.packets_sent - b->packets_sent == t->sends_ok);
    FUZZ_CHECK(st.bytes_sent - b->bytes_sent == t->bytes_sent_ok);
}

/* One service call and the checks of what it returned. True when it gave an event. */
static bool service_once(tracker *t)
{
    sn_host_event ev;
    int r = sn_host_service(t->h, &ev, 0);
    FUZZ_CHECK(r == 0 || r == 1);
    /* Handles of peers whose DISCONNECT came at the previous call are gone now. */
    for (int i = 0; i < t->njust_died; i++)
        FUZZ_CHECK(sn_host_find_peer(t->h, t->just_died[i]) == NULL);
    t->njust_died = 0;
    if (r == 0) {
        FUZZ_CHECK(ev.type == SN_HOST_EVENT_NONE);
        return false;
    }
    FUZZ_CHECK(ev.peer && ev.peer_id == sn_host_peer_get_id(ev.peer));
    FUZZ_CHECK(ev.peer_id > 0);
    uint8_t *s = &t->state[ev.peer_id % MAX_IDS]; /* this input's ids: fewer than MAX_IDS */
    if (debug)
        fprintf(stderr, "%s: %s peer %u (%s) %s\n", t->name, sn_host_event_type_string(ev.type),
                ev.peer_id, sn_host_peer_is_outgoing(ev.peer) ? "out" : "in",
                ev.message ? ev.message : "");
    switch (ev.type) {
    case SN_HOST_EVENT_CONNECT:
        FUZZ_CHECK(*s == ID_NONE);
        FUZZ_CHECK(sn_host_find_peer(t->h, ev.peer_id) == ev.peer);
        *s = ID_CONNECTED;
        t->connects++;
        if (sn_host_peer_is_outgoing(ev.peer)) {
            if (sn_host_peer_is_session_resumed(ev.peer))
                handshakes_resumed++;
            else
                handshakes_full++;
            if (debug && !in_warmup && !sn_host_peer_is_session_resumed(ev.peer))
                fprintf(stderr, "client: a full handshake\n");
        }
        break;
    case SN_HOST_EVENT_RECEIVE:
        FUZZ_CHECK(*s == ID_CONNECTED);
        FUZZ_CHECK(sn_host_find_peer(t->h, ev.peer_id) == ev.peer);
        FUZZ_CHECK(ev.data || ev.len == 0);
        t->receives++;
        t->bytes += ev.len;
        break;
    case SN_HOST_EVENT_DISCONNECT:
        FUZZ_CHECK(*s == ID_CONNECTED || (*s == ID_NONE && sn_host_peer_is_outgoing(ev.peer)));
        FUZZ_CHECK(ev.message);
        FUZZ_CHECK(ev.reason >= SN_HOST_DISCONNECT_CLOSED && ev.reason <= SN_HOST_DISCONNECT_ERROR);
        FUZZ_CHECK(sn_host_peer_get_state(ev.peer) == SN_HOST_PEER_DISCONNECTED);
        /* OpenSSL forgets a session that ended without close_notify (a timeout, an error) or
         * met a fatal alert (a refused resumption too): the client's ticket for this port is
         * gone, and the next input would do a full handshake where a replay of it alone
         * resumes. The slot is warmed up again before the next input. */
        if (sn_host_peer_is_outgoing(ev.peer) && ev.reason != SN_HOST_DISCONNECT_KICKED &&
            ev.reason != SN_HOST_DISCONNECT_CLOSED)
            ticket_lost = true;
        *s = ID_DEAD;
        t->disconnects++;
        if (t->njust_died < 64) t->just_died[t->njust_died++] = ev.peer_id;
        break;
    default:
        FUZZ_CHECK(!"unknown event type");
    }
    return true;
}

/* Services a host until it has nothing to say (bounded); the number of events. */
static int fh_drain_events(tracker *t)
{
    if (!t->h || (!t->njust_died && !sn_host_get_peers(t->h, NULL, 0) && t == cli_t)) return 0;
    /* Provably quiet: no datagram anywhere on the network, nothing the host says is due now
     * (events, queued or failed sends, timers, budget left over), the last DISCONNECT's
     * handles checked, no program call since the last stats check. A service call now would
     * read nothing, fire nothing and deliver nothing: skipped, as are its checks (they would
     * see the counters they saw last time). */
    if (!t->njust_died && !t->dirty && sn_test_net_queued() == 0 &&
        sn_host_next_timeout_ms(t->h) != 0)
        return 0;
    int n = 0;
    while (n < 256 && service_once(t))
        n++;
    /* The call that returned no event already checked the handles of the last DISCONNECT
     * (dead peers are freed at the start of a call); one more only when the bound cut the
     * loop short. */
    if (n == 256) service_once(t);
    fh_check_stats(t);
    t->dirty = false;
    return n;
}

static void fh_check_memory(void)
{
    if (in_warmup) return;
    size_t peers = sn_host_get_peers(srv.h, NULL, 0);
    size_t outgoing = cli.h ? sn_host_get_peers(cli.h, NULL, 0) : 0;
    /* What the previous input left to free (peers die at the next service call) may go
     * during this one: the base follows memory down. */
    if (fuzz_mem_live() < mem_base) mem_base = fuzz_mem_live();
    size_t live = fuzz_mem_live() - mem_base;
    size_t bound = fixed_bound + peers * session_bound + outgoing * client_session_bound;
    if (debug || live > bound)
        fprintf(stderr,
                "memory: %zu bytes over the base (bound %zu), %zu server peers, %zu client "
                "peers\n",
                live, bound, peers, outgoing);
    FUZZ_CHECK(live <= bound);
}

/* What the server sent to the fake sources, taken off the network as soon as it is sent: a
 * datagram left queued anywhere makes the in-memory network ask the kernel for the address of
 * every socket that reads (two system calls per read, a few hundred per input). Kept in order,
 * at most MAILBOX per source (later ones dropped, as a full queue drops), for operations 1 and
 * 10. */
enum { MAILBOX = 32, MAIL_MAX = 2048 };
static struct mailbox {
    uint16_t len[MAILBOX];
    uint8_t data[MAILBOX][MAIL_MAX];
    int head, count;
} mail[SOURCES];

/* The network's send count at the last look; UINT64_MAX after a reset (which zeroes it). */
static uint64_t mail_seen_sent = UINT64_MAX;

static void fh_net_reset(void)
{
    sn_test_net_reset();
    mail_seen_sent = UINT64_MAX;
}

static void fh_collect_mail(void)
{
    /* Nothing was sent since the last look: no new mail (32 look-ups saved per quiet pump). */
    sn_test_net_stats ns;
    sn_test_net_get_stats(&ns);
    if (ns.sent == mail_seen_sent) return;
    mail_seen_sent = ns.sent;
    uint8_t buf[MAIL_MAX];
    for (int k = 0; k < SOURCES; k++) {
        long n;
        while ((n = sn_test_net_take(&sources[k], buf, sizeof buf, NULL)) >= 0) {
            struct mailbox *m = &mail[k];
            if (m->count == MAILBOX) continue;
            int slot = (m->head + m->count++) % MAILBOX;
            m->len[slot] = (uint16_t)((size_t)n < sizeof buf ? (size_t)n : sizeof buf);
            memcpy(m->data[slot], buf, m->len[slot]);
        }
    }
}

/* The oldest datagram the server sent to source k (copied to buf, at most MAIL_MAX bytes): its
 * length, -1 when none. */
static long fh_take_mail(int k, uint8_t *buf)
{
    fh_collect_mail();
    struct mailbox *m = &mail[k];
    if (!m->count) return -1;
    long n = m->len[m->head];
    memcpy(buf, m->data[m->head], (size_t)n);
    m->head = (m->head + 1) % MAILBOX;
    m->count--;
    return n;
}

static void fh_clear_mail(void)
{
    for (int k = 0; k < SOURCES; k++)
        mail[k].head = mail[k].count = 0;
}

/* Services both hosts until the network is quiet (bounded): datagrams in flight between the
 * server and the real clients get there and are answered. */
static void fh_pump(void)
{
    for (int round = 0; round < MAX_ROUNDS; round++) {
        sn_test_net_stats before, after;
        sn_test_net_get_stats(&before);
        int events = fh_drain_events(&srv) + fh_drain_events(&cli);
        sn_test_net_get_stats(&after);
        fh_collect_mail();
        if (!events && after.delivered == before.delivered && after.sent == before.sent) break;
    }
    fh_check_memory();
}

static sn_host_peer *fh_pick(sn_host *h, uint8_t idx)
{
    if (!h) return NULL;
    sn_host_peer *list[64];
    size_t n = sn_host_get_peers(h, list, 64);
    if (n > 64) n = 64;
    return n ? list[idx % n] : NULL;
}

/* The program is about to call the hosts outside a service call: their counters may change. */
static void fh_touch(void)
{
    srv.dirty = true;
    if (cli_t) cli.dirty = true;
}

static void send_from_host(tracker *t, sn_host_peer *p, size_t len)
{
    static uint8_t payload[2048];
    if (!p) return;
    fh_touch();
    for (size_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(i * 7 + 1);
    sn_err e = sn_host_peer_send(p, payload, len);
    FUZZ_CHECK(e == SN_OK || e == SN_ERR_UNCONFIGURED || e == SN_ERR_BUSY ||
               e == SN_ERR_PARAMETER_RANGE_ERROR || e == SN_ERR_INVALID_PARAMETER ||
               e == SN_ERR_CONNECTION_ERROR);
    if (e == SN_OK) {
        t->sends_ok++;
        t->bytes_sent_ok += len;
    }
}

/* The in-memory network remembers each socket's addresses after its first use instead of
 * asking the kernel at every datagram (getsockname and getpeername per read and per send: a
 * few hundred system calls per input). The cache is exact only while no socket closes and
 * another takes its descriptor: here sockets are made only by sn_host_create (the server's)
 * and sn_host_connect (a client's), so the cache is emptied right before each of them (and at
 * every network reset); a descriptor closed since then is not used again until one of them. */
static void fh_forget_names(void)
{
    sn_test_net_cache_names(true);
}

static sn_host *new_host(const uint8_t cfgb[2], bool server, int port)
{
    sn_host_config c;
    sn_host_default_config(&c);
    if (server) {
        c.server_options = server_opts;
        c.bind_address = "127.0.0.1";
        c.port = port;
    }
    c.max_half_open = 1 + (cfgb[0] & 7);
    c.max_peers = 1 + ((cfgb[0] >> 3) & 15);
    static const int ka[4] = {0, 100, 250, 1000};
    static const int idle[4] = {0, 500, 3000, 30000};
    c.keepalive_interval_ms = ka[cfgb[1] & 3];
    c.idle_timeout_ms = idle[(cfgb[1] >> 2) & 3];
    if (cfgb[1] & 16) c.mtu = 512;
    if (cfgb[1] & 32) c.handshake_timeout_ms = 1000;
    c.recv_buffer_size = 0;
    fh_forget_names();
    sn_host *h = sn_host_create(&c);
    if (!h && port) { /* someone else took the slot's port meanwhile: a new one */
        c.port = 0;
        h = sn_host_create(&c);
    }
    FUZZ_CHECK(h);
    hosts_made++;
    return h;
}

static void tracker_start(tracker *t, sn_host *h, const char *name, const uint8_t cfgb[2])
{
    sn_host_free(t->h);
    memset(t, 0, sizeof *t);
    t->h = h;
    t->key = cfgb[0] << 8 | cfgb[1];
    t->name = name;
    t->max_half_open = 1 + (cfgb[0] & 7);
    t->max_peers = 1 + ((cfgb[0] >> 3) & 15);
    t->dirty = true;
}

/* Cookies the host gave each source (its HelloVerifyRequests), to splice into hellos. */
static uint8_t cookies[SOURCES][255];
static uint8_t cookie_lens[SOURCES];

/* Sends the template from source k, services the host and keeps the cookie it answered with
 * (everything else the host sent to k is dropped). */
static void get_cookie(int k, const sn_test_addr *to, const uint8_t *ch, size_t len)
{
    sn_test_net_inject(&sources[k], to, ch, len);
    fh_drain_events(&srv);
    uint8_t buf[MAIL_MAX];
    long n;
    while ((n = fh_take_mail(k, buf)) >= 0) {
        const uint8_t *cookie;
        size_t cookie_len;
        if (fuzz_hvr_cookie(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf, &cookie,
                            &cookie_len) &&
            cookie_len <= sizeof cookies[k]) {
            memcpy(cookies[k], cookie, cookie_len);
            cookie_lens[k] = (uint8_t)cookie_len;
        }
    }
}

/* Sends the template from source k with the cookie k was given (as is when it has none). */
static void send_with_cookie(int k, const sn_test_addr *to, const uint8_t *ch, size_t len)
{
    uint8_t spliced[4096];
    size_t m = cookie_lens[k] ? fuzz_splice_cookie(ch, len, cookies[k], cookie_lens[k], spliced,
                                                   sizeof spliced)
                              : 0;
    if (m)
        sn_test_net_inject(&sources[k], to, spliced, m);
    else
        sn_test_net_inject(&sources[k], to, ch, len);
}

/* Back to hosts with no peer and an empty network: every peer is disconnected (its events
 * delivered and checked), then time passes beyond every timer. False when a peer is left (it
 * should not happen: the caller makes the slot afresh rather than carry state over). */
static bool fh_end_input(void)
{
    sn_test_net_fail_sends(0);
    for (int round = 0; round < 8; round++) {
        fh_touch();
        sn_host_peer *list[64];
        size_t n = sn_host_get_peers(srv.h, list, 64);
        for (size_t i = 0; i < n && i < 64; i++)
            sn_host_peer_disconnect(list[i]);
        size_t m = cli.h ? sn_host_get_peers(cli.h, list, 64) : 0;
        for (size_t i = 0; i < m && i < 64; i++)
            sn_host_peer_disconnect(list[i]);
        fh_pump();
        fh_net_reset();
        if (!sn_host_get_peers(srv.h, NULL, 0) && (!cli.h || !sn_host_get_peers(cli.h, NULL, 0)))
            break;
    }
    sn_test_clock_advance(120000); /* pending datagrams, cookies: all stale */
    fh_drain_events(&srv);
    fh_drain_events(&cli);
    fh_net_reset();
    size_t left =
        sn_host_get_peers(srv.h, NULL, 0) + (cli.h ? sn_host_get_peers(cli.h, NULL, 0) : 0);
    if (left && debug) fprintf(stderr, "%zu peers left: new hosts\n", left);
    return left == 0;
}

/* Makes slot i's hosts for config cfgb: the server on the slot's port, so the client options'
 * ticket for that port stays good; on a port without one (the slot's first host), one full
 * handshake from the client host gets it. The slot is then as every input finds it. */
static void warm_up(void);
static void open_slot(int i, const uint8_t cfgb[2])
{
    srv_t = &servers[i];
    cli_t = &clients[i];
    if (!slot_client_opts[i]) FUZZ_CHECK(slot_client_opts[i] = sn_tls_options_client_unsafe(NULL));
    client_opts = slot_client_opts[i];
    sn_host_free(srv.h); /* first: its port is the new host's */
    srv.h = NULL;
    tracker_start(&srv, new_host(cfgb, true, slot_port[i]), "server", cfgb);
    tracker_start(&cli, new_host(cfgb, false, 0), "client", cfgb);
    /* The first service call allocates the receive batches: before any memory base. */
    fh_drain_events(&srv);
    fh_net_reset();
    int port = sn_host_get_port(srv.h);
    if (port == slot_port[i] || !tickets) return;
    slot_port[i] = port;
    warm_up();
}

/* One full handshake from the slot's client host to its server: the client options keep a
 * ticket for the port, so the inputs' real clients resume. */
static void warm_up(void)
{
    int port = sn_host_get_port(srv.h);
    warmups++;
    in_warmup = true;
    mem_base = fuzz_mem_live();
    fh_touch();
    fh_forget_names();
    FUZZ_CHECK(sn_host_connect(cli.h, "127.0.0.1", port, "localhost", client_opts));
    uint64_t before = handshakes_full + handshakes_resumed;
    for (int k = 0; k < 4 && handshakes_full + handshakes_resumed == before; k++)
        fh_pump();
    FUZZ_CHECK(handshakes_full + handshakes_resumed > before);
    FUZZ_CHECK(fh_end_input());
    in_warmup = false;
    if (debug) fprintf(stderr, "warm-up: %zu bytes held after it\n", fuzz_mem_live() - mem_base);
}

/* The counters this input's checks start from. */
static void fh_rebase(tracker *t)
{
    memset(t->state, 0, sizeof t->state);
    t->connects = t->receives = t->bytes = t->disconnects = 0;
    t->sends_ok = t->bytes_sent_ok = 0;
    sn_host_get_stats(t->h, &t->base);
    t->dirty = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server_opts) setup();
    inputs++;
    if (stats && (inputs & (inputs - 1)) == 0) print_stats();
    fuzz_reader r = {data, data + size};
    uint8_t cfgb[2];
    if (!fuzz_u8(&r, &cfgb[0]) || !fuzz_u8(&r, &cfgb[1])) return 0;

    cfgb[0] &= 0x7f; /* the bits new_host reads */
    cfgb[1] &= 0x3f;
    int key = cfgb[0] << 8 | cfgb[1], slot = -1;
    for (int i = 0; i < CACHED && slot < 0; i++)
        if (servers[i].h && servers[i].key == key) slot = i;
    if (slot < 0) { /* least recently used, or free */
        slot = 0;
        for (int i = 1; i < CACHED; i++)
            if (lru[i] < lru[slot]) slot = i;
        open_slot(slot, cfgb);
    }
    lru[slot] = ++lru_clock;
    srv_t = &servers[slot];
    cli_t = &clients[slot];
    client_opts = slot_client_opts[slot];
    if (lost[slot] && tickets) warm_up();
    lost[slot] = false;
    fh_rebase(&srv);
    fh_rebase(&cli);
    const sn_test_addr server_addr = fuzz_addr(1, sn_host_get_port(srv.h));
    mem_base = fuzz_mem_live();
    int nclients = 0;
    memset(cookie_lens, 0, sizeof cookie_lens);
    fh_clear_mail();
    ticket_lost = false;

    uint8_t op, a, b;
    const uint8_t *d;
    size_t len;
    while (fuzz_u8(&r, &op)) {
        /* Operations that call the hosts directly (the datagram ones only queue, and the
         * network then is not quiet; a clock jump makes timers due). */
        if ((op & 15) >= 4 && (op & 15) <= 12 && (op & 15) != 10 && (op & 15) != 11) fh_touch();
        switch (op & 15) {
        case 0:
        case 14:
        case 15:
            if (!fuzz_u8(&r, &a) || !fuzz_datagram(&r, &d, &len)) break;
            sn_test_net_inject(&sources[a % SOURCES], &server_addr, d, len);
            break;
        case 1:
            if (!fuzz_u8(&r, &a) || !fuzz_datagram(&r, &d, &len)) break;
            get_cookie(a % SOURCES, &server_addr, d, len);
            break;
        case 13:
            if (!fuzz_u8(&r, &a) || !fuzz_datagram(&r, &d, &len)) break;
            send_with_cookie(a % SOURCES, &server_addr, d, len);
            break;
        case 2:
            if (!fuzz_u8(&r, &a)) break;
            sn_test_clock_advance(a < 128 ? (uint64_t)a * 10 : (uint64_t)(a - 128) * 500);
            break;
        case 3:
            if (!fuzz_u8(&r, &a)) break;
            for (int k = 0; k <= a % 8; k++)
                fh_pump();
            break;
        case 4:
            if (nclients >= MAX_CLIENTS) break;
            fh_forget_names();
            if (sn_host_connect(cli.h, "127.0.0.1", sn_host_get_port(srv.h), "localhost",
                                client_opts))
                nclients++;
            break;
        case 5:
            if (!fuzz_u8(&r, &a) || !fuzz_u8(&r, &b)) break;
            send_from_host(&srv, fh_pick(srv.h, a), (size_t)b * 4);
            break;
        case 6: {
            if (!fuzz_u8(&r, &b)) break;
            static uint8_t payload[1024];
            memset(payload, b, sizeof payload);
            int n = sn_host_broadcast(srv.h, payload, (size_t)b * 4, NULL);
            FUZZ_CHECK(n >= 0);
            srv.sends_ok += (uint64_t)n;
            srv.bytes_sent_ok += (uint64_t)n * b * 4;
            break;
        }
        case 7:
            if (!fuzz_u8(&r, &a)) break;
            if (fh_pick(srv.h, a)) sn_host_peer_disconnect(fh_pick(srv.h, a));
            break;
        case 8:
            if (!fuzz_u8(&r, &a) || !fuzz_u8(&r, &b)) break;
            send_from_host(&cli, fh_pick(cli.h, a), (size_t)b * 4);
            break;
        case 9:
            if (!fuzz_u8(&r, &a)) break;
            if (fh_pick(cli.h, a)) sn_host_peer_disconnect(fh_pick(cli.h, a));
            break;
        case 10: {
            if (!fuzz_u8(&r, &a)) break;
            uint8_t buf[MAIL_MAX];
            long n;
            const sn_test_addr *src = &sources[a % SOURCES];
            for (int k = 0; k < 8 && (n = fh_take_mail(a % SOURCES, buf)) >= 0; k++)
                sn_test_net_inject(src, &server_addr, buf, (size_t)n);
            break;
        }
        case 11:
            sn_test_net_fail_sends(EPERM);
            fh_drain_events(&srv);
            fh_drain_events(&cli);
            sn_test_net_fail_sends(0);
            break;
        case 12:
            if (!fuzz_u8(&r, &a) || !fuzz_u8(&r, &b)) break;
            if (fh_pick(srv.h, a))
                sn_host_peer_set_keepalive_interval_ms(fh_pick(srv.h, a), b * 10);
            break;
        }
        /* Datagrams queue up until an operation that makes the program act: a script can put
         * several in one poll (junk before a hello, as an attacker would). */
        int kind = op & 15;
        if (kind == 2 || kind == 3 || kind == 4 || kind == 11) fh_pump();
    }
    fh_pump();
    if (!fh_end_input()) open_slot(slot, cfgb);
    lost[slot] = ticket_lost;
    return 0;
}
