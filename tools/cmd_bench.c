/* sealnet bench: runs the benchmark programs of bench/ on loopback and prints one table.
 *
 * Contract with a benchmark program: it accepts `--seconds N` and prints a markdown table on
 * stdout (other lines are allowed; "label: number unit" lines are understood too). The first
 * column of a table names the case; every other cell is a measure. Baselines, shown side by side
 * with a ratio: a row whose case names one (raw, bare, baseline, plain, openssl, kernel) is the
 * reference for the other rows of its table; a column whose header names one ("bare ns/dgram")
 * is the reference for the column with the same header otherwise ("server ns/dgram").
 */
#include "cli.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SN_LIBEXEC_DIR
#define SN_LIBEXEC_DIR "/usr/local/libexec/sealnet"
#endif

static void help(void)
{
    printf("usage: sealnet bench [dtls|tls|udp|host|all ...] [--seconds N] [--markdown]\n"
           "\n"
           "Runs the benchmark programs on loopback (each for about N seconds) and prints one\n"
           "table of their measures, with the ratio of every measure to its raw baseline (the\n"
           "row named raw/bare/baseline/openssl of the same table) where there is one. A\n"
           "progress indicator goes to stderr.\n"
           "\n"
           "  dtls|tls|udp|host   run the programs whose name has that word (dtls also takes\n"
           "                      the cookie and host ones); default: all\n"
           "  --seconds N         time per program (default 3)\n"
           "  --markdown          print the table as markdown instead of aligned text\n"
           "  --list              list the benchmark programs found and exit\n"
           "\n"
           "The programs are looked up in $SEALNET_BENCH_DIR, then ../bench beside this\n"
           "binary (the build tree), then ../libexec/sealnet beside it, then\n" SN_LIBEXEC_DIR
           ".\n");
}

/* ---- finding the programs ------------------------------------------------------------- */

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool find_dir(char *out, size_t cap)
{
    const char *env = getenv("SEALNET_BENCH_DIR");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return is_dir(out);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if (snprintf(out, cap, "%s/../bench", exe) < (int)cap && is_dir(out)) return true;
            /* Installed under another prefix than configured: bin/../libexec/sealnet. */
            if (snprintf(out, cap, "%s/../libexec/sealnet", exe) < (int)cap && is_dir(out))
                return true;
        }
    }
    snprintf(out, cap, "%s", SN_LIBEXEC_DIR);
    return is_dir(out);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Executables in dir, sorted; caller frees. */
static char **list_programs(const char *dir, size_t *count)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[PATH_MAX];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || access(path, X_OK) != 0) continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[(*count)++] = strdup(e->d_name);
    }
    closedir(d);
    if (names) qsort(names, *count, sizeof *names, cmp_str);
    return names;
}

/* ---- running one ---------------------------------------------------------------------- */

typedef struct capture {
    char *data;
    size_t len, cap;
} capture;

static void cap_add(capture *c, const char *d, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        size_t nc = c->cap ? c->cap : 4096;
        while (c->len + n + 1 > nc)
            nc *= 2;
        char *p = realloc(c->data, nc);
        if (!p) return;
        c->data = p;
        c->cap = nc;
    }
    memcpy(c->data + c->len, d, n);
    c->len += n;
    c->data[c->len] = '\0';
}

static bool drain(int *fd, capture *c)
{
    if (*fd < 0) return false;
    char buf[4096];
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n > 0) {
        cap_add(c, buf, (size_t)n);
        return true;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(*fd);
        *fd = -1;
    }
    return false;
}

/* The arguments that make a program spend about `seconds` per row of its table. The contract
 * is `--seconds S`; the programs below measure sealnet and its baseline in turn, each for S,
 * and some repeat that: they get half the time per run and one repetition. */
static void program_args(const char *name, long seconds, char *args[8], char buf[3][32])
{
    int n = 0;
    args[n++] = (char *)name;
    args[n++] = "--seconds";
    double per_run = (double)seconds;
    if (!strcmp(name, "dtls") || !strcmp(name, "tls_stream") || !strcmp(name, "host_echo") ||
        !strcmp(name, "udp_server") || !strcmp(name, "hmac_cookie"))
        per_run = (double)seconds / 2;
    snprintf(buf[0], sizeof buf[0], "%g", per_run);
    args[n++] = buf[0];
    if (!strcmp(name, "dtls")) {
        args[n++] = "--repeat";
        args[n++] = "1";
    } else if (!strcmp(name, "tls_stream")) {
        args[n++] = "--rounds";
        args[n++] = "1";
    }
    args[n] = NULL;
}

