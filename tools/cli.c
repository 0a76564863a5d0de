/* The `sealnet` command-line tool: entry point, dispatch and the helpers shared by subcommands. */
#include <ctype.h>
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *cli_cmd = "";

static uint64_t start_ms;
static volatile sig_atomic_t stop_flag;

uint64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double cli_elapsed(void)
{
    return (double)(cli_now_ms() - start_ms) / 1000.0;
}

static void vprefix(FILE *f, const char *fmt, va_list ap)
{
    fflush(stdout);
    if (*cli_cmd)
        fprintf(f, "sealnet %s: ", cli_cmd);
    else
        fputs("sealnet: ", f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* One line only: the reason, then where to look. */
    fflush(stdout);
    if (*cli_cmd)
        fprintf(stderr, "sealnet %s: ", cli_cmd);
    else
        fputs("sealnet: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'sealnet %s%s--help')\n", cli_cmd, *cli_cmd ? " " : "");
    va_end(ap);
    return CLI_USAGE;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprefix(stderr, fmt, ap);
    va_end(ap);
    return CLI_FAIL;
}

void cli_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("[%8.3f] ", cli_elapsed());
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
}

bool cli_parse_int(const char *s, long min, long max, long *out)
{
    if (!s || !*s) return false;
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) return false;
    *out = v;
    return true;
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    /* "+:": stop at the first operand (HOST PORT) and report a missing value as ':'. */
    char spec[64];
    snprintf(spec, sizeof spec, "+:%s", shortopts);
    opterr = 0;
    int c = getopt_long(argc, argv, spec, longopts, NULL);
    if (c == ':') {
        cli_usage_error("option '%s' needs a value", argv[optind - 1]);
        return '?';
    }
    if (c == '?') {
        if (optopt && optopt < 256 &&
            !(optind - 1 < argc && strncmp(argv[optind - 1], "--", 2) == 0))
            cli_usage_error("unknown option '-%c'", optopt);
        else
            cli_usage_error("unknown option '%s'", argv[optind - 1 < argc ? optind - 1 : argc - 1]);
        return '?';
    }
    return c;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void cli_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool cli_stopping(void)
{
    return stop_flag != 0;
}

int cli_server_credentials(const char *key_path, const char *cert_path, const char *save_cert,
                           sn_crypto_key **key, sn_x509_cert **cert)
{
    *key = NULL;
    *cert = NULL;
    if (key_path && cert_path) {
        *key = sn_crypto_key_new();
        *cert = sn_x509_cert_new();
        if (!*key || !*cert) goto oom;
        if (sn_crypto_key_load(*key, key_path, false) != SN_OK) {
            cli_fail("cannot load key %s: %s", key_path, sn_last_error_message());
            goto fail;
        }
        if (sn_x509_cert_load(*cert, cert_path) != SN_OK) {
            cli_fail("cannot load certificate %s: %s", cert_path, sn_last_error_message());
            goto fail;
        }
    } else {
        *key = sn_crypto_generate_ec("P-256");
        if (!*key) {
            cli_fail("cannot generate a key: %s", sn_last_error_message());
            goto fail;
        }
        *cert =
            sn_crypto_generate_self_signed_certificate(*key, "CN=localhost,O=sealnet", NULL, NULL);
        if (!*cert) {
            cli_fail("cannot generate a certificate: %s", sn_last_error_message());
            goto fail;
        }
        printf("generated a self-signed certificate for CN=localhost (EC P-256, 1 year)\n");
    }
    char *fp = sn_x509_cert_get_fingerprint_sha256(*cert);
    if (fp) {
        printf("certificate SHA-256 fingerprint: %s\n", fp);
        sn_free(fp);
    }
    if (save_cert) {
        if (sn_x509_cert_save(*cert, save_cert) != SN_OK) {
            cli_fail("cannot write %s: %s", save_cert, sn_last_error_message());
            goto fail;
        }
        printf("certificate written to %s\n", save_cert);
    }
    fflush(stdout);
    return CLI_OK;
oom:
    cli_fail("out of memory");
fail:
    sn_crypto_key_free(*key);
    sn_x509_cert_free(*cert);
    *key = NULL;
    *cert = NULL;
    return CLI_FAIL;
}

sn_tls_options *cli_client_options(const char *ca_path, bool insecure, const char *name)
{
    sn_x509_cert *ca = NULL;
    if (ca_path) {
        ca = sn_x509_cert_new();
        if (!ca || sn_x509_cert_load(ca, ca_path) != SN_OK) {
            cli_fail("cannot load CA certificate %s: %s", ca_path, sn_last_error_message());
            sn_x509_cert_free(ca);
            return NULL;
        }
    }
    sn_tls_options *o =
        insecure ? sn_tls_options_client_unsafe(ca) : sn_tls_options_client(ca, name);
    if (!o) cli_fail("cannot build TLS options: %s", sn_last_error_message());
    sn_x509_cert_free(ca);
    return o;
}

