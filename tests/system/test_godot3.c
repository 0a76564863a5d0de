/* Interop with a real Godot 3 (Debian's `godot3-server`, 3.2.3 on bookworm, headless), both ways.
 *
 * The test writes a Godot project (project.godot + GDScript files) into a temp dir and runs
 * `godot3-server --path DIR -s SCRIPT -- ARGS...` as a child, bounded in time; ports are chosen at
 * run time and passed after `--`. The sealnet side is the library in this process (fx_server /
 * fx_client_connect: sn_udp_server + sn_dtls_server + sn_dtls_peer).
 *  - Godot's PacketPeerDTLS client (Godot 3 API: connect_to_peer(udp, validate_certs,
 *    for_hostname, valid_certificate)) against a sealnet DTLS server, verification on (trusting
 *    the server's certificate, hostname checked) and off, P-256 and RSA-2048; then a client that
 *    must refuse us (untrusted certificate, wrong name) to prove verification really is on.
 *  - A sealnet client against Godot's DTLSServer (setup(key, cert, chain)), verification on and
 *    off, and the two refusals (wrong name: ERROR_HOSTNAME_MISMATCH; untrusted: ERROR).
 *  - Key and certificate made by Godot 3's Crypto (PKCS#1 RSA key, CN only, no extensions) used
 *    on both sides.
 * Each exchange sends a text and a 1000+ byte binary packet each way and checks them byte by
 * byte on both sides. Headless notes: Godot needs a writable HOME (user://), prints locale errors
 * under LANG=C and tries file logging unless project.godot turns it off; print() output is
 * flushed per line, so the test reads it as it comes. Exits 77 when godot3-server is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtls_fixture.h"

#define GODOT        "godot3-server"
#define HANDSHAKE_MS 20000 /* generous: the machine is shared with other builds */
#define DATA_MS      10000
#define EXIT_MS      15000
#define PATTERN_C2S  1000 /* Godot -> sealnet: byte i is i % 251 */
#define PATTERN_S2C  1100 /* sealnet -> Godot: byte i is 255 - i % 256 */

/* --- the Godot project ----------------------------------------------------------------------- */

/* File logging off: otherwise Godot tries to create user://logs and prints an error. */
static const char project_godot[] = "config_version=4\n"
                                    "\n"
                                    "[application]\n"
                                    "\n"
                                    "config/name=\"sealnet-godot3-interop\"\n"
                                    "\n"
                                    "[logging]\n"
                                    "\n"
                                    "file_logging/enable_file_logging=false\n";

/* User arguments: Godot 3.2 returns the whole command line, `--` included; 4.x has
 * get_cmdline_user_args(). */
#define GD_USER_ARGS                                                                               \
    "func user_args():\n"                                                                          \
    "    if OS.has_method(\"get_cmdline_user_args\"):\n"                                           \
    "        return OS.call(\"get_cmdline_user_args\")\n"                                          \
    "    var out = []\n"                                                                           \
    "    var seen = false\n"                                                                       \
    "    for s in OS.get_cmdline_args():\n"                                                        \
    "        if seen:\n"                                                                           \
    "            out.append(s)\n"                                                                  \
    "        elif s == \"--\":\n"                                                                  \
    "            seen = true\n"                                                                    \
    "    return out\n"                                                                             \
    "\n"                                                                                           \
    "func pattern(n, down):\n"                                                                     \
    "    var b = PoolByteArray()\n"                                                                \
    "    b.resize(n)\n"                                                                            \
    "    for i in range(n):\n"                                                                     \
    "        b[i] = 255 - i % 256 if down else i % 251\n"                                          \
    "    return b\n"                                                                               \
    "\n"

/* Client: ARGS = port, "verify"|"noverify", hostname ("-": none), trusted cert ("-": none),
 * nonce. Sends "hello from godot3 NONCE" and the up pattern once connected; expects "reply from
 * sealnet NONCE" and the down pattern. Exit 0 when both arrived intact, 2 on a DTLS error status
 * (printed), 1 on timeout. */
