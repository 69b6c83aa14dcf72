/*
 * The streaming gzip transform (server/deflate.c), checked by inflating its
 * output: for every input row, the input is fed split at every size from 1
 * byte up, with and without sync flushes between pieces, and must come
 * back byte for byte.  A sync flush must make everything fed so far
 * decodable at once: that is what lets a slow CGI's output reach the client
 * chunk by chunk.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "deflate.h"
#include "module.h"
#include "pool.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------- helpers */

typedef struct {
    unsigned char *data;
    size_t len, cap;
    unsigned calls;
    int fail_after;                  /* emit fails on this call (0: never) */
} sink;

static int sink_emit(void *arg, const void *p, size_t n)
{
    sink *s = arg;
    s->calls++;
    if (s->fail_after && (int)s->calls >= s->fail_after)
        return QT_ERROR;
    ck_assert_uint_gt(n, 0);
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->data = realloc(s->data, s->cap);
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
    return QT_OK;
}

/* Inflates a whole gzip stream; returns the output length or -1. */
static long gunzip(const unsigned char *in, size_t n, unsigned char *out, size_t cap,
                   bool need_end)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        return -1;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int z = inflate(&zs, Z_SYNC_FLUSH);
    long got = (long)(cap - zs.avail_out);
    inflateEnd(&zs);
    if (need_end ? z != Z_STREAM_END : (z != Z_OK && z != Z_STREAM_END && z != Z_BUF_ERROR))
        return -1;
    return got;
}

/* Inputs: empty, tiny, compressible text, incompressible bytes. */
static unsigned char *make_input(unsigned row, size_t *len)
{
    static const size_t lens[] = { 0, 1, 3000, 70000 };
    *len = lens[row];
    unsigned char *p = malloc(*len + 1);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < *len; i++) {
        if (row == 2) {
            p[i] = (unsigned char)("<p>Quintet serves gzip.</p>\n"[i % 28]);
        } else {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            p[i] = (unsigned char)x;
        }
    }
    return p;
}

/* Inputs by row: empty, one byte, text of 3000 bytes, 70000 random bytes. */
enum { NROWS = 4 };

/* Feeds in pieces of `split` bytes; flush after each piece if asked. */
static void roundtrip(const unsigned char *in, size_t len, size_t split, bool flush, int level)
{
    qt_deflate *d = malloc(sizeof(*d));
    sink s = { 0 };
    ck_assert_int_eq(qt_deflate_init(d, level), QT_OK);
    for (size_t off = 0; off < len; off += split) {
        size_t k = len - off < split ? len - off : split;
        ck_assert_int_eq(qt_deflate_feed(d, in + off, k, sink_emit, &s), QT_OK);
        if (flush)
            ck_assert_int_eq(qt_deflate_flush(d, sink_emit, &s), QT_OK);
    }
    ck_assert_int_eq(qt_deflate_finish(d, sink_emit, &s), QT_OK);
    qt_deflate_end(d);
    ck_assert_uint_ge(s.len, 20);    /* 10-byte header, 8-byte trailer, a block */
    ck_assert_uint_eq(s.data[0], 0x1f);
    ck_assert_uint_eq(s.data[1], 0x8b);
    unsigned char *out = malloc(len + 64);
    long got = gunzip(s.data, s.len, out, len + 64, true);
    ck_assert_msg(got == (long)len, "split %zu flush %d: inflated %ld of %zu",
                  split, flush, got, len);
    ck_assert(len == 0 || memcmp(out, in, len) == 0);
    free(out);
    free(s.data);
    free(d);
}

/* ------------------------------------------------------- tests */

/* Every split size: small inputs exhaustively, big ones at a stride. */
START_TEST(test_roundtrip_every_split)
{
    size_t len;
    unsigned char *in = make_input((unsigned)_i, &len);
    size_t step = len > 5000 ? 997 : 1;
    for (size_t split = 1; split <= (len ? len : 1); split += step)
        roundtrip(in, len, split, false, 6);
    roundtrip(in, len, len ? len : 1, false, 1);
    roundtrip(in, len, len ? len : 1, false, 9);
    free(in);
}
END_TEST

