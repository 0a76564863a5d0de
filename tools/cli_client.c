/* What dtls-client and tls-client share: their arguments, their TLS options (trust, pin, key
 * log, trace), their output (text lines or --json objects), stdin lines and the summary. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char cli_client_options_help[] =
    "  --ca FILE      trust the certificate(s) in FILE instead of the system CAs\n"
    "  --insecure     verify nothing (the server's certificate is not checked)\n"
    "  --name HOST    the name the certificate must carry, also sent as SNI (default: HOST)\n"
    "  --pin SHA256   trust exactly the server certificate with this SHA-256 fingerprint (as\n"
    "                 the servers and this client print it); enough on its own, with --ca\n"
    "                 both must hold\n"
    "  --showcerts    print the server's certificate chain: subject, issuer, names,\n"
    "                 validity and SHA-256 fingerprint of each certificate\n"
    "  --trace        print every handshake message and alert, sent and received, grouped in\n"
    "                 flights, retransmissions marked (like openssl s_client -msg)\n"
    "  --keylog FILE  append the session secrets to FILE in NSS key log format, so Wireshark\n"
    "                 can decrypt a capture (default: $SSLKEYLOGFILE when set)\n"
    "  --json         print one JSON object per event and line instead of text\n"
    "  --timeout SEC  give up the handshake after SEC seconds (default 10)\n"
    "  --wait MS      after stdin closes, wait this long for replies (default 1000)\n";

/* ---- arguments ------------------------------------------------------------------------ */

bool cli_file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}

/* "64 hex digits", optionally as 32 colon-separated pairs: what sealnet and `openssl x509
 * -fingerprint -sha256` print. */
static bool parse_pin(const char *in, char out[65])
{
    size_t n = 0, len = strlen(in);
    bool colons = strchr(in, ':') != NULL;
    if (colons ? len != 95 : len != 64) return false;
    for (size_t i = 0; i < len; i++) {
        if (colons && i % 3 == 2) {
            if (in[i] != ':') return false;
            continue;
        }
        if (!isxdigit((unsigned char)in[i])) return false;
        out[n++] = (char)toupper((unsigned char)in[i]);
    }
    out[n] = '\0';
    return n == 64;
}

/* HOST:PORT, [v6]:PORT; false when the operand has no port (then it is HOST alone). */
static bool split_host_port(const char *op, char *host, size_t cap, const char **port)
{
    if (op[0] == '[') {
        const char *close = strchr(op, ']');
        if (!close || (size_t)(close - op - 1) >= cap) return false;
        memcpy(host, op + 1, (size_t)(close - op - 1));
        host[close - op - 1] = '\0';
        *port = close[1] == ':' ? close + 2 : NULL;
        return true;
    }
    const char *colon = strchr(op, ':');
    /* More than one colon: a bare IPv6 address, its port given separately. */
    if (!colon || strchr(colon + 1, ':') || (size_t)(colon - op) >= cap) return false;
    memcpy(host, op, (size_t)(colon - op));
    host[colon - op] = '\0';
    *port = colon + 1;
    return true;
}