static const char client_gd[] =
    "extends SceneTree\n"
    "\n" GD_USER_ARGS "func _init():\n"
    "    var a = user_args()\n"
    "    var cert = null\n"
    "    if a[3] != \"-\":\n"
    "        cert = X509Certificate.new()\n"
    "        if cert.load(a[3]) != OK:\n"
    "            print(\"GODOT cannot load \", a[3])\n"
    "            quit(4)\n"
    "            return\n"
    "    var host = \"\" if a[2] == \"-\" else a[2]\n"
    "    var udp = PacketPeerUDP.new()\n"
    "    var err = udp.connect_to_host(\"127.0.0.1\", int(a[0]))\n"
    "    if err != OK:\n"
    "        print(\"GODOT udp connect failed \", err)\n"
    "        quit(4)\n"
    "        return\n"
    "    var dtls = PacketPeerDTLS.new()\n"
    "    err = dtls.connect_to_peer(udp, a[1] == \"verify\", host, cert)\n"
    "    if err != OK:\n"
    "        print(\"GODOT status \", dtls.get_status(), \" (connect_to_peer: \", err, \")\")\n"
    "        quit(2)\n"
    "        return\n"
    "    var want_text = \"reply from sealnet \" + a[4]\n"
    "    var text_ok = false\n"
    "    var pattern_ok = false\n"
    "    var sent = false\n"
    "    var t0 = OS.get_ticks_msec()\n"
    "    while OS.get_ticks_msec() - t0 < 20000:\n"
    "        dtls.poll()\n"
    "        var st = dtls.get_status()\n"
    "        if st != PacketPeerDTLS.STATUS_HANDSHAKING and st != "
    "PacketPeerDTLS.STATUS_CONNECTED:\n"
    "            print(\"GODOT status \", st)\n"
    "            quit(2)\n"
    "            return\n"
    "        if st == PacketPeerDTLS.STATUS_CONNECTED:\n"
    "            if not sent:\n"
    "                print(\"GODOT connected after \", OS.get_ticks_msec() - t0, \" ms\")\n"
    "                dtls.put_packet((\"hello from godot3 \" + a[4]).to_utf8())\n"
    "                dtls.put_packet(pattern(1000, false))\n"
    "                sent = true\n"
    "            while dtls.get_available_packet_count() > 0:\n"
    "                var p = dtls.get_packet()\n"
    "                if p.size() > 0 and p[0] == 255:\n"
    "                    pattern_ok = p == pattern(p.size(), true)\n"
    "                    print(\"GODOT pattern \", \"ok\" if pattern_ok else \"BAD\")\n"
    "                else:\n"
    "                    var s = p.get_string_from_utf8()\n"
    "                    text_ok = s == want_text\n"
    "                    print(\"GODOT text \", \"ok\" if text_ok else \"BAD\", \": \", s)\n"
    "            if text_ok and pattern_ok:\n"
    "                print(\"GODOT done\")\n"
    "                dtls.disconnect_from_peer()\n"
    "                quit(0)\n"
    "                return\n"
    "        OS.delay_msec(5)\n"
    "    print(\"GODOT timeout\")\n"
    "    quit(1)\n";

/* Server: ARGS = port, key, certificate. Listens on 127.0.0.1:port (prints "GODOT listening" or
 * "GODOT listen failed" so the test can retry on another port), answers every packet with
 * "godot3 echo: " + the packet, prints every status change and packet; stops after 60 s. */
static const char server_gd[] =
    "extends SceneTree\n"
    "\n" GD_USER_ARGS "func _init():\n"
    "    var a = user_args()\n"
    "    var key = CryptoKey.new()\n"
    "    var cert = X509Certificate.new()\n"
    "    if key.load(a[1]) != OK or cert.load(a[2]) != OK:\n"
    "        print(\"GODOT cannot load the key or the certificate\")\n"
    "        quit(4)\n"
    "        return\n"
    "    var udp = UDPServer.new()\n"
    "    var err = udp.listen(int(a[0]), \"127.0.0.1\")\n"
    "    if err != OK:\n"
    "        print(\"GODOT listen failed \", err)\n"
    "        quit(3)\n"
    "        return\n"
    "    var dtls = DTLSServer.new()\n"
    "    err = dtls.setup(key, cert)\n"
    "    if err != OK:\n"
    "        print(\"GODOT setup failed \", err)\n"
    "        quit(4)\n"
    "        return\n"
    "    print(\"GODOT listening \", a[0])\n"
    "    var peers = []\n"
    "    var t0 = OS.get_ticks_msec()\n"
    "    while OS.get_ticks_msec() - t0 < 60000:\n"
    "        udp.poll()\n"
    "        while udp.is_connection_available():\n"
    "            var p = dtls.take_connection(udp.take_connection())\n"
    "            if p.get_status() == PacketPeerDTLS.STATUS_HANDSHAKING:\n"
    "                peers.append(p)\n"
    "        for p in peers:\n"
    "            var before = p.get_status()\n"
    "            p.poll()\n"
    "            var st = p.get_status()\n"
    "            if st != before:\n"
    "                print(\"GODOT peer status \", st)\n"
    "            if st != PacketPeerDTLS.STATUS_CONNECTED:\n"
    "                continue\n"
    "            while p.get_available_packet_count() > 0:\n"
    "                var data = p.get_packet()\n"
    "                if data.size() == 1000:\n"
    "                    print(\"GODOT got pattern \", \"ok\" if data == pattern(1000, false) else "
    "\"BAD\")\n"
    "                else:\n"
    "                    print(\"GODOT got text: \", data.get_string_from_utf8())\n"
    "                var reply = \"godot3 echo: \".to_utf8()\n"
    "                reply.append_array(data)\n"
    "                p.put_packet(reply)\n"
    "        OS.delay_msec(5)\n"
    "    quit(0)\n";