/* Runs path --seconds N with stdout/stderr captured, showing progress; its exit status
 * (or -1 when it could not run, 124 when it overran and was killed). */
static int run_program(const char *path, const char *name, long seconds, int index, int total,
                       capture *out, capture *err)
{
    int po[2], pe[2];
    if (pipe(po) != 0) return -1;
    if (pipe(pe) != 0) {
        close(po[0]), close(po[1]);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        char *args[8];
        char buf[3][32];
        program_args(name, seconds, args, buf);
        execv(path, args);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    int fo = po[0], fe = pe[0];
    bool tty = isatty(2);
    uint64_t start = cli_now_ms();
    /* A program that ignores --seconds must not hang the command. */
    uint64_t limit = start + (uint64_t)(seconds * 4 + 60) * 1000u;
    int status = 0;
    bool done = false, killed = false;
    static const char spin[] = "|/-\\";
    int tick = 0;
    if (!tty) fprintf(stderr, "bench [%d/%d] %s (%ld s)...\n", index, total, name, seconds);
    while (!done || fo >= 0 || fe >= 0) {
        struct pollfd p[2];
        nfds_t n = 0;
        if (fo >= 0) p[n++] = (struct pollfd){fo, POLLIN, 0};
        if (fe >= 0) p[n++] = (struct pollfd){fe, POLLIN, 0};
        if (n) poll(p, n, 200);
        while (drain(&fo, out)) {
        }
        while (drain(&fe, err)) {
        }
        if (!done) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid) done = true;
        }
        if (done && n == 0) break;
        uint64_t now = cli_now_ms();
        if (!done && (now > limit || cli_stopping())) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            done = killed = true;
        }
        if (tty) {
            double el = (double)(now - start) / 1000.0;
            fprintf(stderr, "\r\033[K%c [%d/%d] %s  %.1f/%ld s", spin[tick++ % 4], index, total,
                    name, el, seconds);
            fflush(stderr);
        }
        if (done && fo < 0 && fe < 0) break;
    }
    if (fo >= 0) close(fo);
    if (fe >= 0) close(fe);
    if (tty) fputs("\r\033[K", stderr);
    if (killed) return 124;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* ---- parsing and the table ------------------------------------------------------------ */

#define MAXCOLS 16
#define CELL    96

typedef char cell[CELL];

/* One markdown table (or the "label: number unit" lines sharing a unit) of one program. */
typedef struct table {
    cell head[MAXCOLS];
    int ncols;
    bool keyvalue;
    cell (*rows)[MAXCOLS];
    int nrows, cap;
} table;

typedef struct tables {
    table *t;
    int n, cap;
} tables;

/* One line of the merged output. */
typedef struct row {
    char bench[64];
    char kase[CELL];
    char measure[CELL];
    char value[48];
    char baseline[48];
    char ratio[24];
    char better[8]; /* "higher" or "lower": which way the value is better */
    char target[48];
    char met[24];
} row;

typedef struct rows {
    row *r;
    size_t n, cap;
} rows;

/* Bounded copies that truncate quietly (table cells are display text). */
static void copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void append_str(char *dst, size_t cap, const char *s)
{
    size_t used = strlen(dst);
    if (used < cap) copy_str(dst + used, cap - used, s);
}

static void trim_copy(char *dst, size_t cap, const char *s, size_t len)
{
    while (len > 0 && isspace((unsigned char)*s))
        s++, len--;
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    /* Markdown emphasis is presentation only. */
    while (len >= 2 && s[0] == '*' && s[len - 1] == '*')
        s++, len -= 2;
    if (len >= cap) len = cap - 1;
    memcpy(dst, s, len);
    dst[len] = '\0';
}

static table *tables_add(tables *ts)
{
    if (ts->n == ts->cap) {
        int nc = ts->cap ? ts->cap * 2 : 8;
        table *p = realloc(ts->t, (size_t)nc * sizeof *p);
        if (!p) return NULL;
        ts->t = p;
        ts->cap = nc;
    }
    table *t = &ts->t[ts->n++];
    memset(t, 0, sizeof *t);
    return t;
}