int cli_parse_client_args(int argc, char **argv, bool datagram, void (*help)(void),
                          cli_client_args *a)
{
    static const struct option opts[] = {{"ca", required_argument, NULL, 'a'},
                                         {"insecure", no_argument, NULL, 'k'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"wait", required_argument, NULL, 'w'},
                                         {"pin", required_argument, NULL, 'p'},
                                         {"showcerts", no_argument, NULL, 'S'},
                                         {"trace", no_argument, NULL, 'T'},
                                         {"keylog", required_argument, NULL, 'K'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"mtu", required_argument, NULL, 'm'},
                                         {"idle", required_argument, NULL, 'i'},
                                         {"reconnect", required_argument, NULL, 'r'},
                                         {"interval", required_argument, NULL, 'I'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    a->timeout = 10;
    a->wait_ms = 1000;
    a->interval_ms = 200;
    const char *pos[2] = {NULL, NULL};
    int npos = 0, c;
    for (;;) {
        while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
            switch (c) {
            case 'a':
                a->ca = optarg;
                break;
            case 'k':
                a->insecure = true;
                break;
            case 'n':
                a->name = optarg;
                break;
            case 'p':
                if (!parse_pin(optarg, a->pin_norm))
                    return cli_usage_error(
                        "--pin wants a SHA-256 fingerprint, 64 hex digits with or without colons "
                        "(as 'certificate SHA-256 fingerprint:' lines show it), not '%s'",
                        optarg);
                a->pin = optarg;
                break;
            case 'S':
                a->showcerts = true;
                break;
            case 'T':
                a->trace = true;
                break;
            case 'K':
                a->keylog = optarg;
                break;
            case 'j':
                a->json = true;
                break;
            case 'm':
                if (!datagram) return cli_usage_error("--mtu applies to DTLS only (dtls-client)");
                if (!cli_parse_int(optarg, 512, 65507, &a->mtu))
                    return cli_usage_error("--mtu wants UDP payload bytes from 512 to 65507, not "
                                           "'%s'",
                                           optarg);
                break;
            case 't':
                if (!cli_parse_int(optarg, 1, 3600, &a->timeout))
                    return cli_usage_error("--timeout wants 1..3600 seconds, not '%s'", optarg);
                break;
            case 'w':
                if (!cli_parse_int(optarg, 0, 600000, &a->wait_ms))
                    return cli_usage_error("--wait wants milliseconds, not '%s'", optarg);
                break;
            case 'i':
                if (!cli_parse_int(optarg, 0, 86400, &a->idle))
                    return cli_usage_error("--idle wants 0..86400 seconds, not '%s'", optarg);
                break;
            case 'r':
                if (!datagram) return cli_usage_error("--reconnect applies to dtls-client only");
                if (!cli_parse_int(optarg, 1, 100000, &a->reconnect))
                    return cli_usage_error("--reconnect wants 1..100000 connections, not '%s'",
                                           optarg);
                break;
            case 'I':
                if (!cli_parse_int(optarg, 0, 600000, &a->interval_ms))
                    return cli_usage_error("--interval wants milliseconds, not '%s'", optarg);
                break;
            case 'h':
                help();
                return CLI_OK;
            default:
                return CLI_USAGE;
            }
        }
        /* getopt stops at the first operand ("+"): take it and go on after it. */
        if (optind >= argc) break;
        if (npos == 2) return cli_usage_error("unexpected argument '%s'", argv[optind]);
        pos[npos++] = argv[optind++];
    }
    if (npos == 0) return cli_usage_error("HOST and PORT are required (HOST PORT or HOST:PORT)");
    const char *port = NULL;
    if (split_host_port(pos[0], a->host_buf, sizeof a->host_buf, &port)) {
        if (port && npos == 2)
            return cli_usage_error("the port is given twice: '%s' and '%s'", pos[0], pos[1]);
        if (!port) port = pos[1];
        a->host = a->host_buf;
    } else {
        a->host = pos[0];
        port = pos[1];
    }
    if (!port || !*a->host)
        return cli_usage_error("HOST and PORT are required (HOST PORT or HOST:PORT), not '%s'",
                               pos[0]);
    if (!cli_parse_int(port, 1, 65535, &a->port))
        return cli_usage_error("PORT wants a number from 1 to 65535, not '%s'", port);
    if (a->ca && a->insecure) return cli_usage_error("--ca and --insecure exclude each other");
    if (!a->keylog) {
        const char *env = getenv("SSLKEYLOGFILE");
        if (env && *env) a->keylog = env;
    }
    return CLI_CONTINUE;
}

/* ---- output --------------------------------------------------------------------------- */

/* A JSON string (quotes included). */
static void json_str(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch == '\r')
            fputs("\\r", f);
        else if (ch == '\t')
            fputs("\\t", f);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* One JSON object: pairs of key and a value given as "s" (string), "n" (number: uint64_t), "b"
 * (bool: int), "d" (double); ends with NULL. */
static void json_event(const char *event, ...)
{
    va_list ap;
    va_start(ap, event);
    printf("{\"event\":\"%s\",\"time\":%.3f", event, cli_elapsed());
    const char *key;
    while ((key = va_arg(ap, const char *))) {
        const char *type = va_arg(ap, const char *);
        printf(",\"%s\":", key);
        if (type[0] == 's') {
            const char *v = va_arg(ap, const char *);
            json_str(stdout, v ? v : "", v ? strlen(v) : 0);
        } else if (type[0] == 'n') {
            printf("%llu", (unsigned long long)va_arg(ap, uint64_t));
        } else if (type[0] == 'b') {
            fputs(va_arg(ap, int) ? "true" : "false", stdout);
        } else {
            printf("%.3f", va_arg(ap, double));
        }
    }
    va_end(ap);
    fputs("}\n", stdout);
    fflush(stdout);
}

void cli_client_connecting(cli_client *c)
{
    const cli_client_args *a = &c->a;
    const char *trust = a->insecure ? "certificate not verified"
                        : a->ca     ? "verified against --ca"
                        : a->pin    ? "trusting the --pin fingerprint"
                                    : "system CAs";
    if (a->json) {
        json_event("connecting", "host", "s", a->host, "port", "n", (uint64_t)a->port, "protocol",
                   "s", c->kind, "trust", "s", trust, (char *)NULL);
        if (a->keylog) json_event("keylog", "file", "s", a->keylog, (char *)NULL);
        return;
    }
    printf("connecting to %s port %ld (%s, %s%s)\n", a->host, a->port, c->kind, trust,
           a->pin && a->ca ? " and --pin" : "");
    if (a->keylog)
        printf("writing the session secrets to %s (key log): anyone holding it can decrypt "
               "this session\n",
               a->keylog);
    fflush(stdout);
}

static void print_chain(cli_client *c, sn_x509_cert *chain)
{
    int n = sn_x509_cert_get_count(chain);
    for (int i = 0; i < n; i++) {
        sn_x509_info info;
        if (sn_x509_cert_get_info(chain, i, &info) != SN_OK) continue;
        if (c->a.json) {
            json_event("certificate", "depth", "n", (uint64_t)i, "subject", "s", info.subject,
                       "issuer", "s", info.issuer, "names", "s", info.names, "not_before", "s",
                       info.not_before, "not_after", "s", info.not_after, "sha256", "s",
                       info.fingerprint_sha256, (char *)NULL);
            continue;
        }
        printf("certificate %d%s\n", i, i == 0 ? " (the server's own)" : "");
        printf("  subject:  %s\n", info.subject);
        printf("  issuer:   %s\n", info.issuer);
        printf("  names:    %s\n", info.names[0] ? info.names : "(no subjectAltName)");
        printf("  valid:    %s to %s\n", info.not_before, info.not_after);
        printf("  SHA-256:  %s\n", info.fingerprint_sha256);
    }
    fflush(stdout);
}

bool cli_check_pin(const cli_client_args *a, const char *fingerprint)
{
    if (!a->pin) return true;
    char got[128];
    size_t n = 0;
    for (const char *p = fingerprint; *p && n + 1 < sizeof got; p++)
        if (isxdigit((unsigned char)*p)) got[n++] = (char)toupper((unsigned char)*p);
    got[n] = '\0';
    if (strcmp(got, a->pin_norm) == 0) return true;
    if (a->json)
        json_event("error", "message", "s", "certificate pin mismatch", "presented", "s",
                   fingerprint, "pin", "s", a->pin, (char *)NULL);
    cli_fail("certificate pin mismatch: the server presented %s, --pin wants %s",
             *fingerprint ? fingerprint : "(no certificate)", a->pin);
    return false;
}

bool cli_client_connected(cli_client *c, const char *description, const char *fingerprint,
                          sn_x509_cert *chain, int max_packet)
{
    const cli_client_args *a = &c->a;
    if (!cli_check_pin(a, fingerprint)) return false;
    if (a->json) {
        json_event("connected", "description", "s", description, "sha256", "s", fingerprint,
                   "pinned", "b", a->pin != NULL, "max_packet", "n",
                   (uint64_t)(max_packet > 0 ? max_packet : 0), (char *)NULL);
    } else {
        if (max_packet > 0)
            printf("connected: %s, max packet %d bytes\n", description, max_packet);
        else
            printf("connected: %s\n", description);
        if (*fingerprint)
            printf("server certificate SHA-256 fingerprint: %s%s\n", fingerprint,
                   a->pin ? " (matches --pin)" : "");
    }
    if (a->showcerts && chain) print_chain(c, chain);
    fflush(stdout);
    return true;
}

int cli_client_failed(cli_client *c, bool connected, const char *why, sn_x509_cert *chain)
{
    const cli_client_args *a = &c->a;
    char fix[512] = "";
    char *fp = chain ? sn_x509_cert_get_fingerprint_sha256(chain) : NULL;
    bool verify = strstr(why, "certificate verify failed") != NULL;
    if (strstr(why, "hostname mismatch")) {
        sn_x509_info info;
        char name[256] = "";
        if (chain && sn_x509_cert_get_info(chain, 0, &info) == SN_OK &&
            strncmp(info.names, "DNS:", 4) == 0)
            snprintf(name, sizeof name, "%.*s", (int)strcspn(info.names + 4, ","), info.names + 4);
        if (*name)
            snprintf(fix, sizeof fix, "; connect to a name it carries, e.g. --name %s", name);
        else
            snprintf(fix, sizeof fix,
                     "; connect to a name it carries (--name), or trust it "
                     "with --pin %s",
                     fp ? fp : "FINGERPRINT");
    } else if (verify && fp && !a->insecure) {
        /* The user sees what was refused and how to trust it, without a second tool. */
        snprintf(fix, sizeof fix,
                 "; if this is your server, trust it with --pin %s or with --ca FILE holding its "
                 "certificate (e.g. from sealnet %s-server --save-cert FILE)",
                 fp, c->datagram ? "dtls" : "tls");
    }
    if (a->showcerts && chain && !connected) print_chain(c, chain);
    const char *what = connected ? "connection failed" : "handshake failed";
    if (a->json) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s%s", why, fix);
        json_event("error", "stage", "s", connected ? "session" : "handshake", "message", "s", msg,
                   "sha256", "s", fp ? fp : "", (char *)NULL);
    }
    cli_fail("%s: %s%s", what, why, fix);
    sn_free(fp);
    return CLI_FAIL;
}

