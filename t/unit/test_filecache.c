/* The small-file cache (server/filecache.c): freshness, the stat window,
 * the byte budget.  Each test runs in its own fork, so starts empty. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filecache.h"
#include "pool.h"

#define LIMIT (1024 * 1024)

static char dir[] = "/tmp/qt-filecache-XXXXXX";

static const char *path_of(const char *name)
{
    static char buf[4][256];
    static int turn;
    char *p = buf[turn++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* Also used before the tests start, where ck_assert cannot report. */
static void write_file(const char *name, const char *content, size_t n)
{
    FILE *f = fopen(path_of(name), "wb");
    if (!f || fwrite(content, 1, n, f) != n || fclose(f) != 0) {
        perror(path_of(name));
        exit(EXIT_FAILURE);
    }
}

/* The router's view: stat, then ask the cache for the bytes. */
static const char *fetch(qt_pool *p, const char *name, size_t limit, struct stat *st)
{
    if (stat(path_of(name), st) != 0)
        return NULL;
    return qt_filecache_get(p, path_of(name), st, limit);
}

static size_t entries(void)
{
    size_t n, bytes;
    qt_filecache_stats(&n, &bytes);
    return n;
}

START_TEST(test_just_written_file_is_served_not_kept)
{
    qt_pool *p = qt_pool_create(0);
    struct stat st;
    write_file("young.txt", "young", 5);
    const char *got = fetch(p, "young.txt", LIMIT, &st);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(memcmp(got, "young", 5), 0);
    ck_assert_uint_eq(entries(), 0);         /* written this very second */
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_settled_file_is_kept_and_copied)
{
    qt_pool *p = qt_pool_create(0);
    struct stat st;
    const char *a = fetch(p, "a.txt", LIMIT, &st);
    const char *b = fetch(p, "a.txt", LIMIT, &st);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);                  /* each caller owns its copy */
    ck_assert_int_eq(memcmp(b, "alpha bytes\n", 12), 0);
    ck_assert_uint_eq(entries(), 1);
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_a_change_is_seen_on_the_next_request)
{
    qt_pool *p = qt_pool_create(0);
    struct stat st;
    fetch(p, "change.txt", LIMIT, &st);
    ck_assert_uint_eq(entries(), 1);
    write_file("change.txt", "AFTER", 5);    /* same size, new bytes */
    const char *got = fetch(p, "change.txt", LIMIT, &st);
    ck_assert_int_eq(memcmp(got, "AFTER", 5), 0);
    ck_assert_uint_eq(entries(), 0);         /* the stale entry is gone */
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_stat_window)
{
    qt_pool *p = qt_pool_create(0);
    struct stat st, cached, fresh;
    fetch(p, "window.txt", LIMIT, &st);
    write_file("window.txt", "longer than before", 18);
    /* Inside the window the router sees the cached stat ... */
    ck_assert_int_eq(qt_filecache_stat(path_of("window.txt"), &cached, 60000), 0);
    ck_assert_int_eq(cached.st_size, st.st_size);
    /* ... and with FileCacheValid 0 the file as it is. */
    ck_assert_int_eq(qt_filecache_stat(path_of("window.txt"), &fresh, 0), 0);
    ck_assert_int_eq(fresh.st_size, 18);
    /* A path never cached is always stat'ed. */
    errno = 0;
    ck_assert_int_eq(qt_filecache_stat(path_of("absent.txt"), &fresh, 60000), -1);
    ck_assert_int_eq(errno, ENOENT);
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_budget_evicts_least_recently_used)
{
    qt_pool *p = qt_pool_create(0);
    struct stat st;
    size_t limit = 64 * 1024, n, bytes;
    char name[32];
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof name, "eight-%d.bin", i);
        ck_assert_ptr_nonnull(fetch(p, name, limit, &st));
        fetch(p, "eight-0.bin", limit, &st);  /* keep the first one warm */
    }
    qt_filecache_stats(&n, &bytes);
    ck_assert_uint_le(bytes, limit);
    ck_assert_uint_lt(n, 12);
    ck_assert_uint_gt(n, 1);
    /* The warm file survived: a lookup must not need the disk. */
    unlink(path_of("eight-0.bin"));
    ck_assert_ptr_nonnull(qt_filecache_get(p, path_of("eight-0.bin"), &st, limit));
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_large_file_and_zero_budget_are_not_kept)
{
    qt_pool *p = qt_pool_create(0);
    struct stat st;
    ck_assert_ptr_nonnull(fetch(p, "eight-1.bin", 16 * 1024, &st));  /* > budget / 4 */
    ck_assert_ptr_nonnull(fetch(p, "a.txt", 0, &st));
    ck_assert_uint_eq(entries(), 0);
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_vanished_file_is_an_error)
{
    qt_pool *p = qt_pool_create(0);
    struct stat st;
    ck_assert_int_eq(stat(path_of("gone.txt"), &st), 0);
    unlink(path_of("gone.txt"));
    ck_assert_ptr_null(qt_filecache_get(p, path_of("gone.txt"), &st, LIMIT));
    ck_assert_int_eq(errno, ENOENT);
    qt_pool_destroy(p);
}
END_TEST

/* Files the tests use, written once and left to settle: the cache keeps
 * only files unchanged for two seconds. */
static void make_settled_files(void)
{
    static char eight[8 * 1024];
    char name[32];
    memset(eight, 'x', sizeof eight);
    if (!mkdtemp(dir)) {
        perror(dir);
        exit(EXIT_FAILURE);
    }
    write_file("a.txt", "alpha bytes\n", 12);
    write_file("change.txt", "BEFOR", 5);
    write_file("window.txt", "short", 5);
    write_file("gone.txt", "gone", 4);
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof name, "eight-%d.bin", i);
        write_file(name, eight, sizeof eight);
    }
    sleep(3);
}

int main(void)
{
    make_settled_files();
    Suite *s = suite_create("filecache");
    TCase *tc = tcase_create("filecache");
    tcase_add_test(tc, test_just_written_file_is_served_not_kept);
    tcase_add_test(tc, test_settled_file_is_kept_and_copied);
    tcase_add_test(tc, test_a_change_is_seen_on_the_next_request);
    tcase_add_test(tc, test_stat_window);
    tcase_add_test(tc, test_budget_evicts_least_recently_used);
    tcase_add_test(tc, test_large_file_and_zero_budget_are_not_kept);
    tcase_add_test(tc, test_vanished_file_is_an_error);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        failed++;
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
