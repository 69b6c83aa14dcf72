/* The coroutine runtime (mpm/coro): scheduling, timers, netpoller, stacks. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coro/coro.h"
#include "module.h"

/* ------------------------------------------------------ create/finish */

typedef struct {
    coro_sched *s;
    unsigned total, done, batch;
    unsigned peak_mapped;
} mass;

static void mass_child(void *arg)
{
    mass *m = arg;
    coro_stats st;

    coro_sched_stats(m->s, &st);
    if (st.stacks_mapped > m->peak_mapped)
        m->peak_mapped = st.stacks_mapped;
    m->done++;
}

static void mass_spawner(void *arg)
{
    mass *m = arg;

    for (unsigned i = 0; i < m->total; i++) {
        ck_assert_ptr_nonnull(coro_create(mass_child, m));
        if (i % m->batch == m->batch - 1)
            coro_yield();               /* let the batch run and finish */
    }
}

START_TEST(create_finish_100k_reuses_stacks)
{
    coro_sched_opts o = { .stack_cache = 64 };
    mass m = { .total = 100000, .batch = 50 };
    coro_stats st;

    m.s = coro_sched_create(&o);
    ck_assert_ptr_nonnull(coro_spawn(m.s, mass_spawner, &m));
    coro_sched_run(m.s);
    coro_sched_stats(m.s, &st);
    ck_assert_uint_eq(m.done, 100000);
    ck_assert_uint_eq(st.created, 100001);
    ck_assert_uint_eq(st.live, 0);
    /* At most one batch + the spawner alive at once: memory is bounded. */
    ck_assert_uint_le(m.peak_mapped, m.batch + 2);
    ck_assert_uint_le(st.stacks_mapped, 64);
    ck_assert_uint_le(st.stack_maps, m.batch + 2);
    coro_sched_destroy(m.s);
}
END_TEST

/* ------------------------------------------------------------ fairness */

typedef struct {
    unsigned n, rounds;
    unsigned *log, len;
} fair;

typedef struct {
    fair *f;
    unsigned id;
} fair_arg;

static void fair_worker(void *arg)
{
    fair_arg *a = arg;

    for (unsigned r = 0; r < a->f->rounds; r++) {
        a->f->log[a->f->len++] = a->id;
        coro_yield();
    }
}

START_TEST(yield_is_round_robin)
{
    static const unsigned ns[] = { 1, 2, 7, 100 };
    unsigned n = ns[_i];
    fair f = { .n = n, .rounds = 50 };
    fair_arg *args = calloc(n, sizeof *args);
    coro_sched *s = coro_sched_create(NULL);

    f.log = calloc((size_t)n * f.rounds, sizeof *f.log);
    for (unsigned i = 0; i < n; i++) {
        args[i] = (fair_arg){ &f, i };
        coro_spawn(s, fair_worker, &args[i]);
    }
    coro_sched_run(s);
    ck_assert_uint_eq(f.len, n * f.rounds);
    /* Every round, every coroutine ran exactly once, in creation order. */
    for (unsigned k = 0; k < f.len; k++)
        ck_assert_uint_eq(f.log[k], k % n);
    coro_sched_destroy(s);
    free(f.log);
    free(args);
}
END_TEST

/* -------------------------------------------------------------- timers */

typedef struct {
    int64_t sleep_ms;
    unsigned *order, *len;
    unsigned id;
    int64_t started, woke;
} sleeper;

static void sleeper_run(void *arg)
{
    sleeper *z = arg;

    z->started = coro_now_ms();
    coro_sleep_ms(z->sleep_ms);
    z->woke = coro_now_ms();
    z->order[(*z->len)++] = z->id;
}

