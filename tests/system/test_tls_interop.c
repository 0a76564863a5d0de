/* sn_tls_stream against other TLS stacks, both directions:
 *  - the seed scenario: a Node.js tls.createServer greets with "Hello from the server!\n"; our
 *    examples/tls_client prints it, answers "ack" (the Node server logs it), and reconnects
 *    after the server closes;
 *  - `openssl s_server` (TLS 1.2 and 1.3) with our client stream, `openssl s_client` (TLS 1.2
 *    and 1.3) with our server stream, data both ways and a close_notify each way;
 *  - our examples/tls_server with Node's tls.connect as client (TLS 1.2 and 1.3, two clients at
 *    once).
 * Certificates come from the openssl command. A missing tool skips its cases with a message
 * (exit code 77 when everything was skipped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdint.h>

#include "core.h"
#include "test_tls_util.h"

static int ran;

static bool need(const char *tool)
{
    if (certs && sn_test_have(tool)) {
        ran++;
        return true;
    }
    print_message("SKIP: %s not found\n", certs ? tool : "openssl");
    return false;
}

/* Waits for needle in the process output while polling the streams (either may be NULL). */
static bool wait_for(sn_test_proc *p, const char *needle, sn_tls_stream *a, sn_tls_stream *b,
                     int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    while (sn_test_now_ms() < end) {
        if (strstr(sn_test_proc_output(p), needle)) return true;
        if (a) sn_tls_stream_poll(a);
        if (b) sn_tls_stream_poll(b);
        sn_test_sleep_ms(2);
    }
    fprintf(stderr, "did not see '%s' in:\n%s\n", needle, sn_test_proc_output(p));
    return false;
}

/* The number after the last ':' on the line that starts with prefix ("ACCEPT 0.0.0.0:4711"). */
static int port_after(sn_test_proc *p, const char *prefix)
{
    const char *line = strstr(sn_test_proc_output(p), prefix);
    if (!line) return 0;
    const char *eol = strchr(line, '\n');
    const char *colon = NULL;
    for (const char *c = line; *c && c != eol; c++)
        if (*c == ':' || *c == ' ') colon = c;
    return colon ? atoi(colon + 1) : 0;
}

static char *write_script(const char *name, const char *text)
{
    char *path = sn_test_path(certs->dir, name);
    assert_true(sn_test_write_file(path, text, strlen(text)));
    return path;
}

static char *example(const char *name)
{
    size_t n = strlen(sn_test_build_dir()) + strlen(name) + 16;
    char *path = malloc(n);
    snprintf(path, n, "%s/examples/%s", sn_test_build_dir(), name);
    return path;
}

/* Reads from s until want bytes arrived (polling it) or the timeout passes. */
static size_t read_some(sn_tls_stream *s, char *buf, size_t cap, const char *until, int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    size_t got = 0;
    buf[0] = '\0';
    while (sn_test_now_ms() < end && !strstr(buf, until) && got + 1 < cap) {
        sn_tls_stream_poll(s);
        size_t n = 0;
        if (sn_tls_stream_get_partial_data(s, buf + got, cap - 1 - got, &n) != SN_OK) break;
        got += n;
        buf[got] = '\0';
        if (!n) sn_test_sleep_ms(2);
    }
    return got;
}

/* --- the seed scenario: Node server, our example client -------------------------------------- */

static const char node_server_js[] =
    "const tls = require('tls'), fs = require('fs');\n"
    "let n = 0;\n"
    "const server = tls.createServer({key: fs.readFileSync(process.argv[2]),\n"
    "                                 cert: fs.readFileSync(process.argv[3])}, (socket) => {\n"
    "  const id = ++n;\n"
    "  console.log(`connection ${id} ${socket.getProtocol()}`);\n"
    "  socket.write('Hello from the server!\\n');\n"
    "  socket.on('data', (d) => {\n"
    "    console.log(`received ${id}: ${d}`);\n"
    "    socket.end(); /* close_notify, then FIN */\n"
    "  });\n"
    "  socket.on('error', (e) => console.log(`socket error ${id}: ${e.message}`));\n"
    "});\n"
    "server.listen(0, '127.0.0.1', () => console.log(`PORT ${server.address().port}`));\n";

