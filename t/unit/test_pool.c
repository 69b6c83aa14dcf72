/* Arenas (server/pool.c) and byte buffers (server/buf.c). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pool.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char order[16];
static size_t norder;

static void note(void *p)
{
    order[norder++] = *(const char *)p;
}

START_TEST(test_alignment_and_growth)
{
    static const size_t sizes[] = { 1, 7, 16, 100, 4000, 5000, 70000, 3 };
    qt_pool *p = qt_pool_create(512);
    for (size_t i = 0; i < N(sizes); i++) {
        unsigned char *m = qt_palloc(p, sizes[i]);
        ck_assert_msg(((uintptr_t)m & 15u) == 0, "allocation %zu not 16-aligned", i);
        memset(m, 0xab, sizes[i]);          /* ASan catches an overlap or overrun */
    }
    ck_assert_uint_ge(qt_pool_used(p), 70000);
    qt_pool_clear(p);
    ck_assert_uint_eq(qt_pool_used(p), 0);
    ck_assert_ptr_nonnull(qt_pcalloc(p, 64));
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_cleanups_run_in_reverse_once)
{
    static char a = 'a', b = 'b', c = 'c';
    qt_pool *p = qt_pool_create(0);
    norder = 0;
    qt_pool_cleanup(p, note, &a);
    qt_pool_cleanup(p, note, &b);
    qt_pool_cleanup(p, note, &c);
    qt_pool_cleanup_run(p, note, &b);      /* early, and only once */
    ck_assert_uint_eq(norder, 1);
    qt_pool_clear(p);
    ck_assert_uint_eq(norder, 3);
    ck_assert(memcmp(order, "bca", 3) == 0);
    qt_pool_cleanup(p, note, &a);
    qt_pool_destroy(p);
    ck_assert_uint_eq(norder, 4);
}
END_TEST

START_TEST(test_strings)
{
    qt_pool *p = qt_pool_create(64);
    ck_assert_str_eq(qt_pstrcat(p, "/srv", "/www", "", "/a.html", NULL), "/srv/www/a.html");
    ck_assert_str_eq(qt_pstrcat(p, NULL), "");
    ck_assert_str_eq(qt_psprintf(p, "%d-%s", 42, "x"), "42-x");
    ck_assert_str_eq(qt_pstrndup(p, "abcdef", 3), "abc");
    ck_assert_ptr_null(qt_pstrdup(p, NULL));
    qt_pool_destroy(p);
}
END_TEST

START_TEST(test_buf)
{
    static const struct { uint64_t v; const char *want; } nums[] = {
        { 0, "0" }, { 9, "9" }, { 10, "10" }, { 1024, "1024" },
        { UINT64_MAX, "18446744073709551615" },
    };
    qt_buf b;
    qt_buf_init(&b);
    for (size_t i = 0; i < N(nums); i++) {
        b.len = 0;
        qt_buf_put_u64(&b, nums[i].v);
        ck_assert_uint_eq(b.len, strlen(nums[i].want));
        ck_assert(memcmp(b.data, nums[i].want, b.len) == 0);
    }
    b.len = 0;
    qt_buf_html_escape(&b, "<a href=\"x\">&'</a>");
    qt_buf_append(&b, "", 1);
    ck_assert_str_eq(b.data, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    b.len = 0;
    qt_buf_printf(&b, "%0300d", 7);        /* longer than the spare room */
    ck_assert_uint_eq(b.len, 300);
    qt_buf_consume(&b, 299);
    ck_assert_uint_eq(b.len, 1);
    ck_assert_int_eq(b.data[0], '7');
    qt_buf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_add_test(tc, test_alignment_and_growth);
    tcase_add_test(tc, test_cleanups_run_in_reverse_once);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_buf);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