START_TEST(timers_fire_in_deadline_order)
{
    /* {sleep, expected wake position}; equal deadlines keep arming order. */
    static const struct { int64_t ms; unsigned pos; } rows[] = {
        { 60, 5 }, { 20, 2 }, { 0, 0 }, { 40, 4 }, { 20, 3 }, { 5, 1 },
    };
    enum { N = sizeof rows / sizeof rows[0] };
    sleeper z[N];
    unsigned order[N], len = 0;
    coro_sched *s = coro_sched_create(NULL);

    for (unsigned i = 0; i < N; i++) {
        z[i] = (sleeper){ .sleep_ms = rows[i].ms, .order = order, .len = &len,
                          .id = i };
        coro_spawn(s, sleeper_run, &z[i]);
    }
    coro_sched_run(s);
    ck_assert_uint_eq(len, N);
    for (unsigned i = 0; i < N; i++) {
        ck_assert_uint_eq(order[rows[i].pos], i);
        ck_assert_int_ge(z[i].woke - z[i].started, rows[i].ms);
        ck_assert_int_lt(z[i].woke - z[i].started, rows[i].ms + 500);
    }
    coro_sched_destroy(s);
}
END_TEST

/* ------------------------------------------------------------- wait_fd */

typedef struct {
    int fds[2];
    bool registered;
    int64_t writer_delay;               /* < 0: nobody writes */
    int64_t timeout;
    int result;
    int64_t waited;
    char got;
} pipe_case;

static void pipe_reader(void *arg)
{
    pipe_case *pc = arg;
    int64_t t0 = coro_now_ms();
    char c;

    if (pc->registered)
        ck_assert_int_eq(coro_fd_register(pc->fds[0], 0), QT_OK);
    /* The core's pattern: read, and wait only when it would block. */
    for (;;) {
        ssize_t n = read(pc->fds[0], &c, 1);

        if (n == 1) {
            pc->got = c;
            pc->result = QT_OK;
            break;
        }
        ck_assert_int_eq(errno, EAGAIN);
        pc->result = coro_wait_fd(pc->fds[0], POLLIN, t0 + pc->timeout);
        if (pc->result != QT_OK)
            break;
    }
    pc->waited = coro_now_ms() - t0;
    if (pc->registered)
        coro_fd_forget(pc->fds[0]);
}

static void pipe_writer(void *arg)
{
    pipe_case *pc = arg;

    coro_sleep_ms(pc->writer_delay);
    ck_assert_int_eq(write(pc->fds[1], "x", 1), 1);
}

START_TEST(wait_fd_wakes_on_write_or_times_out)
{
    static const struct {
        const char *name;
        bool registered;
        int64_t writer_delay, timeout;
        int result;
        int64_t min_ms, max_ms;
    } rows[] = {
        { "ET, written", true, 30, 5000, QT_OK, 25, 2000 },
        { "ET, deadline", true, -1, 60, QT_TIMEOUT, 60, 2000 },
        { "oneshot, written", false, 30, 5000, QT_OK, 25, 2000 },
        { "oneshot, deadline", false, -1, 60, QT_TIMEOUT, 60, 2000 },
        { "ET, written at once", true, 0, 5000, QT_OK, 0, 2000 },
    };
    pipe_case pc = { .registered = rows[_i].registered,
                     .writer_delay = rows[_i].writer_delay,
                     .timeout = rows[_i].timeout };
    coro_sched *s = coro_sched_create(NULL);

    ck_assert_int_eq(pipe2(pc.fds, O_NONBLOCK), 0);
    coro_spawn(s, pipe_reader, &pc);
    if (pc.writer_delay >= 0)
        coro_spawn(s, pipe_writer, &pc);
    coro_sched_run(s);
    ck_assert_msg(pc.result == rows[_i].result, "%s: result %d", rows[_i].name,
                  pc.result);
    ck_assert_msg(pc.waited >= rows[_i].min_ms && pc.waited < rows[_i].max_ms,
                  "%s: waited %lld ms", rows[_i].name, (long long)pc.waited);
    if (rows[_i].result == QT_OK)
        ck_assert_int_eq(pc.got, 'x');
    close(pc.fds[0]);
    close(pc.fds[1]);
    coro_sched_destroy(s);
}
END_TEST