void cli_print_payload(FILE *f, const void *data, size_t len)
{
    const unsigned char *d = data;
    /* A trailing newline is the sender's line end, not content. */
    if (len > 0 && d[len - 1] == '\n') len--;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = d[i];
        if (c == '\\')
            fputs("\\\\", f);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, f);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else
            fprintf(f, "\\x%02x", c);
    }
    fputc('\n', f);
    fflush(f);
}

static int stdin_flags = -1;

/* O_NONBLOCK belongs to the open file description, which a terminal shares with the shell:
 * put it back on the way out. */
static void restore_stdin(void)
{
    if (stdin_flags >= 0) fcntl(0, F_SETFL, stdin_flags);
}

void cli_lines_read(cli_lines *l)
{
    if (stdin_flags < 0) {
        stdin_flags = fcntl(0, F_GETFL);
        if (stdin_flags >= 0) {
            fcntl(0, F_SETFL, stdin_flags | O_NONBLOCK);
            atexit(restore_stdin);
        }
    }
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

bool cli_lines_next(cli_lines *l, char *out, size_t cap, size_t *len)
{
    char *nl = memchr(l->buf, '\n', l->len);
    size_t take, used;
    if (nl) {
        take = (size_t)(nl - l->buf);
        used = take + 1;
    } else if ((l->eof && l->len > 0) || l->len == sizeof l->buf) {
        take = used = l->len;
    } else {
        return false;
    }
    if (take > 0 && l->buf[take - 1] == '\r') take--;
    if (take > cap) take = cap;
    memcpy(out, l->buf, take);
    *len = take;
    memmove(l->buf, l->buf + used, l->len - used);
    l->len -= used;
    return true;
}

/* ---- arguments shared by the clients and the servers ----------------------------------- */

int cli_parse_server_args(int argc, char **argv, bool datagram, long default_port,
                          void (*help)(void), cli_server_args *a)
{
    // clang-format off
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},    {"bind", required_argument, NULL, 'b'},
        {"key", required_argument, NULL, 'k'},     {"cert", required_argument, NULL, 'c'},
        {"echo", no_argument, NULL, 'e'},          {"hello", no_argument, NULL, 'H'},
        {"seconds", required_argument, NULL, 's'}, {"save-cert", required_argument, NULL, 'S'},
        {"idle", required_argument, NULL, 'i'},    {"host", no_argument, NULL, 'o'},
        {"max-clients", required_argument, NULL, 'm'},
        {"max-half-open", required_argument, NULL, 'O'},
        {"help", no_argument, NULL, 'h'},          {"metrics", required_argument, NULL, 'M'},
        {"ticket-key-file", required_argument, NULL, 'T'},
        {"cookie-secret-file", required_argument, NULL, 'C'},
        {"workers", required_argument, NULL, 'W'},
        {NULL, 0, NULL, 0}};
    // clang-format on
    *a = (cli_server_args){default_port, 0, 60, "*",  NULL, NULL, NULL, false,
                           false,        0, 0,  NULL, NULL, NULL, 1};
    int mode = 0; /* 0 unset, 'e' echo, 'H' hello */
    int c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        /* --host, --max-half-open, --metrics, --cookie-secret-file and --workers belong to the
         * DTLS server only. */
        if (!datagram && (c == 'o' || c == 'O' || c == 'M' || c == 'C' || c == 'W'))
            return cli_usage_error("unknown option '--%s'", c == 'o'   ? "host"
                                                            : c == 'O' ? "max-half-open"
                                                            : c == 'M' ? "metrics"
                                                            : c == 'C' ? "cookie-secret-file"
                                                                       : "workers");
        switch (c) {
        case 'T':
            a->ticket_key_file = optarg;
            break;
        case 'C':
            a->cookie_secret_file = optarg;
            break;
        case 'W':
            if (!strcmp(optarg, "auto"))
                a->workers = 0;
            else if (!cli_parse_int(optarg, 1, 1024, &a->workers))
                return cli_usage_error("--workers wants 1..1024 or 'auto', not '%s'", optarg);
            break;
        case 'p':
            if (!cli_parse_int(optarg, 0, 65535, &a->port))
                return cli_usage_error("--port wants a number from 0 to 65535, not '%s'", optarg);
            break;
        case 'b':
            a->bind = optarg;
            break;
        case 'k':
            a->key_path = optarg;
            break;
        case 'c':
            a->cert_path = optarg;
            break;
        case 'e':
        case 'H':
            if (mode && mode != c) return cli_usage_error("--echo and --hello exclude each other");
            mode = c;
            break;
        case 's':
            if (!cli_parse_int(optarg, 0, 1000000, &a->seconds))
                return cli_usage_error("--seconds wants a number of seconds, not '%s'", optarg);
            break;
        case 'S':
            a->save_cert = optarg;
            break;
        case 'i':
            if (!cli_parse_int(optarg, 0, 1000000, &a->idle))
                return cli_usage_error("--idle wants a number of seconds, not '%s'", optarg);
            break;
        case 'o':
            a->use_host = true;
            break;
        case 'm':
            if (!cli_parse_int(optarg, 1, 1000000, &a->max_clients))
                return cli_usage_error("--max-clients wants 1..1000000, not '%s'", optarg);
            break;
        case 'O':
            if (!cli_parse_int(optarg, 1, 1000000, &a->max_half_open))
                return cli_usage_error("--max-half-open wants 1..1000000, not '%s'", optarg);
            break;
        case 'M':
            a->metrics = optarg;
            a->use_host = true; /* the metrics are the host's counters */
            break;
        case 'h':
            help();
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if ((a->key_path == NULL) != (a->cert_path == NULL))
        return cli_usage_error("--key and --cert go together");
    a->echo = mode == 'e';
    return CLI_CONTINUE;
}

