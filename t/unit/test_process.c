/*
 * The process side: pid file (server/process.c), signals as flags, the
 * listening sockets and their hand-over on reload (server/listen.c), the
 * blocking wait every process MPM shares (mpm/mpm.c), the MPM tuning
 * directives (mpm/mpm_common.c) and the shared scoreboard.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "listen.h"
#include "mpm.h"
#include "mpm_common.h"
#include "pool.h"
#include "process.h"
#include "scoreboard.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char tmpdir[] = "/tmp/qt-test-process-XXXXXX";

static void make_tmpdir(void)
{
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[128];

    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    strcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX");
}

static void path_in_tmp(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

/* ----------------------------------------------------------- pid file */

static const struct {
    const char *name, *content;
    pid_t want;
} pid_rows[] = {
    { "pid and newline", "4242\n", 4242 },
    { "pid without newline", "4242", 4242 },
    { "empty file", "", -1 },
    { "letters", "httpd\n", -1 },
    { "trailing junk", "42x\n", -1 },
    { "negative", "-5\n", -1 },
    { "zero", "0\n", -1 },
    { "overflow", "99999999999999\n", -1 },
};

START_TEST(pidfile_read_rows)
{
    char path[256];
    FILE *f;

    path_in_tmp(path, sizeof path, "row.pid");
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(pid_rows[_i].content, f);
    fclose(f);
    ck_assert_msg(qt_pidfile_read(path) == pid_rows[_i].want, "row '%s'",
                  pid_rows[_i].name);
}
END_TEST

START_TEST(pidfile_round_trip)
{
    char path[256], err[256], cmd[300];

    path_in_tmp(path, sizeof path, "httpd.pid");
    ck_assert_int_eq(qt_pidfile_read(path), 0);           /* missing */
    ck_assert_int_eq(qt_pidfile_write(path, err, sizeof err), 0);
    ck_assert_int_eq(qt_pidfile_read(path), getpid());
    /* Overwriting a stale file works and leaves no temporary behind. */
    ck_assert_int_eq(qt_pidfile_write(path, err, sizeof err), 0);
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", tmpdir);
    ck_assert_int_eq(system(cmd), 256);                    /* grep found none */
    qt_pidfile_remove(path);
    ck_assert_int_eq(qt_pidfile_read(path), 0);
}
END_TEST

START_TEST(pidfile_unwritable)
{
    char path[256], err[256] = "";

    path_in_tmp(path, sizeof path, "no/such/dir/httpd.pid");
    ck_assert_int_eq(qt_pidfile_write(path, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "could not create pid file"));
}
END_TEST

/* ------------------------------------------------------------ signals */

START_TEST(signals_are_flags_stop_first)
{
    struct pollfd pfd;

    qt_signals_master(false);
    ck_assert_int_eq(qt_signal_take(), QT_SIG_NONE);
    raise(SIGUSR1);
    raise(SIGCHLD);
    raise(SIGTERM);
    pfd = (struct pollfd){ .fd = qt_signal_fd(), .events = POLLIN };
    ck_assert_int_eq(poll(&pfd, 1, 0), 1);                 /* the self-pipe woke */
    ck_assert_int_eq(qt_signal_take(), QT_SIG_STOP);
    ck_assert_int_eq(qt_signal_take(), QT_SIG_GRACEFUL);
    ck_assert_int_eq(qt_signal_take(), QT_SIG_CHILD);
    ck_assert_int_eq(qt_signal_take(), QT_SIG_NONE);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);                 /* drained */
    raise(SIGHUP);
    raise(SIGWINCH);
    ck_assert_int_eq(qt_signal_take(), QT_SIG_GRACEFUL_STOP);
    ck_assert_int_eq(qt_signal_take(), QT_SIG_RESTART);
}
END_TEST

/* A child that already installed its own USR1 handler keeps it. */
START_TEST(child_keeps_its_stop_handler)
{
    volatile sig_atomic_t *stop = qt_child_stop_flag();

    qt_signals_master(false);
    qt_child_signals(false);
    ck_assert_int_eq(*stop, 0);
    raise(SIGUSR1);
    ck_assert_int_eq(*stop, 1);
    ck_assert_int_eq(qt_signal_fd(), -1);                  /* master's pipe closed */
}
END_TEST

/* ------------------------------------------------------------- waiting */

static void nothing(int signo)
{
    (void)signo;
}

