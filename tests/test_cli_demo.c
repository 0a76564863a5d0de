/* `make demo` runs build/examples/demo: it must finish on its own within seconds, exit 0, and
 * print the summary line only when every step was observed. argv[1] is the demo binary. */
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
    if (rc != 0 || !strstr(out, "demo: all 8 steps passed"))
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
    };
    for (size_t i = 0; i < sizeof evidence / sizeof evidence[0]; i++)
        if (!strstr(out, evidence[i])) fail_msg("missing \"%s\" in:\n%s", evidence[i], out);
    /* Only carol timed out: alice and bob disconnect themselves at the end. */
    assert_null(strstr(out, "alice silent for"));
    assert_null(strstr(out, "bob silent for"));
    sn_test_proc_stop(p);
}

int main(int argc, char **argv)
{
    static char path[4096];
    if (argc > 1)
        snprintf(path, sizeof path, "%s", argv[1]);
    else
        snprintf(path, sizeof path, "%s/examples/demo", sn_test_build_dir());
    demo_bin = path;
    const struct CMUnitTest tests[] = {cmocka_unit_test(demo_passes_every_step)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