static void print_line(cli_client *c, const char *data, size_t len)
{
    if (c->a.json) {
        printf("{\"event\":\"line\",\"time\":%.3f,\"data\":", cli_elapsed());
        json_str(stdout, data, len);
        fputs("}\n", stdout);
        fflush(stdout);
        return;
    }
    fputs("< ", stdout);
    cli_print_payload(stdout, data, len);
}

void cli_client_received(cli_client *c, const void *data, size_t len, bool flush)
{
    const char *d = data;
    if (c->datagram) {
        c->received++;
        c->received_bytes += len;
        if (c->a.json) {
            printf("{\"event\":\"packet\",\"time\":%.3f,\"bytes\":%zu,\"data\":", cli_elapsed(),
                   len);
            json_str(stdout, d, len);
            fputs("}\n", stdout);
            fflush(stdout);
            return;
        }
        /* A packet may hold several lines: each is a line of output. */
        if (len > 0 && d[len - 1] == '\n') len--;
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
            if (i == len || d[i] == '\n') {
                size_t end = i > start && d[i - 1] == '\r' ? i - 1 : i;
                print_line(c, d + start, end - start);
                start = i + 1;
            }
        }
        return;
    }
    c->received_bytes += len;
    for (size_t i = 0; i < len; i++) {
        if (d[i] == '\n') {
            size_t n = c->line_len;
            if (n > 0 && c->line[n - 1] == '\r') n--;
            print_line(c, c->line, n);
            c->received++;
            c->line_len = 0;
        } else if (c->line_len == sizeof c->line) {
            /* A line longer than the buffer: shown in pieces rather than held back. */
            print_line(c, c->line, c->line_len);
            c->line_len = 0;
            c->line[c->line_len++] = d[i];
        } else {
            c->line[c->line_len++] = d[i];
        }
    }
    if (flush && c->line_len > 0) {
        print_line(c, c->line, c->line_len);
        c->received++;
        c->line_len = 0;
    }
}