START_TEST(poll_wait_times_out)
{
    int fds[2];
    int64_t start = qt_now_ms();

    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(qt_poll_wait_fd(fds[0], POLLIN, start + 60), QT_TIMEOUT);
    ck_assert_int_ge(qt_now_ms() - start, 60);
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    ck_assert_int_eq(qt_poll_wait_fd(fds[0], POLLIN, qt_now_ms() + 1000), QT_OK);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

/* A signal in the middle does not cut the wait short. */
START_TEST(poll_wait_survives_eintr)
{
    struct sigaction sa = { .sa_handler = nothing };
    struct itimerval it = { .it_value = { 0, 20000 } };
    int fds[2];
    int64_t start;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    ck_assert_int_eq(pipe(fds), 0);
    start = qt_now_ms();
    setitimer(ITIMER_REAL, &it, NULL);
    ck_assert_int_eq(qt_poll_wait_fd(fds[0], POLLIN, start + 150), QT_TIMEOUT);
    ck_assert_int_ge(qt_now_ms() - start, 150);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

START_TEST(wait_without_mpm_falls_back)
{
    int64_t start = qt_now_ms();

    ck_assert_ptr_null(qt_active_mpm);
    qt_sleep_ms(30);
    ck_assert_int_ge(qt_now_ms() - start, 30);
}
END_TEST

/* ------------------------------------------------------------ listening */

static qt_listener *listener(qt_pool *p, const char *text)
{
    qt_listener *l = qt_pcalloc(p, sizeof *l);

    l->fd = -1;
    l->text = qt_pstrdup(p, text);
    l->protocol = "http";
    return l;
}

static qt_config *config_with(qt_pool *p, const char *a, const char *b)
{
    qt_config *cfg = qt_pcalloc(p, sizeof *cfg);

    cfg->pool = p;
    cfg->listen_backlog = 16;
    cfg->listeners = listener(p, a);
    if (b)
        cfg->listeners->next = listener(p, b);
    return cfg;
}

/* A free loopback port: bind to 0 and let it go. */
static int free_port(void)
{
    struct sockaddr_in in = { .sin_family = AF_INET };
    socklen_t len = sizeof in;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&in, sizeof in), 0);
    getsockname(fd, (struct sockaddr *)&in, &len);
    port = ntohs(in.sin_port);
    close(fd);
    return port;
}

START_TEST(listen_binds_nonblocking_cloexec)
{
    qt_pool *p = qt_pool_create(4096);
    char addr[64], err[256];
    qt_config *cfg;
    int fd;

    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    cfg = config_with(p, addr, NULL);
    ck_assert_int_eq(qt_listen_open(cfg, NULL, err, sizeof err), 0);
    fd = cfg->listeners->fd;
    ck_assert_int_ge(fd, 0);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    qt_listen_close(cfg);
    ck_assert_int_eq(cfg->listeners->fd, -1);
    qt_pool_destroy(p);
}
END_TEST

START_TEST(listen_reports_address_in_use)
{
    qt_pool *p = qt_pool_create(4096);
    char addr[64], err[256] = "", want[128];
    qt_config *first, *second;

    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    first = config_with(p, addr, NULL);
    second = config_with(p, addr, NULL);
    ck_assert_int_eq(qt_listen_open(first, NULL, err, sizeof err), 0);
    ck_assert_int_eq(qt_listen_open(second, NULL, err, sizeof err), -1);
    snprintf(want, sizeof want, "(98)Address already in use: could not bind to address %s", addr);
    ck_assert_str_eq(err, want);
    qt_listen_close(first);
    qt_pool_destroy(p);
}
END_TEST

/* Reload: the same address keeps its socket; a dropped one is closed. */
START_TEST(listen_reload_hands_over)
{
    qt_pool *p = qt_pool_create(4096);
    char a[64], b[64], c[64], err[256];
    qt_config *old, *cfg;
    int kept, dropped;

    snprintf(a, sizeof a, "127.0.0.1:%d", free_port());
    snprintf(b, sizeof b, "127.0.0.1:%d", free_port());
    snprintf(c, sizeof c, "127.0.0.1:%d", free_port());
    old = config_with(p, a, b);
    ck_assert_int_eq(qt_listen_open(old, NULL, err, sizeof err), 0);
    kept = old->listeners->fd;
    dropped = old->listeners->next->fd;
    cfg = config_with(p, c, a);
    ck_assert_int_eq(qt_listen_open(cfg, old, err, sizeof err), 0);
    ck_assert_int_eq(cfg->listeners->next->fd, kept);
    ck_assert_int_ge(cfg->listeners->fd, 0);
    ck_assert_int_eq(old->listeners->fd, -1);
    ck_assert_int_eq(old->listeners->next->fd, -1);
    ck_assert_int_eq(fcntl(dropped, F_GETFD), -1);         /* closed */
    qt_listen_close(cfg);
    qt_pool_destroy(p);
}
END_TEST

