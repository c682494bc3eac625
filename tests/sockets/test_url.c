/* The URL parser and address helpers, including hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sprig/url.h"

static void assert_slice(sprig_str s, const char *want)
{
    if (want == NULL) {
        assert_null(s.ptr);
        return;
    }
    assert_non_null(s.ptr);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

static void test_url_unix_and_path_forms(void **state)
{
    (void)state;
    sprig_url u;
    assert_int_equal(sprig_url_parse("unix:/tmp/echo.sock", &u), SPRIG_STATUS_OK);
    assert_int_equal(u.scheme, SPRIG_URL_UNIX);
    assert_slice(u.path, "/tmp/echo.sock");
    assert_slice(u.host, NULL);
    assert_int_equal(sprig_url_parse("SERIAL:/dev/ttyACM0?baud=115200", &u), SPRIG_STATUS_OK);
    assert_int_equal(u.scheme, SPRIG_URL_SERIAL);
    assert_slice(u.path, "/dev/ttyACM0");
    assert_slice(u.query, "baud=115200");
    assert_int_equal(sprig_url_parse("mem:echo", &u), SPRIG_STATUS_OK);
    assert_int_equal(u.scheme, SPRIG_URL_MEM);
    assert_slice(u.path, "echo");
    assert_int_equal(sprig_url_parse("unix:relative/path", &u), SPRIG_STATUS_OK);
    assert_slice(u.path, "relative/path");
}

static void test_url_tcp_ipv4(void **state)
{
    (void)state;
    sprig_url u;
    assert_int_equal(sprig_url_parse("tcp://127.0.0.1:5000", &u), SPRIG_STATUS_OK);
    assert_int_equal(u.scheme, SPRIG_URL_TCP);
    assert_slice(u.host, "127.0.0.1");
    assert_true(u.has_port);
    assert_int_equal(u.port, 5000);
    assert_true(u.host_is_ip);
    assert_true(sprig_addr_is_ipv4(&u.addr));
    assert_int_equal(sprig_addr_ipv4(&u.addr), 0x7f000001);
    assert_int_equal(u.addr.port, 5000);
}

static void test_url_ipv6_brackets(void **state)
{
    (void)state;
    sprig_url u;
    static const uint8_t loopback[16] = {[15] = 1};
    assert_int_equal(sprig_url_parse("udp://[::1]:7", &u), SPRIG_STATUS_OK);
    assert_int_equal(u.scheme, SPRIG_URL_UDP);
    assert_slice(u.host, "::1");
    assert_true(u.host_is_ip);
    assert_memory_equal(u.addr.ip, loopback, 16);
    assert_int_equal(u.port, 7);
    assert_int_equal(sprig_url_parse("tls+tcp://[2001:db8::a:b]:443/x", &u), SPRIG_STATUS_OK);
    assert_int_equal(u.scheme, SPRIG_URL_TLS_TCP);
    static const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, [12] = 0, [13] = 0x0a, [15] = 0x0b};
    assert_memory_equal(u.addr.ip, want, 16);
    assert_slice(u.path, "/x");
    assert_int_equal(sprig_url_parse("tcp://[::ffff:10.0.0.1]:1", &u), SPRIG_STATUS_OK);
    assert_true(sprig_addr_is_ipv4(&u.addr));
    assert_int_equal(sprig_addr_ipv4(&u.addr), 0x0a000001);
}

static void test_url_hostname_and_unknown_scheme(void **state)
{
    (void)state;
    sprig_url u;
    assert_int_equal(sprig_url_parse("tcp://localhost:80", &u), SPRIG_STATUS_OK);
    assert_false(u.host_is_ip);
    assert_slice(u.host, "localhost");
    assert_int_equal(sprig_url_parse("tcp://example.org", &u), SPRIG_STATUS_OK);
    assert_false(u.has_port);
    assert_int_equal(sprig_url_parse("sprig://12:80", &u), SPRIG_STATUS_OK);
    assert_int_equal(u.scheme, SPRIG_URL_SPRIG);
    assert_slice(u.host, "12");
    assert_int_equal(sprig_url_parse("quic://h:1", &u), SPRIG_STATUS_OK);
    assert_int_equal(u.scheme, SPRIG_URL_OTHER);
    assert_true(sprig_url_scheme_is(&u, "QUIC"));
    assert_int_equal(sprig_url_parse("foo:bar", &u), SPRIG_STATUS_OK);
    assert_int_equal(u.scheme, SPRIG_URL_OTHER);
    assert_slice(u.path, "bar");
}

static void test_url_rejects_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        ":",
        "tcp",
        "tcp:",
        "unix:",
        "1tcp://h:1",
        "tcp:h:1",
        "tcp://",
        "tcp://:80",
        "tcp://h:",
        "tcp://h:65536",
        "tcp://h:123456",
        "tcp://h:-1",
        "tcp://h:8a",
        "tcp://[::1:80",
        "tcp://[::1]x:80",
        "tcp://[1:2:3:4:5:6:7:8:9]:1",
        "tcp://[1::2::3]:1",
        "tcp://[:1]:1",
        "tcp://[1:]:1",
        "tcp://[12345::]:1",
        "tcp://[]:1",
        "tcp://h h:1",
        "unix:/tmp/a b",
        "unix:/tmp/\x01",
        "tcp://h%41:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sprig_url u;
        if (sprig_url_parse(bad[i], &u) != SPRIG_STATUS_INVALID_ARGUMENT) {
            fail_msg("accepted malformed URL \"%s\"", bad[i]);
        }
    }
    sprig_url u;
    assert_int_equal(sprig_url_parse(NULL, &u), SPRIG_STATUS_INVALID_ARGUMENT);
}

static void test_url_ipv4_literals_strict(void **state)
{
    (void)state;
    sprig_addr a = {0};
    assert_int_equal(sprig_addr_parse_ip("1.2.3.4", 7, &a), SPRIG_STATUS_OK);
    assert_int_equal(sprig_addr_ipv4(&a), 0x01020304);
    assert_int_equal(sprig_addr_parse_ip("1.2.3.256", 9, &a), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_addr_parse_ip("1.2.3", 5, &a), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_addr_parse_ip("01.2.3.4", 8, &a), SPRIG_STATUS_INVALID_ARGUMENT);
    assert_int_equal(sprig_addr_parse_ip("1.2.3.4.5", 9, &a), SPRIG_STATUS_INVALID_ARGUMENT);
    /* host "1.2.3.256" is not an IP literal, but a legal host name form */
    sprig_url u;
    assert_int_equal(sprig_url_parse("tcp://1.2.3.256:1", &u), SPRIG_STATUS_OK);
    assert_false(u.host_is_ip);
}