static cell *table_add_row(table *t)
{
    if (t->nrows == t->cap) {
        int nc = t->cap ? t->cap * 2 : 16;
        cell(*p)[MAXCOLS] = realloc(t->rows, (size_t)nc * sizeof *p);
        if (!p) return NULL;
        t->rows = p;
        t->cap = nc;
    }
    cell *r = t->rows[t->nrows++];
    memset(r, 0, sizeof(cell) * MAXCOLS);
    return r;
}

static void tables_free(tables *ts)
{
    for (int i = 0; i < ts->n; i++)
        free(ts->t[i].rows);
    free(ts->t);
    ts->t = NULL;
    ts->n = ts->cap = 0;
}

/* Splits a "| a | b |" line into cells; returns how many. */
static int split_cells(const char *line, cell *cells, int max)
{
    const char *p = line;
    while (*p == ' ')
        p++;
    if (*p != '|') return 0;
    p++;
    int n = 0;
    while (*p && n < max) {
        const char *bar = strchr(p, '|');
        if (!bar) {
            cell tmp;
            trim_copy(tmp, sizeof tmp, p, strlen(p));
            if (*tmp) memcpy(cells[n++], tmp, sizeof tmp);
            break;
        }
        trim_copy(cells[n], CELL, p, (size_t)(bar - p));
        n++;
        p = bar + 1;
    }
    return n;
}

static bool is_separator(cell *cells, int n)
{
    for (int i = 0; i < n; i++)
        for (const char *c = cells[i]; *c; c++)
            if (*c != '-' && *c != ':' && *c != ' ') return false;
    return n > 0;
}

static bool parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno) return false;
    *out = v;
    return true;
}

/* A measure as a table prints it: "bare OpenSSL: 534 /s" (the value after a label), "100,000/s"
 * (thousands separators), "21.7 k/s" (a k or M multiplier). */
