/* seedgen: writes the DTLS seed corpora from a real handshake.
 *
 *   seedgen DIR   (DIR is fuzz/corpus; writes the fuzz_dtls_server and fuzz_dtls_client seeds)
 *
 * A real sn_dtls_peer client talks to a real sn_dtls_server through a relay socket that records
 * every datagram in both directions: the cookie-less ClientHello, the HelloVerifyRequest, the
 * ClientHello with its cookie, the server's flight, the client's Finished flight, application
 * data and close_notify. The seeds are built from those, in the input format of each target. */
#include "fuzz_common.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* seedgen records a real exchange over loopback sockets (the targets themselves use none). */
static int fuzz_udp_socket(const char *ip, int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int fuzz_local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &l) != 0) return 0;
    return ntohs(a.sin_port);
}

static bool fuzz_send_to(int fd, int port, const void *d, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sendto(fd, d, len, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)len;
}

static ssize_t fuzz_recv(int fd, void *buf, size_t cap)
{
    return recv(fd, buf, cap, MSG_DONTWAIT);
}

static bool fuzz_wait(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
}

enum { MAX_REC = 64 };
typedef struct rec {
    uint8_t d[2048];
    size_t len;
} rec;

static rec c2s[MAX_REC], s2c[MAX_REC];
static int nc2s, ns2c;

static void record(rec *list, int *n, const uint8_t *d, size_t len)
{
    if (*n < MAX_REC && len <= sizeof list[0].d) {
        memcpy(list[*n].d, d, len);
        list[(*n)++].len = len;
    }
}