void cli_client_disconnected(cli_client *c, const char *why)
{
    if (c->a.json)
        json_event("disconnected", "reason", "s", why, (char *)NULL);
    else
        printf("disconnected: %s\n", why);
    fflush(stdout);
}

void cli_client_refused(cli_client *c, uint64_t line_no, size_t len, int max)
{
    c->refused_long++;
    if (c->a.json)
        json_event("refused", "line", "n", line_no, "bytes", "n", (uint64_t)len, "max_packet", "n",
                   (uint64_t)max, (char *)NULL);
    fflush(stdout);
    fprintf(stderr,
            "sealnet %s: line %llu not sent: %zu bytes, larger than the largest packet (%d "
            "bytes; split the input, or raise --mtu)\n",
            cli_cmd, (unsigned long long)line_no, len, max);
    fflush(stderr);
}

int cli_client_interrupted(cli_client *c, bool handshaking)
{
    int sig = cli_stop_signal();
    const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT (Ctrl-C)";
    if (c->a.json)
        json_event("interrupted", "signal", "s", sig == SIGTERM ? "SIGTERM" : "SIGINT", "stage",
                   "s", handshaking ? "handshake" : "session", (char *)NULL);
    fflush(stdout);
    fprintf(stderr, "sealnet %s: interrupted by %s %s\n", cli_cmd, name,
            handshaking ? "during the handshake: no connection was made"
                        : "(close_notify sent to the server)");
    fflush(stderr);
    return 128 + (sig ? sig : SIGINT);
}