START_TEST(test_roundtrip_flushed)
{
    size_t len;
    unsigned char *in = make_input((unsigned)_i, &len);
    static const size_t splits[] = { 1, 7, 100, 4096, 65536 };
    for (size_t i = 0; i < N(splits); i++)
        if (len <= 3000 || splits[i] >= 100)
            roundtrip(in, len, splits[i], true, 6);
    free(in);
}
END_TEST

/* After each sync flush, the output so far decodes to the input so far. */
START_TEST(test_flush_makes_prefix_decodable)
{
    static const char *const pieces[] = { "Content: one\n", "two, after a pause\n",
                                          "", "three\n" };
    qt_deflate *d = malloc(sizeof(*d));
    sink s = { 0 };
    char want[256] = "";
    unsigned char out[256];
    ck_assert_int_eq(qt_deflate_init(d, 6), QT_OK);
    for (size_t i = 0; i < N(pieces); i++) {
        ck_assert_int_eq(qt_deflate_feed(d, pieces[i], strlen(pieces[i]), sink_emit, &s), QT_OK);
        ck_assert_int_eq(qt_deflate_flush(d, sink_emit, &s), QT_OK);
        strcat(want, pieces[i]);
        long got = gunzip(s.data, s.len, out, sizeof(out), false);
        ck_assert_int_eq(got, (long)strlen(want));
        ck_assert(memcmp(out, want, (size_t)got) == 0);
    }
    ck_assert_int_eq(qt_deflate_finish(d, sink_emit, &s), QT_OK);
    qt_deflate_end(d);
    free(s.data);
    free(d);
}
END_TEST

/* A client that went away: the emit error stops the transform. */
START_TEST(test_emit_error_propagates)
{
    size_t len;
    unsigned char *in = make_input(3, &len);
    qt_deflate *d = malloc(sizeof(*d));
    sink s = { .fail_after = 1 };
    ck_assert_int_eq(qt_deflate_init(d, 6), QT_OK);
    ck_assert_int_eq(qt_deflate_feed(d, in, len, sink_emit, &s), QT_ERROR);
    qt_deflate_end(d);
    free(s.data);
    free(d);
    free(in);
}
END_TEST

/* Misuse is refused, not undefined: nothing after finish, finish once. */
START_TEST(test_after_finish_refused)
{
    qt_deflate *d = malloc(sizeof(*d));
    sink s = { 0 };
    ck_assert_int_eq(qt_deflate_init(d, 0), QT_OK);     /* out of range: zlib default */
    ck_assert_int_eq(qt_deflate_finish(d, sink_emit, &s), QT_OK);
    ck_assert_int_eq(qt_deflate_feed(d, "x", 1, sink_emit, &s), QT_ERROR);
    ck_assert_int_eq(qt_deflate_flush(d, sink_emit, &s), QT_ERROR);
    ck_assert_int_eq(qt_deflate_finish(d, sink_emit, &s), QT_ERROR);
    qt_deflate_end(d);
    qt_deflate_end(d);                                  /* idempotent */
    unsigned char out[8];
    ck_assert_int_eq(gunzip(s.data, s.len, out, sizeof(out), true), 0);
    free(s.data);
    free(d);
}
END_TEST

/* Output is handed on in bounded pieces (never the whole body at once). */
START_TEST(test_output_bounded)
{
    size_t len;
    unsigned char *in = make_input(3, &len);
    qt_deflate *d = malloc(sizeof(*d));
    sink s = { 0 };
    ck_assert_int_eq(qt_deflate_init(d, 1), QT_OK);
    ck_assert_int_eq(qt_deflate_feed(d, in, len, sink_emit, &s), QT_OK);
    ck_assert_int_eq(qt_deflate_finish(d, sink_emit, &s), QT_OK);
    ck_assert_uint_ge(s.calls, (unsigned)(s.len / QT_DEFLATE_OUT));
    ck_assert_uint_gt(s.calls, 1);
    qt_deflate_end(d);
    free(s.data);
    free(d);
    free(in);
}
END_TEST