static bool parse_measure(const char *s, double *out)
{
    const char *colon = strstr(s, ": ");
    if (colon) s = colon + 2;
    char clean[64];
    size_t n = 0;
    for (; *s && n + 1 < sizeof clean; s++)
        if (*s != ',') clean[n++] = *s;
    clean[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(clean, &end);
    if (end == clean || errno) return false;
    while (*end == ' ')
        end++;
    if (*end == 'k' && (end[1] == '/' || end[1] == ' ' || !end[1])) v *= 1e3;
    if (*end == 'M' && (end[1] == '/' || end[1] == ' ' || !end[1])) v *= 1e6;
    *out = v;
    return true;
}

static double dabs(double x)
{
    return x < 0 ? -x : x;
}

/* Whether a larger value is better: rates are, costs (time, CPU, memory, loss) are not. */
static bool higher_is_better(const char *kase, const char *measure, const char *value)
{
    char t[3 * CELL + 8];
    snprintf(t, sizeof t, "%s %s %s", kase, measure, value);
    size_t n = strlen(t);
    /* A figure in seconds ("1.95 s", "connect s") is a time: a cost. */
    if (n >= 2 && t[n - 1] == 's' && t[n - 2] == ' ') return false;
    if (strlen(measure) >= 2 && !strcmp(measure + strlen(measure) - 2, " s")) return false;
    for (char *p = t; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strstr(t, "/s") || strstr(t, "per s") || strstr(t, "cpu second") || strstr(t, "rate") ||
        strstr(t, "throughput") || strstr(t, "per second"))
        return true;
    /* Cost words, matched as whole words ("ms" is a unit, "datagrams" is not). */
    static const char *const costs[] = {"ns",   "us",     "\xc2\xb5s", "ms",   "cpu",
                                        "kib",  "mib",    "bytes",     "rss",  "loss",
                                        "lost", "faults", "latency",   "drop", "heap"};
    char *save = NULL;
    for (char *w = strtok_r(t, " /,()=:", &save); w; w = strtok_r(NULL, " /,()=:", &save))
        for (size_t i = 0; i < sizeof costs / sizeof costs[0]; i++)
            if (!strcmp(w, costs[i])) return false;
    return true;
}

/* Targets for programs that print none, from docs/host.md and docs/udp.md: {program, text in
 * the measure, target}. A target on "x" applies to value / baseline. */
static const struct {
    const char *bench, *measure, *target;
} builtin_targets[] = {
    {"hmac_cookie", "ns/op", "<= 1.0x"},    /* no dearer than OpenSSL's own HMAC() */
    {"udp_server", "ns/dgram", "<= 1.5x"},  /* routing adds at most half a bare recvmmsg */
    {"host_echo", "echo pkt/s", ">= 0.5x"}, /* docs/host.md */
};

/* Evaluates target ("≥ 0.9× bare", ">= 0.80", "≤ 64 KiB", "≥ 100,000/s") against a row: a
 * target with "x"/"×", or a plain number when there is a ratio, is on the ratio; one with a
 * unit is on the value. `inverted`: the program's ratio was baseline / value (higher better
 * for a cost), so its target is turned around to value / baseline. Writes the target as shown
 * and "yes"/"NO"; false when it cannot tell. */
static bool eval_target(const char *target, double value, bool have_value, double ratio,
                        bool have_ratio, bool inverted, char *shown, size_t shown_cap, char *met,
                        size_t met_cap)
{
    const char *p = target;
    int op = 0; /* +1: at least, -1: at most */
    if (!strncmp(p, "\xe2\x89\xa5", 3))
        op = 1, p += 3; /* ≥ */
    else if (!strncmp(p, "\xe2\x89\xa4", 3))
        op = -1, p += 3; /* ≤ */
    else if (!strncmp(p, ">=", 2))
        op = 1, p += 2;
    else if (!strncmp(p, "<=", 2))
        op = -1, p += 2;
    else if (*p == '>')
        op = 1, p++;
    else if (*p == '<')
        op = -1, p++;
    if (!op) return false;
    while (*p == ' ')
        p++;
    double limit;
    if (!parse_measure(p, &limit)) return false;
    const char *after = p;
    while (*after && (isdigit((unsigned char)*after) || *after == '.' || *after == ','))
        after++;
    while (*after == ' ')
        after++;
    bool on_ratio = *after == 'x' || !strncmp(after, "\xc3\x97", 2) || (!*after && have_ratio);
    if (on_ratio) {
        if (!have_ratio) return false;
        if (inverted && limit > 0) {
            limit = 1.0 / limit;
            op = -op;
        }
        snprintf(shown, shown_cap, "%s %.2fx", op > 0 ? ">=" : "<=", limit);
        bool ok = op > 0 ? ratio >= limit : ratio <= limit;
        snprintf(met, met_cap, "%s", ok ? "yes" : "NO");
        return true;
    }
    if (!have_value) return false;
    snprintf(shown, shown_cap, "%s %s", op > 0 ? ">=" : "<=", p);
    bool ok = op > 0 ? value >= limit : value <= limit;
    snprintf(met, met_cap, "%s", ok ? "yes" : "NO");
    return true;
}

static const char *const baseline_words[] = {"raw",   "bare",    "baseline",
                                             "plain", "openssl", "kernel"};
static const char *const own_words[] = {"sealnet", "server", "ours", "sn", "host"};
/* Words that name a transport rather than whose figure it is: "raw UDP echo pkt/s" compares
 * with "host echo pkt/s". */
static const char *const neutral_words[] = {"udp", "tcp", "tls", "dtls"};
#define NNEUTRAL (sizeof neutral_words / sizeof neutral_words[0])
#define NBASE    (sizeof baseline_words / sizeof baseline_words[0])
#define NOWN     (sizeof own_words / sizeof own_words[0])

static bool is_baseline(const char *text)
{
    char low[CELL];
    size_t i = 0;
    for (; text[i] && i < sizeof low - 1; i++)
        low[i] = (char)tolower((unsigned char)text[i]);
    low[i] = '\0';
    for (size_t w = 0; w < NBASE; w++)
        if (strstr(low, baseline_words[w])) return true;
    return false;
}

/* A header without the words that say whose figure it is, transports and parenthesised
 * notes: "bare ns/dgram" -> "ns/dgram", "host server CPU us/pkt (user)" -> "CPU us/pkt". */
static void strip_owner(const char *head, char *out, size_t cap)
{
    out[0] = '\0';
    char tmp[CELL];
    copy_str(tmp, sizeof tmp, head);
    char *save = NULL;
    for (char *tok = strtok_r(tmp, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        bool drop = false;
        for (size_t w = 0; w < NBASE; w++)
            if (strcasecmp(tok, baseline_words[w]) == 0) drop = true;
        for (size_t w = 0; w < NOWN; w++)
            if (strcasecmp(tok, own_words[w]) == 0) drop = true;
        for (size_t w = 0; w < NNEUTRAL; w++)
            if (strcasecmp(tok, neutral_words[w]) == 0) drop = true;
        if (drop || tok[0] == '(') continue;
        if (*out) append_str(out, cap, " ");
        append_str(out, cap, tok);
    }
}

/* A column of ratios someone already computed: headed "ratio" or "a / b", or every value like
 * "7.01x". */
static bool is_ratio_column(const table *t, int col)
{
    if (strncasecmp(t->head[col], "ratio", 5) == 0 || strstr(t->head[col], " / ")) return true;
    int seen = 0;
    for (int r = 0; r < t->nrows; r++) {
        const char *c = t->rows[r][col];
        size_t len = strlen(c);
        double v;
        if (!len) continue;
        if (c[len - 1] != 'x' || !parse_number(c, &v)) return false;
        seen++;
    }
    return seen > 0;
}

/* Turns one program's stdout into tables: every markdown table, plus the "label: number unit"
 * lines grouped by unit. */
static void parse_output(const char *text, tables *ts)
{
    int cur = -1;     /* the markdown table being read */
    int kv_first = 0; /* key-value tables after the last markdown table start here */
    const char *line = text;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char buf[1024];
        if (len >= sizeof buf) len = sizeof buf - 1;
        memcpy(buf, line, len);
        buf[len] = '\0';
        line = nl ? nl + 1 : NULL;

        cell cells[MAXCOLS];
        int n = split_cells(buf, cells, MAXCOLS);
        if (n == 0) {
            cur = -1;
            /* "backend hmac_sha256: 123 ns/op" */
            char *colon = strchr(buf, ':');
            double v;
            if (!colon || !parse_number(colon + 1, &v)) continue;
            char *end;
            strtod(colon + 1, &end);
            cell unit, label, value;
            trim_copy(unit, sizeof unit, end, strlen(end));
            /* A figure with a short unit, not a sentence that happens to hold a number. */
            if (strlen(unit) > 24 || (size_t)(colon - buf) > 80) continue;
            /* "2.59 (target <= 1.25)": the target of that figure. */
            cell kv_target = "";
            if (!strncmp(unit, "(target ", 8) && unit[strlen(unit) - 1] == ')') {
                trim_copy(kv_target, sizeof kv_target, unit + 8, strlen(unit) - 9);
                unit[0] = '\0';
            }
            if (!*unit) copy_str(unit, sizeof unit, "value");
            trim_copy(label, sizeof label, buf, (size_t)(colon - buf));
            trim_copy(value, sizeof value, colon + 1, (size_t)(end - colon - 1));
            table *t = NULL;
            for (int i = kv_first; i < ts->n; i++)
                if (ts->t[i].keyvalue && strcmp(ts->t[i].head[1], unit) == 0) t = &ts->t[i];
            if (!t) {
                if (!(t = tables_add(ts))) return;
                t->keyvalue = true;
                t->ncols = 3;
                copy_str(t->head[0], CELL, "case");
                copy_str(t->head[1], CELL, unit);
                copy_str(t->head[2], CELL, "target");
            }
            cell *r = table_add_row(t);
            if (!r) return;
            copy_str(r[0], CELL, label);
            copy_str(r[1], CELL, value);
            copy_str(r[2], CELL, kv_target);
            continue;
        }
        if (cur < 0) {
            table *t = tables_add(ts);
            if (!t) return;
            cur = ts->n - 1;
            kv_first = ts->n;
            t->ncols = n;
            memcpy(t->head, cells, sizeof(cell) * (size_t)n);
            continue;
        }
        if (is_separator(cells, n)) continue;
        table *t = &ts->t[cur];
        cell *r = table_add_row(t);
        if (!r) return;
        memcpy(r, cells, sizeof(cell) * (size_t)(n < t->ncols ? n : t->ncols));
    }
}

static row *rows_add(rows *t)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        row *p = realloc(t->r, nc * sizeof *p);
        if (!p) return NULL;
        t->r = p;
        t->cap = nc;
    }
    row *r = &t->r[t->n++];
    memset(r, 0, sizeof *r);
    return r;
}

