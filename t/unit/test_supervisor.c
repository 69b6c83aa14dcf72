/*
 * The spare-child policy of the process MPMs' master (mpm/supervisor.c):
 * when a tick retires an idle child, when it asks for more and is refused
 * at MaxRequestWorkers, and which lost children are replaced at once.
 * free_row() always answers -1 here, so nothing is ever forked.
 */
#include <check.h>
#include <signal.h>
#include <sys/wait.h>

#include "scoreboard.h"
#include "supervisor.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int fake_idle, fake_last;

static int no_free_row(const qt_supervisor *sv)
{
    (void)sv;
    return -1;
}

static int fixed_idle(const qt_supervisor *sv, int *last)
{
    (void)sv;
    *last = fake_last;
    return fake_idle;
}

static void no_log(const qt_supervisor *sv, int idle)
{
    (void)sv;
    (void)idle;
}

static const qt_supervisor_ops fake_ops = {
    .tag = "test",
    .free_row = no_free_row,
    .count_idle = fixed_idle,
    .log_busy = no_log,
};

static void sv_init(qt_supervisor *sv, unsigned nprocs)
{
    *sv = (qt_supervisor){ .ops = &fake_ops, .death_pipe = { -1, -1 },
                           .min_spare = 5, .max_spare = 10, .spawn_rate = 1 };
    sv->sb = qt_scoreboard_create(nprocs, 1);
    sv->replace_window_ms = qt_now_ms();
}

static const struct spare_row {
    const char *name;
    int idle, last, rate_in;
    int retired;                   /* row marked quiescing, or -1 */
    int rate_out;
    bool at_limit;
} spare_rows[] = {
    { "above max: last idle child retired", 12, 3, 4, 3, 1, false },
    { "above max, none to retire", 12, -1, 4, -1, 1, false },
    { "within spares: rate back to 1", 7, 2, 8, -1, 1, false },
    { "exactly max keeps all", 10, 2, 2, -1, 1, false },
    { "below min at MaxRequestWorkers", 2, 1, 16, -1, 1, true },
};

START_TEST(keep_spares_rows)
{
    const struct spare_row *r = &spare_rows[_i];
    qt_supervisor sv;

    sv_init(&sv, 4);
    fake_idle = r->idle;
    fake_last = r->last;
    sv.spawn_rate = r->rate_in;
    qt_supervisor_keep_spares(&sv);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(atomic_load(&sv.sb->procs[i].quiescing) == (i == r->retired),
                      "%s: row %d", r->name, i);
    ck_assert_msg(sv.spawn_rate == r->rate_out, "%s: rate %d", r->name, sv.spawn_rate);
    ck_assert_msg(sv.limit_reported == r->at_limit, "%s: limit", r->name);
    qt_scoreboard_destroy(sv.sb);
}
END_TEST

static const struct lost_row {
    const char *name;
    int slot;
    bool quiescing, old_generation;
    int status;
    int replaced_before, replaced_after, rate_out;
} lost_rows[] = {
    { "crashed child replaced", 0, false, false, SIGSEGV, 0, 1, 4 },
    { "recycled child replaced", 1, false, false, 0, 3, 4, 4 },
    { "CHILDSICK slows spawning instead", 0, false, false,
      QT_EXIT_CHILDSICK << 8, 0, 0, 1 },
    { "told to exit: not replaced", 0, true, false, 0, 0, 0, 4 },
    { "old generation: not replaced", 0, false, true, 0, 0, 0, 4 },
    { "not ours: not replaced", -1, false, false, 0, 0, 0, 4 },
    { "over the budget: not replaced", 0, false, false, SIGKILL,
      QT_SUPERVISOR_SPAWN_RATE, QT_SUPERVISOR_SPAWN_RATE, 4 },
};

START_TEST(replace_lost_rows)
{
    const struct lost_row *r = &lost_rows[_i];
    qt_supervisor sv;
    qt_child_exit e = { .pid = 4242, .slot = r->slot, .quiescing = r->quiescing,
                        .status = r->status };

    sv_init(&sv, 2);
    atomic_store(&sv.sb->running_generation, 7);
    e.generation = r->old_generation ? 6 : 7;
    sv.spawn_rate = 4;
    sv.replaced_in_window = r->replaced_before;
    qt_supervisor_replace_lost(&sv, &e);
    ck_assert_msg(sv.replaced_in_window == r->replaced_after, "%s: replaced %d",
                  r->name, sv.replaced_in_window);
    ck_assert_msg(sv.spawn_rate == r->rate_out, "%s: rate", r->name);
    qt_scoreboard_destroy(sv.sb);
}
END_TEST

START_TEST(budget_refills_after_a_second)
{
    qt_supervisor sv;

    sv_init(&sv, 1);
    sv.replaced_in_window = QT_SUPERVISOR_SPAWN_RATE;
    ck_assert_int_eq(qt_supervisor_replace_budget(&sv), 0);
    sv.replace_window_ms -= 1000;
    ck_assert_int_eq(qt_supervisor_replace_budget(&sv), QT_SUPERVISOR_SPAWN_RATE);
    qt_scoreboard_destroy(sv.sb);
}
END_TEST

static Suite *supervisor_suite(void)
{
    Suite *s = suite_create("supervisor");
    TCase *tc = tcase_create("spares");

    tcase_add_loop_test(tc, keep_spares_rows, 0, N(spare_rows));
    tcase_add_loop_test(tc, replace_lost_rows, 0, N(lost_rows));
    tcase_add_test(tc, budget_refills_after_a_second);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(supervisor_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