static void test_url_addr_format_and_nodes(void **state)
{
    (void)state;
    char s[SPRIG_ADDR_STR_MAX];
    sprig_addr a;
    sprig_addr_from_ipv4(&a, 0xc0a80001, 8080);
    assert_int_equal(sprig_addr_format(&a, s, sizeof(s)), SPRIG_STATUS_OK);
    assert_string_equal(s, "192.168.0.1:8080");
    sprig_addr_from_node(&a, 12, 80);
    assert_int_equal(sprig_addr_format(&a, s, sizeof(s)), SPRIG_STATUS_OK);
    assert_string_equal(s, "[fd00:5350:5247::c]:80");
    uint16_t node = 0;
    assert_true(sprig_addr_is_node(&a, &node));
    assert_int_equal(node, 12);
    assert_false(sprig_addr_is_ipv4(&a));
    sprig_url u;
    assert_int_equal(sprig_url_parse("udp://[1:0:0:2:0:0:0:3]:9", &u), SPRIG_STATUS_OK);
    assert_int_equal(sprig_addr_format(&u.addr, s, sizeof(s)), SPRIG_STATUS_OK);
    assert_string_equal(s, "[1:0:0:2::3]:9");
    assert_int_equal(sprig_url_parse("udp://[::]:0", &u), SPRIG_STATUS_OK);
    assert_int_equal(sprig_addr_format(&u.addr, s, sizeof(s)), SPRIG_STATUS_OK);
    assert_string_equal(s, "[::]:0");
    sprig_addr b = u.addr;
    assert_true(sprig_addr_equal(&u.addr, &b));
    b.port = 1;
    assert_false(sprig_addr_equal(&u.addr, &b));
    assert_int_equal(sprig_addr_format(&a, s, 5), SPRIG_STATUS_RESOURCE_EXHAUSTED);
    assert_string_equal(s, "");
    char small[8];
    assert_int_equal(sprig_str_copy(u.host, small, sizeof(small)), SPRIG_STATUS_OK);
    assert_string_equal(small, "::");
    assert_int_equal(sprig_str_copy((sprig_str){"123456789", 9}, small, sizeof(small)),
                     SPRIG_STATUS_RESOURCE_EXHAUSTED);
}

static void test_url_node_forms(void **state)
{
    (void)state;
    sprig_url u;
    uint16_t node = 0;
    assert_int_equal(sprig_url_parse("sprig://12:80", &u), SPRIG_STATUS_OK);
    assert_true(sprig_url_node(&u, &node));
    assert_int_equal(node, 12);
    assert_int_equal(sprig_url_parse("sprig://0x0C:80", &u), SPRIG_STATUS_OK);
    assert_true(sprig_url_node(&u, &node));
    assert_int_equal(node, 12);
    assert_int_equal(sprig_url_parse("sprig://65535:1", &u), SPRIG_STATUS_OK);
    assert_true(sprig_url_node(&u, &node));
    assert_int_equal(node, 65535);
    assert_int_equal(sprig_url_parse("sprig://[fd00:5350:5247::c]:80", &u), SPRIG_STATUS_OK);
    assert_true(sprig_url_node(&u, &node));
    assert_int_equal(node, 12);
    static const char *const bad[] = {"sprig://65536:1",  "sprig://0x10000:1", "sprig://12a:1",
                                      "sprig://0x:1",     "sprig://[::1]:1",   "sprig://host:1",
                                      "sprig://1.2.3.4:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sprig_url_parse(bad[i], &u), SPRIG_STATUS_OK);
        if (sprig_url_node(&u, &node)) {
            fail_msg("%s named a node", bad[i]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_unix_and_path_forms),
        cmocka_unit_test(test_url_tcp_ipv4),
        cmocka_unit_test(test_url_ipv6_brackets),
        cmocka_unit_test(test_url_hostname_and_unknown_scheme),
        cmocka_unit_test(test_url_rejects_malformed),
        cmocka_unit_test(test_url_ipv4_literals_strict),
        cmocka_unit_test(test_url_addr_format_and_nodes),
        cmocka_unit_test(test_url_node_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