/* Emits one table as rows: every measure of every case with its baseline side by side (a
 * baseline row of the table, or a baseline column such as "bare ns/dgram" beside
 * "server ns/dgram") and the ratio of the two. */
static void emit_table(const char *bench, const table *t, rows *out)
{
    int partner[MAXCOLS]; /* the baseline column paired with a column, or -1 */
    bool base_col[MAXCOLS] = {false}, ratio_col[MAXCOLS] = {false};
    cell measure[MAXCOLS];
    bool paired = false;
    int target_col = -1, met_col = -1, own_ratio_col = -1;
    for (int c = 1; c < t->ncols; c++) {
        partner[c] = -1;
        ratio_col[c] = is_ratio_column(t, c);
        copy_str(measure[c], CELL, t->head[c]);
        if (strcasecmp(t->head[c], "target") == 0) target_col = c;
        if (strcasecmp(t->head[c], "met") == 0) met_col = c;
        if (strncasecmp(t->head[c], "ratio", 5) == 0) own_ratio_col = c;
    }
    for (int c = 1; c < t->ncols; c++) {
        if (ratio_col[c] || !is_baseline(t->head[c])) continue;
        cell want;
        strip_owner(t->head[c], want, sizeof want);
        for (int k = 1; k < t->ncols; k++) {
            cell have;
            if (k == c || ratio_col[k] || is_baseline(t->head[k]) || partner[k] >= 0) continue;
            strip_owner(t->head[k], have, sizeof have);
            if (strcmp(have, want) != 0) continue;
            partner[k] = c;
            base_col[c] = true;
            copy_str(measure[k], CELL, have);
            paired = true;
            break;
        }
    }
    int base_row = -1, cases = 0;
    for (int r = 0; r < t->nrows; r++) {
        if (base_row < 0 && is_baseline(t->rows[r][0]))
            base_row = r;
        else
            cases++;
    }
    const char *h0 = t->head[0];
    /* "peers=10" says what the first column varies; "measurement=..." would say nothing. */
    static const char *const generic[] = {"case",    "name",        "bench",   "benchmark",
                                          "path",    "what",        "test",    "metric",
                                          "measure", "measurement", "scenario"};
    bool plain_case = !*h0;
    for (size_t g = 0; g < sizeof generic / sizeof generic[0]; g++)
        if (strcasecmp(h0, generic[g]) == 0) plain_case = true;
    for (int r = 0; r < t->nrows; r++) {
        if (r == base_row && cases > 0) continue; /* shown beside every other row */
        for (int c = 1; c < t->ncols; c++) {
            if (base_col[c] || !*t->rows[r][c] || c == target_col || c == met_col) continue;
            /* "server/bare" is recomputed from the pair; other ratios ("vs 10 peers") stay. */
            if (ratio_col[c] && paired &&
                (is_baseline(t->head[c]) || strncasecmp(t->head[c], "ratio", 5) == 0))
                continue; /* "host / raw", "server/bare", "ratio": the ratio column has it */
            row *o = rows_add(out);
            if (!o) return;
            copy_str(o->bench, sizeof o->bench, bench);
            if (!plain_case) {
                copy_str(o->kase, sizeof o->kase, h0);
                append_str(o->kase, sizeof o->kase, "=");
            }
            append_str(o->kase, sizeof o->kase, t->rows[r][0]);
            copy_str(o->measure, sizeof o->measure, measure[c]);
            copy_str(o->value, sizeof o->value, t->rows[r][c]);
            if (partner[c] >= 0)
                copy_str(o->baseline, sizeof o->baseline, t->rows[r][partner[c]]);
            else if (base_row >= 0 && r != base_row && !ratio_col[c])
                copy_str(o->baseline, sizeof o->baseline, t->rows[base_row][c]);
            double v = 0, b = 0, ratio = 0;
            bool have_v = parse_measure(o->value, &v);
            bool have_ratio = have_v && parse_measure(o->baseline, &b) && b != 0;
            if (have_ratio) {
                ratio = v / b;
                snprintf(o->ratio, sizeof o->ratio, "%.2fx", ratio);
            }
            copy_str(o->better, sizeof o->better,
                     higher_is_better(o->kase, o->measure, o->value) ? "higher" : "lower");
            /* The program's own ratio may be baseline / value ("higher is better for
             * sealnet" on a cost): then its target is turned to value / baseline. */
            bool inverted = false;
            double own;
            if (have_ratio && own_ratio_col >= 0 && c != own_ratio_col && ratio > 0 &&
                parse_measure(t->rows[r][own_ratio_col], &own) && own > 0)
                inverted = dabs(own * ratio - 1) < dabs(own - ratio);
            const char *target =
                target_col >= 0 && c != own_ratio_col ? t->rows[r][target_col] : "";
            if (!*target || !strcmp(target, "\xe2\x80\x93") || !strcmp(target, "-")) target = "";
            for (size_t k = 0; !*target && k < sizeof builtin_targets / sizeof builtin_targets[0];
                 k++)
                if (!strcmp(bench, builtin_targets[k].bench) &&
                    !strcmp(o->measure, builtin_targets[k].measure))
                    target = builtin_targets[k].target;
            if (*target && eval_target(target, v, have_v, ratio, have_ratio, inverted, o->target,
                                       sizeof o->target, o->met, sizeof o->met)) {
                /* evaluated here */
            } else if (*target) {
                copy_str(o->target, sizeof o->target, target);
                copy_str(o->met, sizeof o->met,
                         met_col >= 0 && *t->rows[r][met_col] ? t->rows[r][met_col] : "?");
            } else {
                copy_str(o->met, sizeof o->met, "no target");
            }
        }
    }
}