/* Keygen: ARGS = key path, certificate path. Godot 3's own RSA-2048 key and self-signed
 * certificate (CN=localhost, no extensions; the key is saved as PKCS#1). */
static const char keygen_gd[] = "extends SceneTree\n"
                                "\n" GD_USER_ARGS "func _init():\n"
                                "    var a = user_args()\n"
                                "    var crypto = Crypto.new()\n"
                                "    var key = crypto.generate_rsa(2048)\n"
                                "    var cert = crypto.generate_self_signed_certificate(key, "
                                "\"CN=localhost,O=sealnet test,C=IT\")\n"
                                "    if key.save(a[0]) != OK or cert.save(a[1]) != OK:\n"
                                "        print(\"GODOT save failed\")\n"
                                "        quit(4)\n"
                                "        return\n"
                                "    print(\"GODOT generated\")\n"
                                "    quit(0)\n";

/* --- fixtures -------------------------------------------------------------------------------- */

typedef struct cert_set {
    char *key, *crt;
    sn_tls_options *server;
    sn_x509_cert *trusted;
    const char *label;
} cert_set;

static char *tmp, *proj;
static cert_set ec, rsa, other, godot_made, sealnet_ec, sealnet_rsa;

static int load_set(cert_set *c, const char *label)
{
    c->label = label;
    c->server = fx_server_options(c->key, c->crt);
    c->trusted = fx_load_cert(c->crt);
    return c->server && c->trusted ? 0 : -1;
}

static int make_set(const char *kind, cert_set *c, const char *label)
{
    char dirname[64];
    snprintf(dirname, sizeof dirname, "certs-%s", label);
    char *dir = sn_test_path(tmp, dirname);
    int rc = sn_test_sh("mkdir -p '%s'", dir) == 0 && fx_make_cert(dir, kind, &c->key, &c->crt)
                 ? load_set(c, label)
                 : -1;
    free(dir);
    return rc;
}

/* Key and certificate made and saved by sealnet itself (sn_crypto_generate_* and
 * sn_crypto_generate_self_signed_certificate: CN=localhost, also as a DNS subjectAltName,
 * basicConstraints CA:FALSE), for Godot to load with CryptoKey.load / X509Certificate.load. */
static int make_sealnet_set(bool use_rsa, cert_set *c, const char *label)
{
    char *dir = sn_test_path(tmp, use_rsa ? "certs-sealnet-rsa" : "certs-sealnet-ec");
    if (sn_test_sh("mkdir -p '%s'", dir) != 0) {
        free(dir);
        return -1;
    }
    c->key = sn_test_path(dir, "sealnet.key");
    c->crt = sn_test_path(dir, "sealnet.crt");
    free(dir);
    sn_crypto_key *key = use_rsa ? sn_crypto_generate_rsa(2048) : sn_crypto_generate_ec("P-256");
    sn_x509_cert *crt = key ? sn_crypto_generate_self_signed_certificate(
                                  key, "CN=localhost,O=sealnet test", NULL, NULL)
                            : NULL;
    int rc = crt && sn_crypto_key_save(key, c->key, false) == SN_OK &&
                     sn_x509_cert_save(crt, c->crt) == SN_OK
                 ? load_set(c, label)
                 : -1;
    if (rc != 0) fprintf(stderr, "sealnet-made %s: %s\n", label, sn_last_error_message());
    sn_x509_cert_free(crt);
    sn_crypto_key_free(key);
    return rc;
}

static bool write_project_file(const char *name, const char *text)
{
    char *path = sn_test_path(proj, name);
    bool ok = sn_test_write_file(path, text, strlen(text));
    free(path);
    return ok;
}

