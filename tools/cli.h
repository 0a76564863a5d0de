/* The `sealnet` command-line tool: shared helpers of the subcommands. Not installed. */
#ifndef SN_CLI_H
#define SN_CLI_H

#include <sealnet/sealnet.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

/* Exit codes: 0 success, 1 failure at run time, 2 bad arguments (like most Unix tools). */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* The subcommand being run ("dtls-server"), for messages. */
extern const char *cli_cmd;

/* "sealnet <cmd>: <message>" on stderr as one line; returns CLI_USAGE after pointing at --help. */
int cli_usage_error(const char *fmt, ...) CLI_PRINTF(1, 2);
/* "sealnet <cmd>: <message>" on stderr as one line; returns CLI_FAIL. */
int cli_fail(const char *fmt, ...) CLI_PRINTF(1, 2);

/* Strict number parsing for options: the whole string, within [min, max]. */
bool cli_parse_int(const char *s, long min, long max, long *out);
/* Runs getopt_long over argv with our own one-line messages; returns the option, -1 at the end,
 * or '?' after printing the error (the caller returns CLI_USAGE). */
struct option;
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* Returned by the argument parsers below when the command should go on (any other value is the
 * exit status: 0 after --help, 2 after a bad argument). */
enum { CLI_CONTINUE = -1 };

/* Options shared by dtls-server and tls-server. max_clients / max_half_open 0: the command's
 * default. */
typedef struct cli_server_args {
    long port, seconds, idle;
    const char *bind, *key_path, *cert_path, *save_cert;
    bool echo, use_host;
    long max_clients, max_half_open;
    const char *metrics; /* dtls-server --metrics ADDR:PORT (implies --host) */
    /* Scale-out (docs/scaling.md): shared secrets and worker threads. workers 0: one per CPU. */
    const char *ticket_key_file, *cookie_secret_file;
    long workers;
} cli_server_args;
/* Parses them; `datagram` also accepts the DTLS server's --host and --max-half-open. */
int cli_parse_server_args(int argc, char **argv, bool datagram, long default_port,
                          void (*help)(void), cli_server_args *a);

/* Options shared by dtls-client and tls-client: HOST PORT and the rest in any order. */
typedef struct cli_client_args {
    const char *host, *ca, *name, *pin;
    long port, timeout, wait_ms;
    bool insecure;
    long idle; /* dtls-client --idle: seconds of server silence before giving up (0: never) */
    long reconnect, interval_ms; /* --reconnect N: N more connections, --interval ms apart */
} cli_client_args;
int cli_parse_client_args(int argc, char **argv, void (*help)(void), cli_client_args *a);

/* With --pin: true when the server's certificate has that SHA-256 fingerprint (colons and case
 * ignored); prints the reason and returns false otherwise. Without --pin: true. */
bool cli_check_pin(const cli_client_args *a, const char *presented);

/* "ip:port", or "[ip]:port" for IPv6. */
void cli_format_addr(const char *ip, int port, char *out, size_t cap);

/* Seconds since the program started, for log lines ("[  1.234]"). */
double cli_elapsed(void);
/* Monotonic milliseconds. */
uint64_t cli_now_ms(void);
/* A log line on stdout prefixed with the elapsed time, flushed at once. */
void cli_log(const char *fmt, ...) CLI_PRINTF(1, 2);

/* Installs SIGINT/SIGTERM handlers that set the flag read by cli_stopping(), and ignores
 * SIGPIPE. */
void cli_install_signals(void);
bool cli_stopping(void);

/* Server credentials: loads key_path/cert_path when both are given, else generates an EC P-256
 * key and a self-signed certificate for "localhost". Prints the certificate's SHA-256
 * fingerprint and writes the certificate to save_cert when not NULL. On success *key and *cert
 * are the caller's. */
int cli_server_credentials(const char *key_path, const char *cert_path, const char *save_cert,
                           sn_crypto_key **key, sn_x509_cert **cert);
/* Client options from --ca / --insecure / --name: NULL after printing the reason. */
sn_tls_options *cli_client_options(const char *ca_path, bool insecure, const char *name);

/* Prints a received payload as text, escaping what is not printable, ending in a newline. */
void cli_print_payload(FILE *f, const void *data, size_t len);

/* Non-blocking line reader on stdin for the interactive clients. */
typedef struct cli_lines {
    char buf[65536];
    size_t len;
    bool eof;
} cli_lines;
/* Reads what stdin holds now (never blocks); sets eof when stdin is closed. */
void cli_lines_read(cli_lines *l);
/* Pops the next complete line (without its newline) into out; at EOF the unterminated rest counts
 * as a line. false when there is none. */
bool cli_lines_next(cli_lines *l, char *out, size_t cap, size_t *len);

/* cmd_scale.c (docs/scaling.md). The loaders print the reason (naming the file) and return
 * false. */
bool cli_load_cookie_secret(const char *path, uint8_t out[32]);
bool cli_load_ticket_keys(sn_tls_options *o, const char *path);
/* dtls-server --workers N: the server on sn_workers. */
int cli_scale_server(const cli_server_args *a, const sn_crypto_key *key, const sn_x509_cert *cert);
/* dtls-client --reconnect N: N + 1 connections from one local port, each saying whether it
 * resumed. */
int cli_reconnect_client(const cli_client_args *a, const sn_tls_options *o);

/* Subcommands. */
int cmd_keygen(int argc, char **argv);
int cmd_dtls_server(int argc, char **argv);
int cmd_dtls_client(int argc, char **argv);
int cmd_tls_server(int argc, char **argv);
int cmd_tls_client(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_proxy(int argc, char **argv);

#endif