static void node_server_with_example_client(void **state)
{
    (void)state;
    if (!need("node")) return;
    char *js = write_script("server.js", node_server_js);
    const char *nargv[] = {"node", js, certs->key_path, certs->cert_path, NULL};
    sn_test_proc *node = sn_test_spawn(nargv);
    assert_non_null(node);
    assert_true(sn_test_proc_wait_for(node, "PORT ", 10000));
    char port[16];
    snprintf(port, sizeof port, "%d", port_after(node, "PORT"));
    char *client_path = example("tls_client");
    const char *cargv[] = {client_path, "127.0.0.1", port,        "--ca", certs->cert_path,
                           "--name",    "localhost", "--retries", "1",    NULL};
    sn_test_proc *client = sn_test_spawn(cargv);
    assert_non_null(client);
    assert_true(sn_test_proc_wait_for(client, "Connected to host.", 5000));
    assert_true(sn_test_proc_wait_for(client, "Received: Hello from the server!", 5000));
    assert_true(sn_test_proc_wait_for(node, "received 1: ack", 5000));
    /* Node ends the connection with close_notify: a quiet disconnect, then a reconnect 3 s
     * later, which goes through the same exchange; then the retries are used up. */
    assert_true(
        sn_test_proc_wait_for(client, "Disconnected: the server closed the connection", 5000));
    assert_true(sn_test_proc_wait_for(client, "Reconnecting in 3 s", 1000));
    assert_true(sn_test_proc_wait_for(node, "received 2: ack", 8000));
    assert_int_equal(sn_test_proc_wait_exit(client, 5000), 0);
    const char *out = sn_test_proc_output(client);
    assert_non_null(strstr(strstr(out, "Connected to host.") + 1, "Connected to host."));
    assert_null(strstr(sn_test_proc_output(node), "socket error"));
    sn_test_proc_stop(client);
    sn_test_proc_stop(node);
    free(client_path);
    free(js);
}

/* The example client against the Node server with the wrong name: hostname mismatch. */
static void node_server_wrong_name(void **state)
{
    (void)state;
    if (!need("node")) return;
    char *js = write_script("server.js", node_server_js);
    const char *nargv[] = {"node", js, certs->key_path, certs->cert_path, NULL};
    sn_test_proc *node = sn_test_spawn(nargv);
    assert_true(sn_test_proc_wait_for(node, "PORT ", 10000));
    char port[16];
    snprintf(port, sizeof port, "%d", port_after(node, "PORT"));
    char *client_path = example("tls_client");
    const char *cargv[] = {client_path, "127.0.0.1",   port,        "--ca", certs->cert_path,
                           "--name",    "example.com", "--retries", "0",    NULL};
    sn_test_proc *client = sn_test_spawn(cargv);
    assert_int_equal(sn_test_proc_wait_exit(client, 5000), 1);
    assert_non_null(strstr(sn_test_proc_output(client), "Error (hostname mismatch)"));
    assert_null(strstr(sn_test_proc_output(client), "Connected to host."));
    sn_test_proc_stop(client);
    sn_test_proc_stop(node);
    free(client_path);
    free(js);
}

/* --- openssl s_server with our client stream ------------------------------------------------- */

static void s_server_case(const char *version_flag, const char *want_protocol)
{
    const char *argv[] = {"openssl",        "s_server",   "-4",   "-accept",       "0",
                          "-naccept",       "1",          "-key", certs->key_path, "-cert",
                          certs->cert_path, version_flag, NULL};
    sn_test_proc *srv = sn_test_spawn(argv);
    assert_non_null(srv);
    assert_true(sn_test_proc_wait_for(srv, "ACCEPT", 10000));
    int port = port_after(srv, "ACCEPT");
    assert_true(port > 0);
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    assert_int_equal(sn_tcp_peer_connect_to_host(tcp, "127.0.0.1", port), SN_OK);
    sn_tls_stream *c = sn_tls_stream_new();
    assert_int_equal(sn_tls_stream_connect_to_stream(c, tcp, "localhost", certs->client), SN_OK);
    tls_pump_handshake(c, NULL, 5000);
    if (strcmp(want_protocol, "TLSv1.3") == 0 && !tls_backend_has_tls13()) {
        /* A TLS 1.2-only backend against a TLS 1.3-only server: a clean, named failure. */
        assert_int_equal(sn_tls_stream_get_status(c), SN_TLS_STATUS_ERROR);
        print_message("TLS 1.3-only server: %s\n", sn_tls_stream_get_error_message(c));
        assert_true(strlen(sn_tls_stream_get_error_message(c)) > 0);
        sn_tls_stream_free(c);
        sn_test_proc_stop(srv);
        return;
    }
    assert_int_equal(sn_tls_stream_get_status(c), SN_TLS_STATUS_CONNECTED);
    assert_non_null(strstr(sn_tls_stream_get_protocol_description(c), want_protocol));
    assert_int_equal(sn_tls_stream_put_data(c, "hello from sealnet\n", 19), SN_OK);
    assert_true(wait_for(srv, "hello from sealnet", c, NULL, 5000));
    assert_true(sn_test_proc_write(srv, "hello from openssl\n", 19));
    char buf[256];
    read_some(c, buf, sizeof buf, "\n", 5000);
    assert_string_equal(buf, "hello from openssl\n");
    /* Our close_notify: s_server sees a clean shutdown. */
    sn_tls_stream_disconnect_from_stream(c);
    assert_true(wait_for(srv, "DONE", NULL, NULL, 5000));
    assert_int_equal(sn_test_proc_wait_exit(srv, 5000), 0);
    sn_tls_stream_free(c);
    sn_test_proc_stop(srv);
}