/* Writes ctl followed by the given datagrams (2-byte length each). */
static void write_seed(const char *dir, const char *name, uint8_t ctl, const rec *const *d, int n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputc(ctl, f);
    for (int i = 0; i < n; i++) {
        fputc((int)(d[i]->len >> 8), f);
        fputc((int)(d[i]->len & 0xff), f);
        fwrite(d[i]->d, 1, d[i]->len, f);
    }
    fclose(f);
    printf("wrote %s\n", path);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seedgen CORPUS_DIR\n");
        return 2;
    }
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL);
    sn_tls_options *sopts = sn_tls_options_server(key, cert);
    sn_tls_options *copts = sn_tls_options_client_unsafe(NULL);
    sn_udp_server *udp = sn_udp_server_new();
    sn_dtls_server *dtls = sn_dtls_server_new();
    if (!sopts || !copts || sn_udp_server_listen(udp, 0, "127.0.0.1") != SN_OK ||
        sn_dtls_server_setup(dtls, sopts) != SN_OK) {
        fprintf(stderr, "seedgen: %s\n", sn_last_error_message());
        return 1;
    }
    int server_port = sn_udp_server_get_local_port(udp);
    int relay_c = fuzz_udp_socket("127.0.0.1", 0); /* the client talks to this one */
    int relay_s = fuzz_udp_socket("127.0.0.1", 0); /* and this one talks to the server */
    sn_udp_peer *u = sn_udp_peer_new();
    sn_udp_peer_connect_to_host(u, "127.0.0.1", fuzz_local_port(relay_c));
    int client_port = sn_udp_peer_get_local_port(u);
    sn_dtls_peer *client = sn_dtls_peer_new();
    if (sn_dtls_peer_connect_to_peer(client, u, "localhost", copts) != SN_OK) {
        fprintf(stderr, "seedgen: %s\n", sn_last_error_message());
        return 1;
    }
    sn_dtls_peer *speer = NULL;
    bool sent = false, closed = false;
    uint64_t end = sn_dtls_now_ms() + 5000;
    while (sn_dtls_now_ms() < end && !closed) {
        uint8_t buf[2048];
        ssize_t n;
        while ((n = fuzz_recv(relay_c, buf, sizeof buf)) >= 0) {
            record(c2s, &nc2s, buf, (size_t)n);
            fuzz_send_to(relay_s, server_port, buf, (size_t)n);
        }
        while ((n = fuzz_recv(relay_s, buf, sizeof buf)) >= 0) {
            record(s2c, &ns2c, buf, (size_t)n);
            fuzz_send_to(relay_c, client_port, buf, (size_t)n);
        }
        sn_udp_server_poll(udp);
        while (sn_udp_server_is_connection_available(udp)) {
            sn_dtls_peer *p =
                sn_dtls_server_take_connection(dtls, sn_udp_server_take_connection(udp));
            if (sn_dtls_peer_get_status(p) == SN_DTLS_STATUS_HANDSHAKING && !speer)
                speer = p;
            else
                sn_dtls_peer_free(p);
        }
        if (speer) {
            sn_dtls_peer_poll(speer);
            size_t len;
            while (sn_dtls_peer_get_packet(speer, buf, sizeof buf, &len) == SN_OK)
                sn_dtls_peer_put_packet(speer, "Hello DTLS client", 17);
        }
        sn_dtls_peer_poll(client);
        if (sn_dtls_peer_get_status(client) == SN_DTLS_STATUS_CONNECTED && !sent) {
            sn_dtls_peer_put_packet(client, "The answer is... 42!", 20);
            sent = true;
        }
        size_t len;
        if (sent && sn_dtls_peer_get_packet(client, buf, sizeof buf, &len) == SN_OK) {
            sn_dtls_peer_disconnect_from_peer(client); /* close_notify: recorded too */
            closed = true;
        }
        fuzz_wait(relay_c, 1);
    }
    /* Forward the close_notify. */
    fuzz_wait(relay_c, 50);
    uint8_t buf[2048];
    ssize_t n;
    while ((n = fuzz_recv(relay_c, buf, sizeof buf)) >= 0)
        record(c2s, &nc2s, buf, (size_t)n);
    if (!closed || nc2s < 4 || ns2c < 3) {
        fprintf(stderr, "seedgen: handshake did not complete (%d/%d datagrams)\n", nc2s, ns2c);
        return 1;
    }
    printf("captured %d client datagrams, %d server datagrams\n", nc2s, ns2c);

    char dir[1024];
    snprintf(dir, sizeof dir, "%s/fuzz_dtls_server", argv[1]);
    mkdir(dir, 0755);
    const rec *v[MAX_REC + 1];
    /* c2s[0]: ClientHello without cookie; c2s[1]: with cookie; then the client's flights. */
    v[0] = &c2s[0];
    write_seed(dir, "clienthello_nocookie", 0x00, v, 1);
    v[0] = &c2s[1];
    write_seed(dir, "clienthello_stale_cookie", 0x00, v, 1);
    v[0] = &c2s[0];
    write_seed(dir, "clienthello_spliced", 0x01, v, 1);
    for (int i = 2; i < nc2s; i++)
        v[i - 1] = &c2s[i];
    write_seed(dir, "handshake_after_cookie", 0x01, v, nc2s - 1);
    write_seed(dir, "handshake_after_cookie_small_mtu", 0x09, v, nc2s - 1);
    v[0] = &c2s[0], v[1] = &c2s[0], v[2] = &c2s[1], v[3] = &c2s[0];
    write_seed(dir, "hellos_from_four_sources", 0x06, v, 4);

    snprintf(dir, sizeof dir, "%s/fuzz_dtls_client", argv[1]);
    mkdir(dir, 0755);
    for (int i = 0; i < ns2c; i++)
        v[i] = &s2c[i];
    write_seed(dir, "server_flights", 0x04, v, ns2c);
    write_seed(dir, "server_flights_small_mtu", 0x06, v, ns2c);
    write_seed(dir, "hello_verify_request", 0x00, v, 1);
    write_seed(dir, "server_flights_no_cookie", 0x04, v + 1, ns2c - 1);
    write_seed(dir, "server_flights_verified", 0x05, v, ns2c);

    sn_dtls_peer_free(client);
    sn_dtls_peer_free(speer);
    sn_dtls_server_free(dtls);
    sn_udp_server_free(udp);
    sn_tls_options_free(sopts);
    sn_tls_options_free(copts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    close(relay_c);
    close(relay_s);
    return 0;
}