static void print_table(const rows *t, bool markdown)
{
    static const char *head[] = {"bench", "case",   "measure", "value", "baseline",
                                 "ratio", "better", "target",  "met"};
    enum { N = 9 };
    size_t w[N];
    for (int c = 0; c < N; c++)
        w[c] = strlen(head[c]);
    for (size_t i = 0; i < t->n; i++) {
        const row *r = &t->r[i];
        const char *cells[N] = {r->bench, r->kase,   r->measure, r->value, r->baseline,
                                r->ratio, r->better, r->target,  r->met};
        for (int c = 0; c < N; c++)
            if (strlen(cells[c]) > w[c]) w[c] = strlen(cells[c]);
    }
    if (markdown) {
        printf("| bench | case | measure | value | baseline | ratio | better | target | met |\n"
               "|---|---|---|---:|---:|---:|---|---|---|\n");
        for (size_t i = 0; i < t->n; i++) {
            const row *r = &t->r[i];
            printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r->bench, r->kase,
                   r->measure, r->value, r->baseline, r->ratio, r->better, r->target, r->met);
        }
        return;
    }
    for (int pass = -1; pass < (int)t->n; pass++) {
        const row *r = pass >= 0 ? &t->r[pass] : NULL;
        const char *cells[N] = {
            r ? r->bench : head[0],  r ? r->kase : head[1],     r ? r->measure : head[2],
            r ? r->value : head[3],  r ? r->baseline : head[4], r ? r->ratio : head[5],
            r ? r->better : head[6], r ? r->target : head[7],   r ? r->met : head[8]};
        for (int c = 0; c < N; c++) {
            if (c) fputs("  ", stdout);
            if (c == N - 1)
                fputs(cells[c], stdout);
            else if (c >= 3 && c <= 5)
                printf("%*s", (int)w[c], cells[c]);
            else
                printf("%-*s", (int)w[c], cells[c]);
        }
        putchar('\n');
    }
}