static void openssl_s_server_tls12(void **state)
{
    (void)state;
    if (need("openssl")) s_server_case("-tls1_2", "TLSv1.2");
}

static void openssl_s_server_tls13(void **state)
{
    (void)state;
    if (need("openssl")) s_server_case("-tls1_3", "TLSv1.3");
}

/* --- openssl s_client with our server stream ------------------------------------------------- */

static void s_client_case(const char *version_flag, const char *want_protocol)
{
    sn_tcp_server *srv = sn_tcp_server_new();
    assert_int_equal(sn_tcp_server_listen(srv, 0, "127.0.0.1"), SN_OK);
    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", sn_tcp_server_get_local_port(srv));
    const char *argv[] = {
        "openssl",    "s_client",         "-connect",       connect,
        version_flag, "-CAfile",          certs->cert_path, "-servername",
        "localhost",  "-verify_hostname", "localhost",      "-verify_return_error",
        NULL};
    sn_test_proc *cli = sn_test_spawn(argv);
    assert_non_null(cli);
    sn_tcp_peer *tcp = tls_take(srv);
    assert_non_null(tcp);
    sn_tls_stream *s = sn_tls_stream_new();
    assert_int_equal(sn_tls_stream_accept_stream(s, tcp, certs->server), SN_OK);
    tls_pump_handshake(s, NULL, 5000);
    if (strcmp(want_protocol, "TLSv1.3") == 0 && !tls_backend_has_tls13()) {
        assert_int_equal(sn_tls_stream_get_status(s), SN_TLS_STATUS_ERROR);
        print_message("TLS 1.3-only client: %s\n", sn_tls_stream_get_error_message(s));
        assert_true(strlen(sn_tls_stream_get_error_message(s)) > 0);
        sn_tls_stream_free(s);
        sn_test_proc_stop(cli);
        sn_tcp_server_free(srv);
        return;
    }
    assert_int_equal(sn_tls_stream_get_status(s), SN_TLS_STATUS_CONNECTED);
    assert_non_null(strstr(sn_tls_stream_get_protocol_description(s), want_protocol));
    assert_true(wait_for(cli, "Verify return code: 0 (ok)", s, NULL, 5000));
    assert_int_equal(sn_tls_stream_put_data(s, "Hello from the server!\n", 23), SN_OK);
    assert_true(wait_for(cli, "Hello from the server!", s, NULL, 5000));
    assert_true(sn_test_proc_write(cli, "ping from s_client\n", 19));
    char buf[256];
    read_some(s, buf, sizeof buf, "\n", 5000);
    assert_string_equal(buf, "ping from s_client\n");
    /* s_client closes on end of input: close_notify, so a quiet DISCONNECTED here. */
    sn_test_proc_close_stdin(cli);
    uint64_t end = sn_test_now_ms() + 5000;
    while (sn_tls_stream_get_status(s) == SN_TLS_STATUS_CONNECTED && sn_test_now_ms() < end) {
        sn_tls_stream_poll(s);
        sn_test_sleep_ms(2);
    }
    assert_int_equal(sn_tls_stream_get_status(s), SN_TLS_STATUS_DISCONNECTED);
    assert_string_equal(sn_tls_stream_get_error_message(s), "");
    sn_tls_stream_free(s);
    sn_test_proc_stop(cli);
    sn_tcp_server_free(srv);
}

static void openssl_s_client_tls12(void **state)
{
    (void)state;
    if (need("openssl")) s_client_case("-tls1_2", "TLSv1.2");
}

static void openssl_s_client_tls13(void **state)
{
    (void)state;
    if (need("openssl")) s_client_case("-tls1_3", "TLSv1.3");
}

/* --- our example server with Node clients ---------------------------------------------------- */