static int group_setup(void **state)
{
    (void)state;
    tmp = sn_test_tmpdir();
    if (!tmp) return -1;
    proj = sn_test_path(tmp, "project");
    char *home = sn_test_path(tmp, "home");
    /* Godot writes user:// under $HOME; a temp one keeps the real home clean. LANG=C makes it
     * print locale errors. */
    bool ok = sn_test_sh("mkdir -p '%s' '%s'", proj, home) == 0 && setenv("HOME", home, 1) == 0 &&
              setenv("LANG", "en_US.UTF-8", 1) == 0;
    free(home);
    if (!ok || !write_project_file("project.godot", project_godot) ||
        !write_project_file("client.gd", client_gd) ||
        !write_project_file("server.gd", server_gd) || !write_project_file("keygen.gd", keygen_gd))
        return -1;
    if (make_set("ec", &ec, "P-256") != 0 || make_set("rsa", &rsa, "RSA-2048") != 0 ||
        make_set("ec", &other, "other P-256") != 0 ||
        make_sealnet_set(false, &sealnet_ec, "sealnet-made P-256") != 0 ||
        make_sealnet_set(true, &sealnet_rsa, "sealnet-made RSA-2048") != 0)
        return -1;
    return 0;
}

static void free_set(cert_set *c)
{
    free(c->key);
    free(c->crt);
    sn_tls_options_free(c->server);
    sn_x509_cert_free(c->trusted);
    memset(c, 0, sizeof *c);
}

static int group_teardown(void **state)
{
    (void)state;
    free_set(&ec);
    free_set(&rsa);
    free_set(&other);
    free_set(&godot_made);
    free_set(&sealnet_ec);
    free_set(&sealnet_rsa);
    sn_test_rmtree(tmp);
    free(tmp);
    free(proj);
    return 0;
}

/* --- helpers --------------------------------------------------------------------------------- */

static bool has_output(sn_test_proc *p, const char *needle)
{
    sn_test_proc_drain(p);
    return strstr(sn_test_proc_output(p), needle) != NULL;
}

static void dump_output(sn_test_proc *p, const char *what)
{
    sn_test_proc_drain(p);
    print_message("--- %s output ---\n%s\n--- end ---\n", what, sn_test_proc_output(p));
}

/* godot3-server --path PROJECT -s SCRIPT -- ARGS... */
static sn_test_proc *godot_spawn(const char *script, const char *const *args)
{
    const char *argv[16] = {GODOT, "--path", proj, "-s", script, "--"};
    int n = 6;
    for (int i = 0; args[i]; i++) {
        assert_true(n < 15);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    sn_test_proc *p = sn_test_spawn(argv);
    assert_non_null(p);
    return p;
}

/* Steps the world until the child exits; its exit code (fails the test after EXIT_MS). */
static int wait_exit_stepping(fx_world *w, sn_test_proc *p, const char *what)
{
    uint64_t end = sn_test_now_ms() + EXIT_MS;
    int rc;
    while ((rc = sn_test_proc_wait_exit(p, 0)) < 0 && sn_test_now_ms() < end)
        fx_world_step(w, 10);
    if (rc < 0) {
        dump_output(p, what);
        fail_msg("%s did not exit within %d ms", what, EXIT_MS);
    }
    return rc;
}

static void fill_pattern(uint8_t *b, size_t n, bool down)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(down ? 255 - i % 256 : i % 251);
}

static void make_nonce(char *out, size_t cap)
{
    uint32_t r;
    assert_int_equal(sn_crypto_generate_random_bytes(&r, sizeof r), SN_OK);
    snprintf(out, cap, "%08x", (unsigned)r);
}

/* --- Godot client, sealnet server ------------------------------------------------------------ */

/* The Godot client connects to our server with `set`'s certificate; trusted_crt NULL means no
 * valid_certificate (Godot then uses its CA bundle, which cannot contain ours). */