/* A reload whose new address cannot be bound leaves the old sockets alone. */
START_TEST(listen_failed_reload_keeps_old)
{
    qt_pool *p = qt_pool_create(4096);
    char a[64], b[64], err[256];
    qt_config *old, *blocker, *cfg;
    int fd;

    snprintf(a, sizeof a, "127.0.0.1:%d", free_port());
    snprintf(b, sizeof b, "127.0.0.1:%d", free_port());
    old = config_with(p, a, NULL);
    blocker = config_with(p, b, NULL);
    ck_assert_int_eq(qt_listen_open(old, NULL, err, sizeof err), 0);
    ck_assert_int_eq(qt_listen_open(blocker, NULL, err, sizeof err), 0);
    fd = old->listeners->fd;
    cfg = config_with(p, a, b);
    ck_assert_int_eq(qt_listen_open(cfg, old, err, sizeof err), -1);
    ck_assert_int_eq(old->listeners->fd, fd);
    ck_assert_int_ne(fcntl(fd, F_GETFD), -1);              /* still open */
    ck_assert_int_eq(cfg->listeners->fd, -1);
    qt_listen_close(old);
    qt_listen_close(blocker);
    qt_pool_destroy(p);
}
END_TEST

START_TEST(listen_ipv6_literal)
{
    qt_pool *p = qt_pool_create(4096);
    char addr[64], err[256];
    qt_config *cfg;
    int v6only = 0;
    socklen_t len = sizeof v6only;

    snprintf(addr, sizeof addr, "[::1]:%d", free_port());
    cfg = config_with(p, addr, NULL);
    if (qt_listen_open(cfg, NULL, err, sizeof err) < 0) {
        qt_pool_destroy(p);
        return;                    /* no IPv6 loopback in this sandbox */
    }
    getsockopt(cfg->listeners->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len);
    ck_assert_int_eq(v6only, 1);
    qt_listen_close(cfg);
    qt_pool_destroy(p);
}
END_TEST

/* ---------------------------------------------------- MPM directives */

static const struct {
    const char *directive, *arg;
    bool ok;
    size_t field;                  /* offset into qt_mpm_conf */
    int want;
} knob_rows[] = {
    { "StartServers", "7", true, offsetof(qt_mpm_conf, start_servers), 7 },
    { "startservers", "8", true, offsetof(qt_mpm_conf, start_servers), 8 },
    { "MaxRequestWorkers", "150", true, offsetof(qt_mpm_conf, max_request_workers), 150 },
    { "MaxClients", "50", true, offsetof(qt_mpm_conf, max_request_workers), 50 },
    { "MaxConnectionsPerChild", "0", true, offsetof(qt_mpm_conf, max_connections_per_child), 0 },
    { "MaxRequestsPerChild", "1000", true, offsetof(qt_mpm_conf, max_connections_per_child), 1000 },
    { "GracefulShutdownTimeout", "30", true, offsetof(qt_mpm_conf, graceful_shutdown_timeout), 30 },
    { "ServerLimit", "200001", false, 0, 0 },
    { "StartServers", "-1", false, 0, 0 },
    { "StartServers", "five", false, 0, 0 },
    { "StartServers", "5x", false, 0, 0 },
    { "StartServers", "", false, 0, 0 },
    { "MaxRequestWorkers", "0", false, 0, 0 },
};

START_TEST(mpm_directive_rows)
{
    qt_pool *p = qt_pool_create(1024);
    qt_mpm_conf conf = { .start_servers = 5 };
    char *argv[] = { (char *)knob_rows[_i].arg };
    qt_cmd cmd = { .srv_conf = &conf, .pool = p, .name = knob_rows[_i].directive };
    const char *msg = qt_mpm_conf_set(&cmd, 1, argv);

    ck_assert_msg((msg == NULL) == knob_rows[_i].ok, "%s %s: %s",
                  knob_rows[_i].directive, knob_rows[_i].arg, msg ? msg : "accepted");
    if (knob_rows[_i].ok)
        ck_assert_int_eq(*(int *)((char *)&conf + knob_rows[_i].field), knob_rows[_i].want);
    qt_pool_destroy(p);
}
END_TEST

/* ---------------------------------------------------------- scoreboard */