static const char node_client_js[] =
    "const tls = require('tls'), fs = require('fs');\n"
    "const [port, ca, version, count] = process.argv.slice(2);\n"
    "let greeted = 0; const sockets = [];\n"
    "for (let i = 1; i <= Number(count); i++) {\n"
    "  const s = tls.connect({host: '127.0.0.1', port: Number(port), ca: fs.readFileSync(ca),\n"
    "                         servername: 'localhost', minVersion: version, maxVersion: version},\n"
    "    () => {\n"
    "      console.log(`connected ${i} ${s.getProtocol()} authorized=${s.authorized}`);\n"
    "      s.write(`hi from node ${i}\\n`);\n"
    "    });\n"
    "  sockets.push(s);\n"
    "  s.on('data', (d) => {\n"
    "    console.log(`data ${i}: ${d}`);\n"
    "    /* Close only once every client has been greeted: they are all served at once. */\n"
    "    if (++greeted === Number(count)) sockets.forEach((x) => x.end());\n"
    "  });\n"
    "  s.on('error', (e) => { console.log(`error ${i}: ${e.message}`); process.exitCode = 1; });\n"
    "}\n";

static void example_server_case(const char *version, const char *want_protocol)
{
    char *js = write_script("client.js", node_client_js);
    char *server_path = example("tls_server");
    const char *sargv[] = {server_path, "--port",         "0",         "--key", certs->key_path,
                           "--cert",    certs->cert_path, "--seconds", "30",    NULL};
    sn_test_proc *srv = sn_test_spawn(sargv);
    assert_non_null(srv);
    assert_true(sn_test_proc_wait_for(srv, "Listening on port", 5000));
    char port[16];
    snprintf(port, sizeof port, "%d", port_after(srv, "Listening on port"));
    const char *nargv[] = {"node", js, port, certs->cert_path, version, "2", NULL};
    sn_test_proc *node = sn_test_spawn(nargv);
    assert_non_null(node);
    if (strcmp(want_protocol, "TLSv1.3") == 0 && !tls_backend_has_tls13()) {
        /* Node insists on TLS 1.3; the server cannot offer it: both clients fail, cleanly. */
        assert_int_not_equal(sn_test_proc_wait_exit(node, 10000), 0);
        assert_non_null(strstr(sn_test_proc_output(node), "error 1:"));
        assert_int_equal(sn_test_proc_stop(srv), 0);
        sn_test_proc_stop(node);
        free(server_path);
        free(js);
        return;
    }
    assert_int_equal(sn_test_proc_wait_exit(node, 10000), 0);
    const char *nout = sn_test_proc_output(node);
    char want[64];
    snprintf(want, sizeof want, "connected 1 %s authorized=true", want_protocol);
    assert_non_null(strstr(nout, want));
    assert_non_null(strstr(nout, "data 1: Hello from the server!"));
    assert_non_null(strstr(nout, "data 2: Hello from the server!"));
    assert_true(sn_test_proc_wait_for(srv, "Client 2 disconnected", 5000));
    const char *sout = sn_test_proc_output(srv);
    assert_non_null(strstr(sout, "hi from node 1"));
    assert_non_null(strstr(sout, "hi from node 2"));
    assert_non_null(strstr(sout, want_protocol));
    /* Both were connected at the same time: the second connected before the first left. */
    const char *c2 = strstr(sout, "Client 2 connected");
    const char *d1 = strstr(sout, "Client 1 disconnected");
    assert_non_null(c2);
    assert_non_null(d1);
    assert_true(c2 < d1);
    /* Node's end() sends close_notify: a quiet disconnect, no truncation. */
    assert_null(strstr(sout, "truncated"));
    assert_int_equal(sn_test_proc_stop(srv), 0);
    sn_test_proc_stop(node);
    free(server_path);
    free(js);
}

static void example_server_node_clients_tls12(void **state)
{
    (void)state;
    if (need("node")) example_server_case("TLSv1.2", "TLSv1.2");
}

static void example_server_node_clients_tls13(void **state)
{
    (void)state;
    if (need("node")) example_server_case("TLSv1.3", "TLSv1.3");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* writes to children that exited */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(node_server_with_example_client),
        cmocka_unit_test(node_server_wrong_name),
        cmocka_unit_test(openssl_s_server_tls12),
        cmocka_unit_test(openssl_s_server_tls13),
        cmocka_unit_test(openssl_s_client_tls12),
        cmocka_unit_test(openssl_s_client_tls13),
        cmocka_unit_test(example_server_node_clients_tls12),
        cmocka_unit_test(example_server_node_clients_tls13),
    };
    int failed = cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
    if (!failed && !ran) {
        fprintf(stderr, "SKIP: neither openssl nor node is available\n");
        return 77;
    }
    return failed;
}
