/* The response serializer (server/http_serialize.c): heads and chunk framing. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http_serialize.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define DATE "Mon, 30 Nov 2026 05:00:00 GMT"

static const qt_kv etag = { "ETag", "\"1-2\"", NULL };
static qt_kv evil = { "X-Evil", "a\r\nSet-Cookie: x=1", NULL };
static const qt_kv loc = { "Location", "/x/", &evil };

static const struct {
    const char *name;
    qt_response_head head;
    const char *want;
} rows[] = {
    { "200 with length",
      { .status = 200, .date = DATE, .server = "Quintet", .fields = &etag,
        .content_type = "text/plain", .content_length = 5 },
      "HTTP/1.1 200 OK\r\nDate: " DATE "\r\nServer: Quintet\r\nETag: \"1-2\"\r\n"
      "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n" },
    { "chunked and close",
      { .status = 200, .content_length = -1, .chunked = true, .connection = QT_CONN_HDR_CLOSE },
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" },
    { "length wins over chunked",
      { .status = 200, .content_length = 0, .chunked = true },
      "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" },
    { "304 carries no body headers",
      { .status = 304, .fields = &etag, .content_type = "text/html", .content_length = 10,
        .chunked = true },
      "HTTP/1.1 304 Not Modified\r\nETag: \"1-2\"\r\n\r\n" },
    { "204 carries no body headers",
      { .status = 204, .content_length = 3 },
      "HTTP/1.1 204 No Content\r\n\r\n" },
    { "custom status line (CGI Status:)",
      { .status = 404, .status_line = "404 Gone Fishing", .content_length = -1 },
      "HTTP/1.1 404 Gone Fishing\r\n\r\n" },
    { "status line with CRLF falls back to the code",
      { .status = 500, .status_line = "500 x\r\nX: y", .content_length = -1 },
      "HTTP/1.1 500 Internal Server Error\r\n\r\n" },
    { "response splitting: a value with CRLF is dropped",
      { .status = 301, .fields = &loc, .content_length = -1 },
      "HTTP/1.1 301 Moved Permanently\r\nLocation: /x/\r\n\r\n" },
    { "HTTP/1.0 keep-alive is confirmed",
      { .status = 200, .content_length = 1, .connection = QT_CONN_HDR_KEEPALIVE,
        .keepalive_timeout_s = 5, .keepalive_max = 99 },
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nKeep-Alive: timeout=5, max=99\r\n"
      "Connection: Keep-Alive\r\n\r\n" },
};

START_TEST(test_heads)
{
    for (size_t i = 0; i < N(rows); i++) {
        qt_buf b;
        qt_buf_init(&b);
        qt_http_serialize_head(&b, &rows[i].head);
        qt_buf_append(&b, "", 1);
        ck_assert_msg(strcmp(b.data, rows[i].want) == 0, "%s:\n got: %s\nwant: %s",
                      rows[i].name, b.data, rows[i].want);
        qt_buf_free(&b);
    }
}
END_TEST

START_TEST(test_chunk_headers)
{
    static const struct { size_t n; const char *want; } cases[] = {
        { 0, "0\r\n" }, { 1, "1\r\n" }, { 15, "f\r\n" }, { 16, "10\r\n" },
        { 4096, "1000\r\n" }, { 0xdeadbeef, "deadbeef\r\n" },
        { (size_t)-1, "ffffffffffffffff\r\n" },
    };
    for (size_t i = 0; i < N(cases); i++) {
        char out[20];
        size_t len = qt_http_chunk_header(out, cases[i].n);
        ck_assert_uint_eq(len, strlen(cases[i].want));
        ck_assert_msg(memcmp(out, cases[i].want, len) == 0, "chunk header for %zu", cases[i].n);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_serialize");
    TCase *tc = tcase_create("serialize");
    tcase_add_test(tc, test_heads);
    tcase_add_test(tc, test_chunk_headers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