START_TEST(scoreboard_is_shared_with_children)
{
    qt_scoreboard *sb = qt_scoreboard_create(4, 2);
    qt_sb_slot *slot = qt_sb_slot_at(sb, 3, 1);
    int status;
    pid_t pid;

    ck_assert_ptr_ne(slot, qt_sb_slot_at(sb, 3, 0));
    pid = fork();
    if (pid == 0) {
        atomic_store(&sb->procs[3].pid, getpid());
        qt_sb_note_request(slot, "127.0.0.1", "www", "GET / HTTP/1.1");
        qt_sb_note_done(slot, 1234);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    ck_assert_int_eq(atomic_load(&sb->procs[3].pid), pid);
    ck_assert_int_eq(qt_sb_find_pid(sb, pid), 3);
    ck_assert_int_eq(qt_sb_live(sb), 1);
    ck_assert_str_eq(slot->request, "GET / HTTP/1.1");
    ck_assert_uint_eq(atomic_load(&slot->requests), 1);
    ck_assert_uint_eq(atomic_load(&slot->bytes), 1234);
    ck_assert_str_eq(qt_sb_state_name(atomic_load(&slot->state)), "writing");
    qt_sb_clear_process(sb, 3);
    ck_assert_int_eq(qt_sb_live(sb), 0);
    ck_assert_int_eq(atomic_load(&slot->state), QT_SB_DEAD);
    qt_sb_set_state(NULL, QT_SB_READY);                     /* NULL-safe */
    qt_scoreboard_destroy(sb);
}
END_TEST

START_TEST(long_request_line_is_truncated)
{
    qt_scoreboard *sb = qt_scoreboard_create(1, 1);
    qt_sb_slot *slot = qt_sb_slot_at(sb, 0, 0);
    char line[1000];

    memset(line, 'a', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    qt_sb_note_request(slot, "::1", NULL, line);
    ck_assert_uint_eq(strlen(slot->request), sizeof slot->request - 1);
    ck_assert_str_eq(slot->vhost, "");
    qt_scoreboard_destroy(sb);
}
END_TEST

/* The stop sequence reaps every child; none is left a zombie. */
START_TEST(reclaim_leaves_no_zombies)
{
    qt_scoreboard *sb = qt_scoreboard_create(3, 1);

    signal(SIGTERM, SIG_DFL);           /* Check's handler kills the group */
    for (unsigned i = 0; i < 3; i++) {
        pid_t pid = fork();

        if (pid == 0) {
            for (;;)
                pause();
        }
        atomic_store(&sb->procs[i].pid, pid);
    }
    qt_mpm_reclaim_children(sb);
    ck_assert_int_eq(qt_sb_live(sb), 0);
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    qt_scoreboard_destroy(sb);
}
END_TEST

static Suite *process_suite(void)
{
    Suite *s = suite_create("process");
    TCase *pid = tcase_create("pidfile");
    TCase *sig = tcase_create("signals");
    TCase *wait = tcase_create("wait");
    TCase *lst = tcase_create("listen");
    TCase *mpm = tcase_create("mpm");

    tcase_add_checked_fixture(pid, make_tmpdir, remove_tmpdir);
    tcase_add_loop_test(pid, pidfile_read_rows, 0, N(pid_rows));
    tcase_add_test(pid, pidfile_round_trip);
    tcase_add_test(pid, pidfile_unwritable);
    tcase_add_test(sig, signals_are_flags_stop_first);
    tcase_add_test(sig, child_keeps_its_stop_handler);
    tcase_add_test(wait, poll_wait_times_out);
    tcase_add_test(wait, poll_wait_survives_eintr);
    tcase_add_test(wait, wait_without_mpm_falls_back);
    tcase_add_test(lst, listen_binds_nonblocking_cloexec);
    tcase_add_test(lst, listen_reports_address_in_use);
    tcase_add_test(lst, listen_reload_hands_over);
    tcase_add_test(lst, listen_failed_reload_keeps_old);
    tcase_add_test(lst, listen_ipv6_literal);
    tcase_add_loop_test(mpm, mpm_directive_rows, 0, N(knob_rows));
    tcase_add_test(mpm, scoreboard_is_shared_with_children);
    tcase_add_test(mpm, long_request_line_is_truncated);
    tcase_add_test(mpm, reclaim_leaves_no_zombies);
    suite_add_tcase(s, pid);
    suite_add_tcase(s, sig);
    suite_add_tcase(s, wait);
    suite_add_tcase(s, lst);
    suite_add_tcase(s, mpm);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(process_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