/* ------------------------------------------------------- HTTP helpers */

static const struct { const char *ae; bool gzip; } accept_rows[] = {
    { NULL, false },
    { "", false },
    { "gzip", true },
    { "GZIP", true },
    { "x-gzip", true },
    { "deflate, gzip;q=1.0, *;q=0.5", true },
    { "gzip;q=0", false },
    { "gzip; q=0.000", false },
    { "gzip;q=0.001", true },
    { "gzip;q=0, *", false },              /* named gzip wins over "*" */
    { "*", true },
    { "*;q=0", false },
    { "identity", false },
    { "br, deflate", false },
    { "gzipx", false },                    /* a different token */
    { "gzip;q=abc", false },               /* malformed q: not acceptable */
    { "gzip;q=2", false },
    { " gzip ;q=0.5 , br", true },
    { "br;q=1, gzip;level=1;q=0.2", true },
};

START_TEST(test_accepts_gzip)
{
    ck_assert_msg(qt_accepts_gzip(accept_rows[_i].ae) == accept_rows[_i].gzip,
                  "Accept-Encoding: %s", accept_rows[_i].ae ? accept_rows[_i].ae : "(none)");
}
END_TEST

static const struct { const char *in, *want; } etag_rows[] = {
    { "\"3e9-66175eb83628d\"", "\"3e9-66175eb83628d-gzip\"" },
    { "W/\"3e9-1\"", "W/\"3e9-1-gzip\"" },
    { "\"\"", "\"-gzip\"" },
    { "noquotes", NULL },
    { "\"", NULL },
    { NULL, NULL },
};

START_TEST(test_etag_gzip)
{
    qt_pool *p = qt_pool_create(256);
    const char *got = qt_etag_gzip(p, etag_rows[_i].in);
    if (etag_rows[_i].want)
        ck_assert_str_eq(got, etag_rows[_i].want);
    else
        ck_assert_ptr_null(got);
    qt_pool_destroy(p);
}
END_TEST

static const struct { const char *in, *want; } ungzip_rows[] = {
    { "\"a-gzip\"", "\"a-gzip\", \"a\"" },
    { "\"a\", W/\"b-gzip\"", "\"a\", W/\"b-gzip\", \"b\"" },
    { "\"a-gzip\", \"b-gzip\"", "\"a-gzip\", \"b-gzip\", \"a\", \"b\"" },
    { "\"a\"", NULL },
    { "*", NULL },
    { NULL, NULL },
};

START_TEST(test_etag_list_ungzip)
{
    qt_pool *p = qt_pool_create(256);
    const char *got = qt_etag_list_ungzip(p, ungzip_rows[_i].in);
    if (ungzip_rows[_i].want)
        ck_assert_str_eq(got, ungzip_rows[_i].want);
    else
        ck_assert_ptr_null(got);
    qt_pool_destroy(p);
}
END_TEST

static Suite *deflate_suite(void)
{
    Suite *s = suite_create("deflate");
    TCase *tc = tcase_create("transform");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_roundtrip_every_split, 0, NROWS);
    tcase_add_loop_test(tc, test_roundtrip_flushed, 0, NROWS);
    tcase_add_test(tc, test_flush_makes_prefix_decodable);
    tcase_add_test(tc, test_emit_error_propagates);
    tcase_add_test(tc, test_after_finish_refused);
    tcase_add_test(tc, test_output_bounded);
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("http");
    tcase_add_loop_test(th, test_accepts_gzip, 0, N(accept_rows));
    tcase_add_loop_test(th, test_etag_gzip, 0, N(etag_rows));
    tcase_add_loop_test(th, test_etag_list_ungzip, 0, N(ungzip_rows));
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(deflate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
