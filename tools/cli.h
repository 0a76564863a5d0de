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
    const char *bind, *key_path, *cert_path, *save_cert, *keylog;
    bool echo, use_host, force, trace;
    long max_clients, max_half_open;
    const char *metrics; /* dtls-server --metrics ADDR:PORT (implies --host) */
    /* Scale-out (docs/scaling.md): shared secrets and worker threads. workers 0: one per CPU. */
    const char *ticket_key_file, *cookie_secret_file;
    long workers;
} cli_server_args;
/* Parses them; `datagram` also accepts the DTLS server's --host and --max-half-open. */
int cli_parse_server_args(int argc, char **argv, bool datagram, long default_port,
                          void (*help)(void), cli_server_args *a);
/* Server options for key and cert with --keylog (or $SSLKEYLOGFILE) and --trace applied; NULL
 * after printing the reason. */
sn_tls_options *cli_server_options(const cli_server_args *a, const sn_crypto_key *key,
                                   const sn_x509_cert *cert);

/* Options shared by dtls-client and tls-client: HOST PORT (or HOST:PORT, [v6]:PORT) and the
 * rest in any order. */
typedef struct cli_client_args {
    const char *host, *ca, *name, *pin, *keylog;
    long port, timeout, wait_ms, mtu;
    bool insecure, showcerts, trace, json;
    char host_buf[256]; /* the host of "[v6]:PORT" without its brackets */
    char pin_norm[65];  /* --pin as 64 upper-case hex digits */
    long idle; /* dtls-client --idle: seconds of server silence before giving up (0: never) */
    long reconnect, interval_ms; /* --reconnect N: N more connections, --interval ms apart */
} cli_client_args;
/* `datagram`: dtls-client (accepts --mtu). */
/* --pin against the fingerprint the server presented: true when there is no pin or it matches;
 * otherwise prints the mismatch (a JSON event too with --json) and returns false. */
bool cli_check_pin(const cli_client_args *a, const char *fingerprint);
int cli_parse_client_args(int argc, char **argv, bool datagram, void (*help)(void),
                          cli_client_args *a);

/* The text every client's --help shows for the shared options (one source for --help and the
 * test that compares it with the man page). */
extern const char cli_client_options_help[];

/* True when path names something (a file, a directory, a dangling link). */
bool cli_file_exists(const char *path);

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
/* The signal that stopped us (SIGINT, SIGTERM), 0 when none. */
int cli_stop_signal(void);

/* Server credentials: loads key_path/cert_path when both are given, else generates an EC P-256
 * key and a self-signed certificate for "localhost". Prints the certificate's SHA-256
 * fingerprint and writes the certificate to save_cert when not NULL. On success *key and *cert
 * are the caller's. */
int cli_server_credentials(const char *key_path, const char *cert_path, const char *save_cert,
                           sn_crypto_key **key, sn_x509_cert **cert);

/* Prints a received payload as text, escaping what is not printable, ending in a newline. */
void cli_print_payload(FILE *f, const void *data, size_t len);

/* ---- the clients (cli_client.c) -------------------------------------------------------- */

/* One client run: its arguments, its output (text or --json) and its counters. */
typedef struct cli_client {
    cli_client_args a;
    bool datagram;
    const char *kind; /* "DTLS" or "TLS" */
    /* --trace */
    int flight;
    int last_dir; /* 0 none, 1 sent, 2 received */
    bool last_retransmission;
    /* counters for the summary */
    uint64_t sent, sent_bytes, refused_long, busy, received, received_bytes, lines_in;
    bool piped;
    /* received stream bytes not yet ended by a newline (tls-client) */
    char line[16384];
    size_t line_len;
} cli_client;

/* Client options from the arguments (--ca / --insecure / --pin / --name / --keylog /
 * SSLKEYLOGFILE / --trace); NULL after printing the reason. */
sn_tls_options *cli_client_options(cli_client *c);
/* "connecting to HOST port N (...)". */
void cli_client_connecting(cli_client *c);
/* After the handshake: checks --pin (false after printing why), prints "connected" with the
 * fingerprint and, with --showcerts, the chain. */
bool cli_client_connected(cli_client *c, const char *description, const char *fingerprint,
                          sn_x509_cert *chain, int max_packet);
/* A failed handshake or connection: the reason, with the fix where there is one; returns
 * CLI_FAIL. chain may be NULL. */
int cli_client_failed(cli_client *c, bool connected, const char *why, sn_x509_cert *chain);
/* Received data: a datagram (each of its lines printed), or stream bytes (printed line by line;
 * flush prints an unterminated rest). */
void cli_client_received(cli_client *c, const void *data, size_t len, bool flush);
/* "disconnected: ..." */
void cli_client_disconnected(cli_client *c, const char *why);
/* "line N is B bytes ...: not sent" */
void cli_client_refused(cli_client *c, uint64_t line_no, size_t len, int max);
/* Ctrl-C: the line saying so; returns 128 + the signal (130 for SIGINT). */
int cli_client_interrupted(cli_client *c, bool handshaking);
/* The summary at exit when stdin was not a terminal. */
void cli_client_summary(cli_client *c);

/* Non-blocking line reader on stdin for the interactive clients. */
typedef struct cli_lines {
    char buf[65536];
    size_t len;
    bool eof;
    bool discarding;  /* inside an over-long line: dropping it up to its newline */
    size_t long_len;  /* bytes of that line so far */
    uint64_t line_no; /* lines taken so far */
} cli_lines;
/* Makes reads of stdin return at once (EAGAIN) when it holds nothing; undone at exit. */
void cli_stdin_nonblocking(void);
/* Reads what stdin holds now (never blocks); sets eof when stdin is closed. */
void cli_lines_read(cli_lines *l);
/* Pops the next complete line (without its newline) into out (cap >= sizeof l->buf); at EOF the
 * unterminated rest counts as a line. A line longer than the buffer is dropped and reported
 * once, with *too_long set and *len its whole length. false when there is none yet. */
bool cli_lines_next(cli_lines *l, char *out, size_t *len, bool *too_long);

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