void cli_client_summary(cli_client *c)
{
    if (!c->piped) return;
    const char *unit = c->datagram ? "packets" : "lines";
    if (c->a.json) {
        json_event("summary", "sent", "n", c->sent, "sent_bytes", "n", c->sent_bytes,
                   "refused_too_long", "n", c->refused_long, "busy_retries", "n", c->busy,
                   "received", "n", c->received, "received_bytes", "n", c->received_bytes, "unit",
                   "s", unit, (char *)NULL);
        return;
    }
    printf("summary: sent %llu %s (%llu bytes)", (unsigned long long)c->sent, unit,
           (unsigned long long)c->sent_bytes);
    if (c->datagram)
        printf(", refused %llu (longer than a packet), %llu waits for a full socket buffer "
               "(BUSY, sent later)",
               (unsigned long long)c->refused_long, (unsigned long long)c->busy);
    printf("; received %llu %s (%llu bytes)\n", (unsigned long long)c->received, unit,
           (unsigned long long)c->received_bytes);
    fflush(stdout);
}

/* ---- --trace -------------------------------------------------------------------------- */

static void on_trace(void *user, const sn_tls_trace_event *ev)
{
    cli_client *c = user;
    int dir = ev->sent ? 1 : 2;
    /* A flight: the messages one side sends before waiting for the other; a retransmission
     * starts the same flight again. */
    bool new_flight =
        dir != c->last_dir || (ev->retransmission && !c->last_retransmission && ev->sent);
    if (new_flight) c->flight++;
    c->last_dir = dir;
    c->last_retransmission = ev->retransmission;
    if (c->a.json) {
        json_event("trace", "direction", "s", ev->sent ? "sent" : "received", "flight", "n",
                   (uint64_t)c->flight, "retransmission", "b", (int)ev->retransmission, "content",
                   "s", ev->content, "message", "s", ev->message, "length", "n",
                   (uint64_t)ev->length, (char *)NULL);
        return;
    }
    if (new_flight)
        cli_log("flight %d %s%s", c->flight, ev->sent ? "sent" : "received",
                ev->retransmission ? " again (retransmission: no answer in time)" : "");
    cli_log("%s %s (%s, %zu bytes)%s", ev->sent ? ">>>" : "<<<", ev->message, ev->content,
            ev->length, ev->retransmission ? " [retransmitted]" : "");
}

/* The server loops have no cli_client: their trace lines name the connection instead. */
static void on_server_trace(void *user, const sn_tls_trace_event *ev)
{
    (void)user;
    cli_log("%s %s (%s, %zu bytes)%s [connection %p]", ev->sent ? ">>>" : "<<<", ev->message,
            ev->content, ev->length, ev->retransmission ? " [retransmitted]" : "", ev->session);
}

/* ---- options -------------------------------------------------------------------------- */

static bool set_keylog(sn_tls_options *o, const char *path)
{
    if (!path) return true;
    if (sn_tls_options_set_keylog_file(o, path) == SN_OK) return true;
    cli_fail("--keylog: %s (check the directory exists and is writable)", sn_last_error_message());
    return false;
}

