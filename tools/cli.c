/* The `sealnet` command-line tool: entry point, dispatch and the helpers shared by subcommands. */
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
static volatile sig_atomic_t stop_flag, stop_signal;

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
    stop_signal = sig;
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

int cli_stop_signal(void)
{
    return stop_signal;
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
        {"ticket-key-file", required_argument, NULL, 'F'},
        {"cookie-secret-file", required_argument, NULL, 'C'},
        {"workers", required_argument, NULL, 'W'},
        {"force", no_argument, NULL, 'f'},         {"keylog", required_argument, NULL, 'K'},
        {"trace", no_argument, NULL, 'T'},
        {NULL, 0, NULL, 0}};
    // clang-format on
    *a = (cli_server_args){.port = default_port, .idle = 60, .bind = "*", .workers = 1};
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
        case 'F':
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
        case 'f':
            a->force = true;
            break;
        case 'K':
            a->keylog = optarg;
            break;
        case 'T':
            a->trace = true;
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
    /* As keygen: a certificate file is never replaced by accident. Checked before anything
     * starts, so nothing is half done. */
    if (a->save_cert && !a->force && cli_file_exists(a->save_cert))
        return cli_fail("refusing to overwrite %s (use --force, or another --save-cert file)",
                        a->save_cert);
    return CLI_CONTINUE;
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