static void second_waiter(void *arg)
{
    int *fds = arg;

    ck_assert_int_eq(coro_wait_fd(fds[0], POLLIN, coro_now_ms() + 1000),
                     QT_ERROR);         /* one reader per fd */
    coro_fd_forget(fds[0]);             /* the first waiter must not hang */
}

static void first_waiter(void *arg)
{
    int *fds = arg;

    ck_assert_int_eq(coro_fd_register(fds[0], 0), QT_OK);
    ck_assert_int_eq(coro_wait_fd(fds[0], POLLIN, coro_now_ms() + 5000), QT_ERROR);
}

START_TEST(one_reader_per_fd_and_forget_wakes_it)
{
    int fds[2];
    coro_sched *s = coro_sched_create(NULL);

    ck_assert_int_eq(pipe2(fds, O_NONBLOCK), 0);
    coro_spawn(s, first_waiter, fds);
    coro_spawn(s, second_waiter, fds);
    coro_sched_run(s);
    close(fds[0]);
    close(fds[1]);
    coro_sched_destroy(s);
}
END_TEST

/* ------------------------------------------------------------ watches */

typedef struct {
    int fds[2];
    int result;
    unsigned calls;
    unsigned live_during;
} watch_case;

static void on_watch(int fd, int result, void *arg)
{
    watch_case *w = arg;

    (void)fd;
    w->result = result;
    w->calls++;
}

static void watch_writer(void *arg)
{
    watch_case *w = arg;
    coro_stats st;

    coro_sched_stats(coro_sched_current(), &st);
    w->live_during = st.live;           /* only this coroutine */
    coro_sleep_ms(20);
    ck_assert_int_eq(write(w->fds[1], "y", 1), 1);
}

static void watch_setup(void *arg)
{
    watch_case *w = arg;

    ck_assert_int_eq(coro_fd_register(w->fds[0], 0), QT_OK);
    ck_assert_int_eq(coro_watch_fd(w->fds[0], coro_now_ms() + 100, on_watch, w),
                     QT_OK);
}

START_TEST(watch_fires_without_a_coroutine)
{
    /* _i == 0: written after 20 ms -> QT_OK; 1: never -> QT_TIMEOUT. */
    watch_case w = { .result = 99 };
    coro_sched *s = coro_sched_create(NULL);
    int64_t t0 = coro_now_ms();

    ck_assert_int_eq(pipe2(w.fds, O_NONBLOCK), 0);
    coro_spawn(s, watch_setup, &w);
    if (_i == 0)
        coro_spawn(s, watch_writer, &w);
    coro_sched_run(s);
    ck_assert_uint_eq(w.calls, 1);
    ck_assert_int_eq(w.result, _i == 0 ? QT_OK : QT_TIMEOUT);
    if (_i == 0)
        ck_assert_uint_eq(w.live_during, 1);
    else
        ck_assert_int_ge(coro_now_ms() - t0, 100);
    close(w.fds[0]);
    close(w.fds[1]);
    coro_sched_destroy(s);
}
END_TEST

/* -------------------------------------------------------- park / ready */

typedef struct {
    coro *parked;
    int park_result, timed_result;
} park_case;

static void parker(void *arg)
{
    park_case *p = arg;

    p->parked = coro_self();
    p->park_result = coro_park();
    p->timed_result = coro_park_until(coro_now_ms() + 20);
}

static void readier(void *arg)
{
    park_case *p = arg;

    ck_assert_ptr_nonnull(p->parked);
    coro_ready(p->parked);
    coro_ready(p->parked);              /* already runnable: no-op */
}

START_TEST(park_ready_and_park_deadline)
{
    park_case p = { .park_result = 99, .timed_result = 99 };
    coro_sched *s = coro_sched_create(NULL);

    coro_spawn(s, parker, &p);
    coro_spawn(s, readier, &p);
    coro_sched_run(s);
    ck_assert_int_eq(p.park_result, QT_OK);
    ck_assert_int_eq(p.timed_result, QT_TIMEOUT);
    coro_sched_destroy(s);
}
END_TEST

/* --------------------------------------------------------------- errno */