static void godot_client_run(const cert_set *set, bool validate, const char *hostname,
                             const char *trusted_crt, bool expect_connected,
                             const sn_dtls_settings *settings)
{
    fx_server srv;
    assert_true(fx_server_start(&srv, set->server, settings));
    char port[16], nonce[16];
    snprintf(port, sizeof port, "%d", srv.port);
    make_nonce(nonce, sizeof nonce);
    const char *args[] = {port,
                          validate ? "verify" : "noverify",
                          hostname ? hostname : "-",
                          trusted_crt ? trusted_crt : "-",
                          nonce,
                          NULL};
    uint64_t t0 = sn_test_now_ms();
    sn_test_proc *g = godot_spawn("client.gd", args);
    fx_world w;
    fx_world_init(&w, &srv, NULL);

    uint64_t end = sn_test_now_ms() + HANDSHAKE_MS;
    while (
        !(srv.npeers > 0 && sn_dtls_peer_get_status(srv.peers[0]) != SN_DTLS_STATUS_HANDSHAKING) &&
        sn_test_now_ms() < end && sn_test_proc_wait_exit(g, 0) < 0)
        fx_world_step(&w, 10);
    fx_world_run_for(&w, 50); /* let an alert that is on its way arrive */
    sn_dtls_peer *peer = srv.npeers > 0 ? srv.peers[0] : NULL;
    sn_dtls_status st = peer ? sn_dtls_peer_get_status(peer) : SN_DTLS_STATUS_DISCONNECTED;
    const char *mode = validate ? (trusted_crt ? "verify, trusting one certificate" : "verify")
                                : "no verification";

    if (!expect_connected) {
        /* Godot must refuse us, and its alert ends our peer with a message naming it. Godot 3
         * runs the handshake inside connect_to_peer until it would block: when our answers are
         * quick enough, the whole handshake, verification failure included, happens in that
         * first call, which then returns FAILED with STATUS_ERROR_HOSTNAME_MISMATCH (4) whatever
         * the cause; otherwise poll() ends in STATUS_ERROR (3), a name mismatch included. Both
         * are Godot's doing, so either counts. */
        int rc = wait_exit_stepping(&w, g, "godot client");
        bool refused = has_output(g, "GODOT status 3") || has_output(g, "GODOT status 4");
        if (rc != 2 || !refused) dump_output(g, "godot client");
        assert_int_equal(rc, 2);
        assert_true(refused);
        if (!peer || sn_dtls_peer_get_status(peer) == SN_DTLS_STATUS_HANDSHAKING)
            FX_ASSERT_WITHIN(&w,
                             srv.npeers > 0 && sn_dtls_peer_get_status(srv.peers[0]) !=
                                                   SN_DTLS_STATUS_HANDSHAKING,
                             DATA_MS);
        peer = srv.peers[0];
        st = sn_dtls_peer_get_status(peer);
        const char *msg = sn_dtls_peer_get_error_message(peer);
        print_message("Godot 3 client (%s, %s, name \"%s\") refused sealnet (Godot status %s): "
                      "server peer status %d \"%s\"\n",
                      set->label, mode, hostname ? hostname : "",
                      has_output(g, "GODOT status 4") ? "4, inside connect_to_peer" : "3", st, msg);
        assert_int_equal(st, SN_DTLS_STATUS_ERROR);
        assert_non_null(strstr(msg, "peer sent alert: "));
        sn_test_proc_stop(g);
        fx_server_stop(&srv);
        return;
    }

    if (st != SN_DTLS_STATUS_CONNECTED) {
        dump_output(g, "godot client");
        print_error("server peer: %s, status %d, %s\n", peer ? "present" : "none", st,
                    peer ? sn_dtls_peer_get_error_message(peer) : "");
    }
    assert_int_equal(st, SN_DTLS_STATUS_CONNECTED);
    uint64_t t_conn = sn_test_now_ms() - t0;
    assert_non_null(strstr(sn_dtls_peer_get_cipher(peer), "DTLSv1.2"));
    sn_dtls_server_stats stats;
    sn_dtls_server_get_stats(srv.dtls, &stats);
    assert_true(stats.cookies_sent >= 1); /* Godot went through the cookie round trip */

    /* Godot -> sealnet: the text, then the pattern, byte for byte. */
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(peer) >= 2, DATA_MS);
    uint8_t buf[2048], want[PATTERN_S2C];
    size_t len = 0;
    char text[64];
    snprintf(text, sizeof text, "hello from godot3 %s", nonce);
    assert_int_equal(sn_dtls_peer_get_packet(peer, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(buf, text, len);
    assert_int_equal(sn_dtls_peer_get_packet(peer, buf, sizeof buf, &len), SN_OK);
    fill_pattern(want, PATTERN_C2S, false);
    assert_int_equal(len, PATTERN_C2S);
    assert_memory_equal(buf, want, PATTERN_C2S);

    /* sealnet -> Godot: the script checks both and exits 0 only when both are intact. */
    snprintf(text, sizeof text, "reply from sealnet %s", nonce);
    assert_int_equal(sn_dtls_peer_put_packet(peer, text, strlen(text)), SN_OK);
    size_t s2c = PATTERN_S2C;
    if ((size_t)sn_dtls_peer_get_max_packet_size(peer) < s2c)
        s2c = (size_t)sn_dtls_peer_get_max_packet_size(peer);
    fill_pattern(want, s2c, true);
    assert_int_equal(sn_dtls_peer_put_packet(peer, want, s2c), SN_OK);
    int rc = wait_exit_stepping(&w, g, "godot client");
    if (rc != 0) dump_output(g, "godot client");
    assert_int_equal(rc, 0);
    assert_true(has_output(g, "GODOT text ok: reply from sealnet "));
    assert_true(has_output(g, "GODOT pattern ok"));
    /* Godot's disconnect_from_peer sends close_notify. */
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(peer) == SN_DTLS_STATUS_DISCONNECTED, DATA_MS);
    print_message("Godot 3 client -> sealnet server (%s, %s%s): connected %llu ms after spawn, "
                  "whole run %llu ms, %s\n",
                  set->label, mode, settings ? ", MTU 512" : "", (unsigned long long)t_conn,
                  (unsigned long long)(sn_test_now_ms() - t0), sn_dtls_peer_get_cipher(peer));
    sn_test_proc_stop(g);
    fx_server_stop(&srv);
}