int cli_parse_client_args(int argc, char **argv, void (*help)(void), cli_client_args *a)
{
    static const struct option opts[] = {{"ca", required_argument, NULL, 'a'},
                                         {"insecure", no_argument, NULL, 'k'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"wait", required_argument, NULL, 'w'},
                                         {"pin", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"idle", required_argument, NULL, 'i'},
                                         {"reconnect", required_argument, NULL, 'r'},
                                         {"interval", required_argument, NULL, 'I'},
                                         {NULL, 0, NULL, 0}};
    *a = (cli_client_args){NULL, NULL, NULL, NULL, 0, 10, 1000, false, 0, 0, 200};
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
                a->pin = optarg;
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
    if (npos < 2) return cli_usage_error("HOST and PORT are required");
    if (!cli_parse_int(pos[1], 1, 65535, &a->port))
        return cli_usage_error("PORT wants a number from 1 to 65535, not '%s'", pos[1]);
    if (a->ca && a->insecure) return cli_usage_error("--ca and --insecure exclude each other");
    a->host = pos[0];
    return CLI_CONTINUE;
}

/* Hex digits only, upper case: "ab:CD" and "ABCD" compare equal. */
static void normalise_fingerprint(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++)
        if (isxdigit((unsigned char)*in)) out[n++] = (char)toupper((unsigned char)*in);
    out[n] = '\0';
}

bool cli_check_pin(const cli_client_args *a, const char *presented)
{
    if (!a->pin) return true;
    char want[128], got[128];
    normalise_fingerprint(a->pin, want, sizeof want);
    normalise_fingerprint(presented, got, sizeof got);
    if (strlen(want) == 64 && strcmp(want, got) == 0) return true;
    cli_fail("certificate pin mismatch: the server presented %s, --pin wants %s",
             *presented ? presented : "(no certificate)", a->pin);
    return false;
}

void cli_format_addr(const char *ip, int port, char *out, size_t cap)
{
    snprintf(out, cap, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
}

/* ---- dispatch ------------------------------------------------------------------------- */

static int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: sealnet version\n\nPrints the library version and its TLS backend.\n");
        return CLI_OK;
    }
    if (argc > 1) return cli_usage_error("unexpected argument '%s'", argv[1]);
    printf("sealnet %s\n", sn_version());
    return CLI_OK;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} commands[] = {
    {"keygen", cmd_keygen, "generate a private key and a self-signed certificate"},
    {"dtls-server", cmd_dtls_server, "run a DTLS server (answers or echoes packets)"},
    {"dtls-client", cmd_dtls_client, "connect to a DTLS server; stdin lines become packets"},
    {"tls-server", cmd_tls_server, "run a TLS-over-TCP server (greets or echoes)"},
    {"tls-client", cmd_tls_client, "connect to a TLS server; stdin lines are sent"},
    {"proxy", cmd_proxy, "DTLS in front of a plain UDP server, or plain UDP to a DTLS server"},
    {"bench", cmd_bench, "run the benchmarks on loopback and print one table"},
    {"version", cmd_version, "print the library version and TLS backend"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sealnet <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].what);
    fprintf(f, "\n'sealnet <command> --help' describes a command's options; man sealnet(1).\n");
}

int main(int argc, char **argv)
{
    start_ms = cli_now_ms();
    /* Lines must reach a pipe (a test, `| tee`) as they happen. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) return cmd_version(1, argv);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            cli_cmd = commands[i].name;
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    return cli_usage_error("unknown command '%s'", argv[1]);
}