static void errno_keeper(void *arg)
{
    int mine = (int)(intptr_t)arg;

    errno = mine;
    for (int i = 0; i < 100; i++) {
        coro_yield();
        ck_assert_int_eq(errno, mine);
        if (i % 10 == 0) {
            coro_sleep_ms(1);
            ck_assert_int_eq(errno, mine);
        }
    }
}

START_TEST(errno_is_per_coroutine)
{
    coro_sched *s = coro_sched_create(NULL);

    for (int e = 1; e <= 5; e++)
        coro_spawn(s, errno_keeper, (void *)(intptr_t)(e * 11));
    coro_sched_run(s);
    coro_sched_destroy(s);
}
END_TEST

/* ------------------------------------------------------ stack overflow */

static int recurse(volatile char *prev, int depth)
{
    volatile char frame[512];

    frame[0] = (char)depth;
    frame[511] = prev ? prev[0] : 0;
    return depth > 1000000 ? frame[0] : recurse(frame, depth + 1) + frame[511];
}

static void overflow(void *arg)
{
    (void)arg;
    recurse(NULL, 0);
}

static void run_overflow_child(int errfd)
{
    coro_sched_opts o = { .stack_size = 64 * 1024 };
    coro_sched *s;

    dup2(errfd, STDERR_FILENO);
    s = coro_sched_create(&o);
    coro_spawn(s, overflow, NULL);
    coro_sched_run(s);
    _exit(0);                           /* not reached */
}

START_TEST(stack_overflow_aborts_with_a_message)
{
    char buf[512] = "";
    size_t len = 0;
    int p[2], status;
    ssize_t n;
    pid_t pid;

    ck_assert_int_eq(pipe(p), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        run_overflow_child(p[1]);
    }
    close(p[1]);
    while (len < sizeof buf - 1 &&
           (n = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "child status %#x", status);
    ck_assert_msg(strstr(buf, "coroutine stack overflow (stack of 65536 bytes)"),
                  "stderr: %s", buf);
}
END_TEST

/* A fault outside any guard page (not a null pointer: UBSan would catch it). */
static void bad_store(void *arg)
{
    *(volatile int *)arg = 1;
}

START_TEST(other_faults_keep_the_default_action)
{
    int status;
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        coro_sched *s = coro_sched_create(NULL);
        void *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        coro_spawn(s, bad_store, page);
        coro_sched_run(s);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
                  "child status %#x", status);
}
END_TEST

/* ---------------------------------------------------- wake from thread */

static void stopper(void *arg)
{
    coro_sched_stop(arg);
    coro_sleep_ms(60000);               /* would keep run() busy for a minute */
}

START_TEST(stop_ends_run_with_coroutines_alive)
{
    coro_sched *s = coro_sched_create(NULL);
    int64_t t0 = coro_now_ms();
    coro_stats st;

    coro_spawn(s, stopper, s);
    coro_sched_run(s);
    coro_sched_stats(s, &st);
    ck_assert_uint_eq(st.live, 1);
    ck_assert_int_lt(coro_now_ms() - t0, 1000);
    coro_sched_destroy(s);              /* frees the parked coroutine */
}
END_TEST

static Suite *coro_suite(void)
{
    Suite *s = suite_create("coro");
    TCase *tc = tcase_create("runtime");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, create_finish_100k_reuses_stacks);
    tcase_add_loop_test(tc, yield_is_round_robin, 0, 4);
    tcase_add_test(tc, timers_fire_in_deadline_order);
    tcase_add_loop_test(tc, wait_fd_wakes_on_write_or_times_out, 0, 5);
    tcase_add_test(tc, one_reader_per_fd_and_forget_wakes_it);
    tcase_add_loop_test(tc, watch_fires_without_a_coroutine, 0, 2);
    tcase_add_test(tc, park_ready_and_park_deadline);
    tcase_add_test(tc, errno_is_per_coroutine);
    tcase_add_test(tc, stack_overflow_aborts_with_a_message);
    tcase_add_test(tc, other_faults_keep_the_default_action);
    tcase_add_test(tc, stop_ends_run_with_coroutines_alive);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(coro_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