sn_tls_options *cli_client_options(cli_client *c)
{
    const cli_client_args *a = &c->a;
    sn_x509_cert *ca = NULL;
    if (a->ca) {
        ca = sn_x509_cert_new();
        if (!ca || sn_x509_cert_load(ca, a->ca) != SN_OK) {
            cli_fail("cannot load the CA certificate %s: %s (--ca wants a PEM certificate, such "
                     "as the one `sealnet %s-server --save-cert FILE` writes)",
                     a->ca, sn_last_error_message(), c->datagram ? "dtls" : "tls");
            sn_x509_cert_free(ca);
            return NULL;
        }
    }
    /* --pin alone is the trust: the chain is not checked against CAs, the fingerprint is,
     * right after the handshake and before any data. */
    bool unsafe = a->insecure || (a->pin && !a->ca);
    sn_tls_options *o =
        unsafe ? sn_tls_options_client_unsafe(ca) : sn_tls_options_client(ca, a->name);
    sn_x509_cert_free(ca);
    if (!o) {
        cli_fail("cannot build TLS options: %s", sn_last_error_message());
        return NULL;
    }
    if (!set_keylog(o, a->keylog) ||
        (a->trace && sn_tls_options_set_trace_callback(o, on_trace, c) != SN_OK)) {
        sn_tls_options_free(o);
        return NULL;
    }
    c->piped = !isatty(0);
    return o;
}

sn_tls_options *cli_server_options(const cli_server_args *a, const sn_crypto_key *key,
                                   const sn_x509_cert *cert)
{
    sn_tls_options *o = sn_tls_options_server(key, cert);
    if (!o) {
        cli_fail("key and certificate unusable: %s", sn_last_error_message());
        return NULL;
    }
    const char *keylog = a->keylog;
    if (!keylog) {
        const char *env = getenv("SSLKEYLOGFILE");
        if (env && *env) keylog = env;
    }
    if (keylog) printf("writing session secrets to %s (key log)\n", keylog);
    if (!set_keylog(o, keylog) ||
        (a->trace && sn_tls_options_set_trace_callback(o, on_server_trace, NULL) != SN_OK)) {
        sn_tls_options_free(o);
        return NULL;
    }
    return o;
}

/* ---- stdin lines ---------------------------------------------------------------------- */

static int stdin_flags = -1;

/* O_NONBLOCK belongs to the open file description, which a terminal shares with the shell:
 * put it back on the way out. */
static void restore_stdin(void)
{
    if (stdin_flags >= 0) fcntl(0, F_SETFL, stdin_flags);
}

void cli_stdin_nonblocking(void)
{
    if (stdin_flags < 0) {
        stdin_flags = fcntl(0, F_GETFL);
        if (stdin_flags >= 0) {
            fcntl(0, F_SETFL, stdin_flags | O_NONBLOCK);
            atexit(restore_stdin);
        }
    }
}

void cli_lines_read(cli_lines *l)
{
    cli_stdin_nonblocking();
    while (!l->eof && l->len < sizeof l->buf) {
        ssize_t n = read(0, l->buf + l->len, sizeof l->buf - l->len);
        if (n > 0) {
            l->len += (size_t)n;
        } else if (n == 0) {
            l->eof = true;
        } else {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) l->eof = true;
            break;
        }
    }
}

bool cli_lines_next(cli_lines *l, char *out, size_t *len, bool *too_long)
{
    *too_long = false;
    for (;;) {
        char *nl = memchr(l->buf, '\n', l->len);
        if (l->discarding) {
            /* The rest of an over-long line: counted, dropped, reported once at its end. */
            size_t used = nl ? (size_t)(nl - l->buf) + 1 : l->len;
            l->long_len += nl ? used - 1 : used;
            memmove(l->buf, l->buf + used, l->len - used);
            l->len -= used;
            if (!nl && !l->eof) return false;
            l->discarding = false;
            *too_long = true;
            *len = l->long_len;
            return true;
        }
        size_t take, used;
        if (nl) {
            take = (size_t)(nl - l->buf);
            used = take + 1;
        } else if (l->len == sizeof l->buf) {
            l->discarding = true;
            l->long_len = 0;
            l->line_no++;
            continue;
        } else if (l->eof && l->len > 0) {
            take = used = l->len;
        } else {
            return false;
        }
        l->line_no++;
        if (take > 0 && l->buf[take - 1] == '\r') take--;
        memcpy(out, l->buf, take);
        *len = take;
        memmove(l->buf, l->buf + used, l->len - used);
        l->len -= used;
        return true;
    }
}