static void test_godot_client_verify_ec(void **state)
{
    (void)state;
    godot_client_run(&ec, true, "localhost", ec.crt, true, NULL);
}

static void test_godot_client_verify_rsa(void **state)
{
    (void)state;
    godot_client_run(&rsa, true, "localhost", rsa.crt, true, NULL);
}

static void test_godot_client_noverify_ec(void **state)
{
    (void)state;
    godot_client_run(&ec, false, NULL, NULL, true, NULL);
}

static void test_godot_client_noverify_rsa(void **state)
{
    (void)state;
    godot_client_run(&rsa, false, "ignored.example", NULL, true, NULL);
}

/* A small MTU: our server splits its certificate flight into several handshake fragments and
 * Godot's mbedTLS reassembles them. */
static void test_godot_client_verify_rsa_mtu512(void **state)
{
    (void)state;
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.mtu = 512;
    godot_client_run(&rsa, true, "localhost", rsa.crt, true, &set);
}

/* Verification on really verifies: another trusted certificate, or another name, is refused. */
static void test_godot_client_verify_untrusted(void **state)
{
    (void)state;
    godot_client_run(&ec, true, "localhost", other.crt, false, NULL);
}

static void test_godot_client_verify_wrong_name(void **state)
{
    (void)state;
    godot_client_run(&ec, true, "not-localhost.example", ec.crt, false, NULL);
}

/* --- sealnet client, Godot server ------------------------------------------------------------ */

/* Starts server.gd on a port that was free a moment ago (Godot 3.2 cannot report the port of a
 * listen(0)), retrying when its listen fails. Godot's listen sets SO_REUSEADDR, so it only fails
 * on a port held by a socket without it; the window for any other overlap is a few ms. */
static sn_test_proc *godot_server_start(const cert_set *set, int *port)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        *port = fx_free_udp_port();
        assert_true(*port > 0);
        char ps[16];
        snprintf(ps, sizeof ps, "%d", *port);
        const char *args[] = {ps, set->key, set->crt, NULL};
        sn_test_proc *g = godot_spawn("server.gd", args);
        uint64_t end = sn_test_now_ms() + HANDSHAKE_MS;
        while (sn_test_now_ms() < end && !has_output(g, "GODOT listen") &&
               sn_test_proc_wait_exit(g, 0) < 0)
            sn_test_proc_wait_for(g, "GODOT listen", 100);
        if (has_output(g, "GODOT listening ")) return g;
        bool collision = has_output(g, "GODOT listen failed");
        dump_output(g, "godot server");
        sn_test_proc_stop(g);
        if (!collision) fail_msg("the Godot server did not start");
    }
    fail_msg("no free UDP port for the Godot server after 5 attempts");
    return NULL;
}

/* Our client against Godot's DTLSServer with `set`'s key and certificate. opts decide the
 * verification; want is the status our client must reach. */
