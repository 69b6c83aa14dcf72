/* Connections (server/conn.c): address texts, and the idle record event
 * and hybrid park instead of the whole connection. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"

static qt_config cfg;                   /* no modules: a plain TCP connection */

/* A connection on fd (not used for I/O here) from ip:port to 127.0.0.1:80. */
static qt_conn *conn_from(int fd, const char *ip, int port, qt_listener *l)
{
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(port) };
    struct sockaddr_in *local = (struct sockaddr_in *)&l->addr;

    memset(l, 0, sizeof *l);
    local->sin_family = AF_INET;
    local->sin_port = htons(80);
    inet_pton(AF_INET, "127.0.0.1", &local->sin_addr);
    l->addrlen = sizeof *local;
    ck_assert_int_eq(inet_pton(AF_INET, ip, &peer.sin_addr), 1);
    return qt_conn_create(&cfg, fd, l, (struct sockaddr *)&peer, sizeof peer);
}

START_TEST(test_ipv4_texts)
{
    static const char *const ips[] = {
        "0.0.0.0", "255.255.255.255", "10.1.99.100", "127.0.0.1", "1.22.133.4",
    };
    qt_listener l;

    for (size_t i = 0; i < sizeof ips / sizeof *ips; i++) {
        qt_conn *c = conn_from(-1, ips[i], 40000 + (int)i, &l);

        ck_assert_str_eq(c->peer_ip, ips[i]);
        ck_assert_int_eq(c->peer_port, 40000 + (int)i);
        ck_assert_str_eq(c->local_ip, "127.0.0.1");
        ck_assert_int_eq(c->local_port, 80);
        qt_pool_destroy(c->pool);
    }
}
END_TEST

START_TEST(test_release_and_resume_keep_what_matters)
{
    qt_listener l;
    qt_conn *c = conn_from(7, "192.168.10.200", 51234, &l);
    qt_conn_idle saved;

    c->requests = 5;
    ck_assert(qt_conn_release_idle(c, &saved));
    ck_assert_int_eq(saved.fd, 7);
    c = qt_conn_resume(&cfg, &saved);
    ck_assert_int_eq(c->fd, 7);
    ck_assert_ptr_eq(c->listener, &l);
    ck_assert_ptr_eq(c->transport, &qt_tcp_transport);
    ck_assert_uint_eq(c->requests, 5);
    ck_assert(c->keep_alive);
    ck_assert_str_eq(c->peer_ip, "192.168.10.200");
    ck_assert_int_eq(c->peer_port, 51234);
    ck_assert_str_eq(c->local_ip, "127.0.0.1");
    ck_assert_int_eq(c->local_port, 80);
    ck_assert_ptr_null(c->rpool);
    qt_pool_destroy(c->pool);
}
END_TEST

/* Whatever hangs on the connection must survive: then it is kept whole. */
START_TEST(test_release_refused_while_something_hangs_on)
{
    qt_listener l;
    qt_conn *c = conn_from(7, "127.0.0.1", 1000, &l);
    qt_conn_idle saved;
    int dummy;

    qt_palloc(c->pool, 8);              /* a module's per-connection state */
    ck_assert(!qt_conn_release_idle(c, &saved));
    qt_pool_destroy(c->pool);

    c = conn_from(7, "127.0.0.1", 1000, &l);
    c->transport_data = &dummy;         /* a transport's (TLS) session */
    ck_assert(!qt_conn_release_idle(c, &saved));
    c->transport_data = NULL;
    qt_buf_reserve(&c->in, 16);         /* buffered input */
    ck_assert(!qt_conn_release_idle(c, &saved));
    qt_buf_free(&c->in);
    ck_assert(qt_conn_release_idle(c, &saved));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_ipv4_texts);
    tcase_add_test(tc, test_release_and_resume_keep_what_matters);
    tcase_add_test(tc, test_release_refused_while_something_hangs_on);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