/* A program belongs to a kind when a '_'-separated word of its name says so: "tls_stream" is
 * tls, not dtls; DTLS also covers the cookie and host benchmarks, which run over DTLS. */
static bool of_kind(const char *name, const char *kind)
{
    if (strcmp(kind, "all") == 0) return true;
    char tmp[256];
    copy_str(tmp, sizeof tmp, name);
    char *save = NULL;
    for (char *w = strtok_r(tmp, "_-.", &save); w; w = strtok_r(NULL, "_-.", &save)) {
        if (strcmp(w, kind) == 0) return true;
        if (strcmp(kind, "dtls") == 0 && (strcmp(w, "cookie") == 0 || strcmp(w, "host") == 0))
            return true;
    }
    return false;
}

static bool selected(const char *name, char **kinds, int nkinds)
{
    if (nkinds == 0) return true;
    for (int i = 0; i < nkinds; i++)
        if (of_kind(name, kinds[i])) return true;
    return false;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {{"seconds", required_argument, NULL, 's'},
                                         {"markdown", no_argument, NULL, 'm'},
                                         {"list", no_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    long seconds = 3;
    bool markdown = false, list = false;
    char *kinds[8];
    int nkinds = 0, c;
    for (;;) {
        while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
            switch (c) {
            case 's':
                if (!cli_parse_int(optarg, 1, 3600, &seconds))
                    return cli_usage_error("--seconds wants 1..3600, not '%s'", optarg);
                break;
            case 'm':
                markdown = true;
                break;
            case 'l':
                list = true;
                break;
            case 'h':
                help();
                return CLI_OK;
            default:
                return CLI_USAGE;
            }
        }
        if (optind >= argc) break;
        const char *k = argv[optind++];
        /* Checked against the programs found below: any word of a program's name selects it
         * ("hmac" runs hmac_cookie). */
        if (nkinds == 8) return cli_usage_error("too many benchmark names");
        kinds[nkinds++] = (char *)k;
    }

    char dir[PATH_MAX];
    if (!find_dir(dir, sizeof dir)) {
        /* Without programs a name can only be checked against the kinds every build has. */
        static const char *const known[] = {"dtls", "tls", "udp", "host", "all", "hmac"};
        for (int k = 0; k < nkinds; k++) {
            bool ok = false;
            for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
                ok |= strcmp(kinds[k], known[i]) == 0;
            if (!ok)
                return cli_usage_error("unknown benchmark '%s' (dtls, tls, udp, host, hmac or all)",
                                       kinds[k]);
        }
    }
    if (!find_dir(dir, sizeof dir))
        return cli_fail("no benchmark directory found (looked in $SEALNET_BENCH_DIR, ../bench "
                        "beside sealnet and %s); build with -DSEALNET_BUILD_BENCH=ON",
                        SN_LIBEXEC_DIR);
    size_t count;
    char **names = list_programs(dir, &count);
    for (int k = 0; k < nkinds; k++) {
        bool any = false;
        for (size_t i = 0; i < count; i++)
            any |= of_kind(names[i], kinds[k]);
        if (!any) {
            char known[512] = "";
            for (size_t i = 0; i < count; i++)
                append_str(known, sizeof known, i ? ", " : ""),
                    append_str(known, sizeof known, names[i]);
            for (size_t i = 0; i < count; i++)
                free(names[i]);
            free(names);
            return cli_usage_error("unknown benchmark '%s': no program in %s has it in its name "
                                   "(programs: %s; or dtls, tls, udp, host, all)",
                                   kinds[k], dir, *known ? known : "none");
        }
    }
    size_t nsel = 0;
    for (size_t i = 0; i < count; i++)
        if (selected(names[i], kinds, nkinds)) nsel++;
    int rc = CLI_OK;
    if (list) {
        for (size_t i = 0; i < count; i++)
            if (selected(names[i], kinds, nkinds)) printf("%s/%s\n", dir, names[i]);
        goto out;
    }
    if (nsel == 0) {
        rc = cli_fail("no benchmark program matching '%s' in %s", nkinds ? kinds[0] : "all", dir);
        goto out;
    }
    cli_install_signals();
    rows t = {NULL, 0, 0};
    int index = 0, failed = 0;
    for (size_t i = 0; i < count && !cli_stopping(); i++) {
        if (!selected(names[i], kinds, nkinds)) continue;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        capture out = {NULL, 0, 0}, err = {NULL, 0, 0};
        int st = run_program(path, names[i], seconds, ++index, (int)nsel, &out, &err);
        if (st != 0) {
            failed++;
            fprintf(stderr, "sealnet bench: %s %s (status %d)%s%.400s\n", names[i],
                    st == 124 ? "overran its time and was stopped" : "failed", st,
                    err.len ? ": " : "", err.len ? err.data : "");
        } else if (out.data) {
            tables ts = {NULL, 0, 0};
            parse_output(out.data, &ts);
            size_t before = t.n;
            for (int k = 0; k < ts.n; k++)
                emit_table(names[i], &ts.t[k], &t);
            tables_free(&ts);
            if (t.n == before) fprintf(stderr, "sealnet bench: %s printed no table\n", names[i]);
        }
        free(out.data);
        free(err.data);
    }
    if (t.n) print_table(&t, markdown);
    free(t.r);
    if (failed) rc = cli_fail("%d of %zu benchmark programs failed", failed, nsel);
out:
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return rc;
}
