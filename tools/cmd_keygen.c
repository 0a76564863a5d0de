/* sealnet keygen: a private key and a self-signed certificate, as PEM files. */
#include "cli.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void help(void)
{
    printf("usage: sealnet keygen [--rsa BITS | --ec CURVE] [--cn NAME] [--no-san] [--days N]\n"
           "                      --key FILE --cert FILE [--force]\n"
           "\n"
           "Generates a private key and a self-signed certificate (SHA-256, the CN also as a DNS\n"
           "subjectAltName) and writes both as PEM. The key file is created mode 0600.\n"
           "\n"
           "  --ec CURVE    EC key on P-256 (default) or P-384\n"
           "  --rsa BITS    RSA key of BITS bits (2048..16384) instead\n"
           "  --cn NAME     the certificate's common name and subjectAltName: a host name or an\n"
           "                IP address (default: localhost)\n"
           "  --no-san      allow a --cn that names no host (\"my game\"): the certificate then\n"
           "                has no subjectAltName and clients can trust it only by pinning its\n"
           "                fingerprint\n"
           "  --days N      validity from now, in days (default: 365)\n"
           "  --key FILE    where to write the private key (required)\n"
           "  --cert FILE   where to write the certificate (required)\n"
           "  --force       overwrite existing files\n"
           "\n"
           "Prints the certificate's SHA-256 fingerprint. Exit status: 0 written, 1 failure,\n"
           "2 bad arguments.\n");
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 || errno != ENOENT;
}

/* What the library turns into a subjectAltName: an IP address, or a DNS name (letters, digits,
 * '-', '_', dots between non-empty labels of at most 63, an optional leading "*."). */
static bool is_ip(const char *s)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

static bool host_name_or_ip(const char *s)
{
    if (is_ip(s)) return true;
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253) return false;
    if (s[0] == '*' && s[1] == '.') s += 2;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (!isalnum(c) && c != '-' && c != '_') return false;
        if (++label > 63) return false;
    }
    return label > 0;
}

/* "CN=<name>" with the characters the strict DN parser treats specially escaped. */
static bool make_subject(const char *cn, char *out, size_t cap)
{
    size_t n = 0;
    const char *prefix = "CN=";
    for (const char *p = prefix; *p; p++)
        out[n++] = *p;
    for (const char *p = cn; *p; p++) {
        if (n + 3 >= cap) return false;
        if (*p == ',' || *p == '=' || *p == '\\') out[n++] = '\\';
        out[n++] = *p;
    }
    out[n] = '\0';
    return true;
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"rsa", required_argument, NULL, 'r'}, {"ec", required_argument, NULL, 'e'},
        {"cn", required_argument, NULL, 'n'},  {"days", required_argument, NULL, 'd'},
        {"key", required_argument, NULL, 'k'}, {"cert", required_argument, NULL, 'c'},
        {"force", no_argument, NULL, 'f'},     {"no-san", no_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0}};
    long rsa_bits = 0, days = 365;
    const char *curve = NULL, *cn = "localhost", *key_path = NULL, *cert_path = NULL;
    bool force = false, no_san = false;
    int c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'r':
            if (!cli_parse_int(optarg, 2048, 16384, &rsa_bits))
                return cli_usage_error("--rsa wants a key size from 2048 to 16384 bits, not '%s'",
                                       optarg);
            break;
        case 'e':
            if (strcmp(optarg, "P-256") != 0 && strcmp(optarg, "P-384") != 0)
                return cli_usage_error("--ec wants P-256 or P-384, not '%s'", optarg);
            curve = optarg;
            break;
        case 'n':
            if (!*optarg) return cli_usage_error("--cn must not be empty");
            cn = optarg;
            break;
        case 'd':
            if (!cli_parse_int(optarg, 1, 36500, &days))
                return cli_usage_error("--days wants a number of days from 1 to 36500, not '%s'",
                                       optarg);
            break;
        case 'k':
            key_path = optarg;
            break;
        case 'c':
            cert_path = optarg;
            break;
        case 'f':
            force = true;
            break;
        case 'N':
            no_san = true;
            break;
        case 'h':
            help();
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (rsa_bits && curve) return cli_usage_error("--rsa and --ec exclude each other");
    if (!key_path || !cert_path) return cli_usage_error("--key FILE and --cert FILE are required");
    if (strcmp(key_path, cert_path) == 0)
        return cli_usage_error("--key and --cert must name different files");
    /* Clients check the name they connect to against the subjectAltName, which the CN becomes
     * only when it is a host name or an address: anything else would give a certificate no
     * client can verify by name, so it takes a deliberate --no-san. */
    bool names_host = host_name_or_ip(cn);
    if (!names_host && !no_san)
        return cli_usage_error(
            "--cn '%s' is not a host name or IP address, so it cannot be the certificate's "
            "subjectAltName and clients could not verify it by name; use a host name (e.g. --cn "
            "game.example), or add --no-san to make it anyway (clients then pin its fingerprint "
            "with --pin)",
            cn);
    char subject[512];
    if (!make_subject(cn, subject, sizeof subject)) return cli_usage_error("--cn is too long");

    if (!force) {
        if (exists(key_path)) return cli_fail("refusing to overwrite %s (use --force)", key_path);
        if (exists(cert_path)) return cli_fail("refusing to overwrite %s (use --force)", cert_path);
    }

    sn_crypto_key *key = rsa_bits ? sn_crypto_generate_rsa((int)rsa_bits)
                                  : sn_crypto_generate_ec(curve ? curve : "P-256");
    if (!key) return cli_fail("cannot generate the key: %s", sn_last_error_message());

    time_t now = time(NULL);
    time_t until = now + (time_t)days * 86400;
    struct tm a, b;
    char not_before[16], not_after[16];
    gmtime_r(&now, &a);
    gmtime_r(&until, &b);
    strftime(not_before, sizeof not_before, "%Y%m%d%H%M%S", &a);
    strftime(not_after, sizeof not_after, "%Y%m%d%H%M%S", &b);

    int rc = CLI_FAIL;
    sn_x509_cert *cert =
        sn_crypto_generate_self_signed_certificate(key, subject, not_before, not_after);
    if (!cert) {
        cli_fail("cannot generate the certificate: %s", sn_last_error_message());
        goto out;
    }
    if (sn_crypto_key_save(key, key_path, false) != SN_OK) {
        cli_fail("cannot write %s: %s", key_path, sn_last_error_message());
        goto out;
    }
    if (sn_x509_cert_save(cert, cert_path) != SN_OK) {
        cli_fail("cannot write %s: %s", cert_path, sn_last_error_message());
        goto out;
    }
    char *fp = sn_x509_cert_get_fingerprint_sha256(cert);
    char kind[32];
    if (rsa_bits)
        snprintf(kind, sizeof kind, "RSA %ld bits", rsa_bits);
    else
        snprintf(kind, sizeof kind, "EC %s", curve ? curve : "P-256");
    printf("key:         %s (%s)\n", key_path, kind);
    printf("certificate: %s (%s, valid %ld days)\n", cert_path, subject, days);
    if (names_host)
        printf("subjectAltName: %s:%s\n", is_ip(cn) ? "IP" : "DNS", cn);
    else
        printf("subjectAltName: none (--no-san): clients must pin the fingerprint below\n");
    if (fp) printf("SHA-256 fingerprint: %s\n", fp);
    sn_free(fp);
    rc = CLI_OK;
out:
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    return rc;
}