static void sealnet_client_run(const cert_set *set, sn_tls_options *opts, const char *hostname,
                               sn_dtls_status want, const char *mode)
{
    int port;
    uint64_t t0 = sn_test_now_ms();
    sn_test_proc *g = godot_server_start(set, &port);
    uint64_t t_listen = sn_test_now_ms() - t0;
    assert_non_null(opts);
    sn_dtls_peer *cl = fx_client_connect(port, hostname, opts, NULL);
    sn_tls_options_free(opts);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, NULL, NULL);
    fx_world_add_client(&w, cl);
    uint64_t t1 = sn_test_now_ms();
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING, HANDSHAKE_MS);
    sn_dtls_status st = sn_dtls_peer_get_status(cl);
    const char *msg = sn_dtls_peer_get_error_message(cl);
    if (st != want) {
        dump_output(g, "godot server");
        print_error("client: status %d (want %d), %s\n", st, want, msg);
    }
    assert_int_equal(st, want);

    if (want != SN_DTLS_STATUS_CONNECTED) {
        print_message("sealnet client (%s, name \"%s\") refused Godot 3's server (%s): status %d "
                      "\"%s\"\n",
                      mode, hostname, set->label, st, msg);
        if (want == SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH) assert_non_null(strstr(msg, hostname));
        /* Our alert reaches Godot: its peer leaves HANDSHAKING for an error status. */
        FX_ASSERT_WITHIN(&w, has_output(g, "GODOT peer status 3"), DATA_MS);
        sn_dtls_peer_free(cl);
        sn_test_proc_stop(g);
        return;
    }
    uint64_t t_conn = sn_test_now_ms() - t1;

    char nonce[16], text[64];
    make_nonce(nonce, sizeof nonce);
    snprintf(text, sizeof text, "hello from sealnet %s", nonce);
    uint8_t pat[PATTERN_C2S];
    fill_pattern(pat, PATTERN_C2S, false);
    assert_int_equal(sn_dtls_peer_put_packet(cl, text, strlen(text)), SN_OK);
    assert_int_equal(sn_dtls_peer_put_packet(cl, pat, PATTERN_C2S), SN_OK);

    /* Godot printed what it decrypted and echoed both, prefixed. */
    static const char prefix[] = "godot3 echo: ";
    const size_t pl = sizeof prefix - 1;
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(cl) >= 2, DATA_MS);
    uint8_t buf[2048];
    size_t len = 0;
    assert_int_equal(sn_dtls_peer_get_packet(cl, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(len, pl + strlen(text));
    assert_memory_equal(buf, prefix, pl);
    assert_memory_equal(buf + pl, text, strlen(text));
    assert_int_equal(sn_dtls_peer_get_packet(cl, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(len, pl + PATTERN_C2S);
    assert_memory_equal(buf, prefix, pl);
    assert_memory_equal(buf + pl, pat, PATTERN_C2S);
    char line[96];
    snprintf(line, sizeof line, "GODOT got text: %s", text);
    assert_true(has_output(g, line));
    assert_true(has_output(g, "GODOT got pattern ok"));
    assert_true(has_output(g, "GODOT peer status 2"));
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_CONNECTED);
    print_message("sealnet client -> Godot 3 server (%s, %s): Godot listening %llu ms after "
                  "spawn, handshake %llu ms, whole run %llu ms, %s\n",
                  set->label, mode, (unsigned long long)t_listen, (unsigned long long)t_conn,
                  (unsigned long long)(sn_test_now_ms() - t0), sn_dtls_peer_get_cipher(cl));
    sn_dtls_peer_free(cl);
    sn_test_proc_stop(g);
}

static void test_sealnet_client_verify_ec(void **state)
{
    (void)state;
    sealnet_client_run(&ec, sn_tls_options_client(ec.trusted, NULL), "localhost",
                       SN_DTLS_STATUS_CONNECTED, "verify");
}

static void test_sealnet_client_verify_rsa(void **state)
{
    (void)state;
    sealnet_client_run(&rsa, sn_tls_options_client(rsa.trusted, NULL), "localhost",
                       SN_DTLS_STATUS_CONNECTED, "verify");
}

static void test_sealnet_client_noverify_ec(void **state)
{
    (void)state;
    sealnet_client_run(&ec, sn_tls_options_client_unsafe(NULL), "ignored.example",
                       SN_DTLS_STATUS_CONNECTED, "client_unsafe");
}

static void test_sealnet_client_noverify_rsa(void **state)
{
    (void)state;
    sealnet_client_run(&rsa, sn_tls_options_client_unsafe(NULL), "localhost",
                       SN_DTLS_STATUS_CONNECTED, "client_unsafe");
}

static void test_sealnet_client_verify_untrusted(void **state)
{
    (void)state;
    sealnet_client_run(&ec, sn_tls_options_client(other.trusted, NULL), "localhost",
                       SN_DTLS_STATUS_ERROR, "verify, trusting another certificate");
}

static void test_sealnet_client_verify_wrong_name(void **state)
{
    (void)state;
    sealnet_client_run(&ec, sn_tls_options_client(ec.trusted, NULL), "not-localhost.example",
                       SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH, "verify");
}

/* --- Godot's own key and certificate ---------------------------------------------------------- */

/* Made once by keygen.gd (Crypto.generate_rsa + generate_self_signed_certificate); the key file
 * is PKCS#1 and the certificate carries the name in its CN only. */
static void need_godot_made(void)
{
    if (godot_made.server) return;
    char *dir = sn_test_path(tmp, "certs-godot");
    assert_int_equal(sn_test_sh("mkdir -p '%s'", dir), 0);
    godot_made.key = sn_test_path(dir, "godot.key");
    godot_made.crt = sn_test_path(dir, "godot.crt");
    free(dir);
    const char *args[] = {godot_made.key, godot_made.crt, NULL};
    sn_test_proc *g = godot_spawn("keygen.gd", args);
    int rc = sn_test_proc_wait_exit(g, 60000);
    if (rc != 0) dump_output(g, "godot keygen");
    assert_int_equal(rc, 0);
    sn_test_proc_stop(g);
    size_t len = 0;
    char *pem = sn_test_read_file(godot_made.key, &len);
    assert_non_null(pem);
    assert_non_null(strstr(pem, "-----BEGIN RSA PRIVATE KEY-----"));
    free(pem);
    assert_int_equal(load_set(&godot_made, "Godot-made RSA-2048"), 0);
}

static void test_godot_client_verify_godot_made_cert(void **state)
{
    (void)state;
    need_godot_made();
    godot_client_run(&godot_made, true, "localhost", godot_made.crt, true, NULL);
}

static void test_sealnet_client_verify_godot_made_cert(void **state)
{
    (void)state;
    need_godot_made();
    sealnet_client_run(&godot_made, sn_tls_options_client(godot_made.trusted, NULL), "localhost",
                       SN_DTLS_STATUS_CONNECTED, "verify, name from the CN");
}

/* --- sealnet's own key and certificate files, loaded by Godot ----------------------------------
 */

static void test_godot_client_verify_sealnet_made_ec(void **state)
{
    (void)state;
    godot_client_run(&sealnet_ec, true, "localhost", sealnet_ec.crt, true, NULL);
}

static void test_sealnet_client_verify_sealnet_made_rsa(void **state)
{
    (void)state;
    /* Godot's DTLSServer loads sealnet's key file (PKCS#8 PEM) and certificate. */
    sealnet_client_run(&sealnet_rsa, sn_tls_options_client(sealnet_rsa.trusted, NULL), "localhost",
                       SN_DTLS_STATUS_CONNECTED, "verify");
}

static void test_sealnet_client_verify_sealnet_made_ec(void **state)
{
    (void)state;
    sealnet_client_run(&sealnet_ec, sn_tls_options_client(sealnet_ec.trusted, NULL), "localhost",
                       SN_DTLS_STATUS_CONNECTED, "verify");
}

int main(void)
{
    if (!sn_test_have(GODOT)) {
        printf("SKIP: %s not found in PATH (Debian package godot3-server; `scripts/deps.sh test` "
               "installs it)\n",
               GODOT);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_godot_client_verify_ec),
        cmocka_unit_test(test_godot_client_verify_rsa),
        cmocka_unit_test(test_godot_client_verify_rsa_mtu512),
        cmocka_unit_test(test_godot_client_noverify_ec),
        cmocka_unit_test(test_godot_client_noverify_rsa),
        cmocka_unit_test(test_godot_client_verify_untrusted),
        cmocka_unit_test(test_godot_client_verify_wrong_name),
        cmocka_unit_test(test_sealnet_client_verify_ec),
        cmocka_unit_test(test_sealnet_client_verify_rsa),
        cmocka_unit_test(test_sealnet_client_noverify_ec),
        cmocka_unit_test(test_sealnet_client_noverify_rsa),
        cmocka_unit_test(test_sealnet_client_verify_untrusted),
        cmocka_unit_test(test_sealnet_client_verify_wrong_name),
        cmocka_unit_test(test_godot_client_verify_godot_made_cert),
        cmocka_unit_test(test_sealnet_client_verify_godot_made_cert),
        cmocka_unit_test(test_godot_client_verify_sealnet_made_ec),
        cmocka_unit_test(test_sealnet_client_verify_sealnet_made_ec),
        cmocka_unit_test(test_sealnet_client_verify_sealnet_made_rsa),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
