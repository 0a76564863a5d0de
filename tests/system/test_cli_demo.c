/* `make demo` runs build/examples/demo: it must finish on its own within seconds, exit 0, and
 * print the summary line only when every step was observed. argv[1] is the demo binary.
 * Also: the README's C code is exactly examples/readme_{server,client}.c, which run together. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *demo_bin;

static void demo_passes_every_step(void **state)
{
    (void)state;
    const char *argv[] = {demo_bin, NULL};
    uint64_t t0 = sn_test_now_ms();
    sn_test_proc *p = sn_test_spawn(argv);
    assert_non_null(p);
    int rc = sn_test_proc_wait_exit(p, 60000);
    sn_test_proc_drain(p);
    const char *out = sn_test_proc_output(p);
    uint64_t took = sn_test_now_ms() - t0;
    if (rc != 0 || !strstr(out, "demo: all 9 steps passed"))
        fail_msg("demo: rc %d after %llu ms, output:\n%s", rc, (unsigned long long)took, out);
    /* The transcript shows each step's evidence, as received. */
    static const char *evidence[] = {
        "DTLS listening on 127.0.0.1 udp port",
        "alice   connected: DTLSv1.2",
        "carol   -> server: \"The answer is... 42!\"",
        "server  -> bob: \"Hello DTLS client\"",
        "server  -> carol: \"broadcast at",
        "carol silent for 1.5 s: dropping it (idle timeout)",
        "carol   was disconnected by the server",
        "server  -> tls-cli: \"Hello from the server!\"",
        "tls-cli -> server: \"ack\"",
        "server  alice disconnected cleanly (close_notify)",
        "dave    connected through sn_host: DTLSv1.2",
        "host    sn_host_broadcast sent \"host broadcast at",
        "\" to 2 peers",
        "host    -> erin: \"host broadcast at",
        "host    dave dropped",
        "erin still connected",
    };
    for (size_t i = 0; i < sizeof evidence / sizeof evidence[0]; i++)
        if (!strstr(out, evidence[i])) fail_msg("missing \"%s\" in:\n%s", evidence[i], out);
    /* Only carol timed out: alice and bob disconnect themselves at the end. */
    assert_null(strstr(out, "alice silent for"));
    assert_null(strstr(out, "bob silent for"));
    assert_null(strstr(out, "erin dropped"));
    sn_test_proc_stop(p);
}

/* The README shows the files verbatim, so what readers copy is what is compiled and run here. */
static void readme_code_is_the_compiled_examples(void **state)
{
    (void)state;
    char *readme_path = sn_test_path(sn_test_source_dir(), "README.md");
    char *readme = sn_test_read_file(readme_path, NULL);
    assert_non_null(readme);
    static const char *files[] = {"examples/readme_server.c", "examples/readme_host_server.c",
                                  "examples/readme_client.c"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *path = sn_test_path(sn_test_source_dir(), files[i]);
        char *code = sn_test_read_file(path, NULL);
        assert_non_null(code);
        char *block = malloc(strlen(code) + 16);
        sprintf(block, "```c\n%s```\n", code);
        if (!strstr(readme, block)) fail_msg("README.md does not show %s verbatim", files[i]);
        free(block);
        free(code);
        free(path);
    }
    free(readme);
    free(readme_path);
}

/* The README's client against the README's servers (the classic loop and the host API). */
static void readme_client_gets_hello(const char *server_name)
{
    char *server = sn_test_path(sn_test_build_dir(), server_name);
    char *client = sn_test_path(sn_test_build_dir(), "examples/readme_client");
    const char *sargv[] = {server, "0", NULL};
    sn_test_proc *s = sn_test_spawn(sargv);
    assert_non_null(s);
    const char *needle = "listening on udp port ";
    if (!sn_test_proc_wait_for(s, needle, 20000) || !sn_test_proc_wait_for(s, "\n", 1000))
        fail_msg("%s printed:\n%s", server_name, sn_test_proc_output(s));
    char port[16];
    snprintf(port, sizeof port, "%d",
             atoi(strstr(sn_test_proc_output(s), needle) + strlen(needle)));
    for (int round = 0; round < 2; round++) { /* twice: the server keeps serving */
        const char *cargv[] = {client, port, NULL};
        sn_test_proc *c = sn_test_spawn(cargv);
        assert_non_null(c);
        int rc = sn_test_proc_wait_exit(c, 20000);
        const char *out = sn_test_proc_output(c);
        if (rc != 0 || strcmp(out, "Hello DTLS client\n") != 0)
            fail_msg("readme_client against %s: rc %d, output:\n%s", server_name, rc, out);
        sn_test_proc_stop(c);
    }
    sn_test_proc_stop(s);
    free(server);
    free(client);
}

static void readme_server_answers_readme_client(void **state)
{
    (void)state;
    readme_client_gets_hello("examples/readme_server");
}

static void readme_host_server_answers_readme_client(void **state)
{
    (void)state;
    readme_client_gets_hello("examples/readme_host_server");
}

int main(int argc, char **argv)
{
    static char path[4096];
    if (argc > 1)
        snprintf(path, sizeof path, "%s", argv[1]);
    else
        snprintf(path, sizeof path, "%s/examples/demo", sn_test_build_dir());
    demo_bin = path;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(demo_passes_every_step),
        cmocka_unit_test(readme_code_is_the_compiled_examples),
        cmocka_unit_test(readme_server_answers_readme_client),
        cmocka_unit_test(readme_host_server_answers_readme_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
