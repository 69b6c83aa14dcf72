/*
 * Microbenchmark of the request-head parser: parses a small corpus of
 * browser-like requests (about ten fields each) in a bounded loop and
 * prints the mean time per request.  Not a test; build it with
 * `make bench/micro/parser_bench`.
 *
 * Usage: parser_bench [rounds]   (default 200000, at most 10000000)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_parser.h"

static const char *const corpus[] = {
    "GET / HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Connection: keep-alive\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: none\r\n"
    "\r\n",

    "GET /static/css/site.min.css?v=20240611 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n"
    "Accept: text/css,*/*;q=0.1\r\n"
    "Accept-Language: en-GB,en;q=0.9\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://www.example.com/\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: _ga=GA1.2.1234567890.1700000000; session=8f14e45fceea167a5a36dedd4bea2543\r\n"
    "If-None-Match: \"3e9-66175eb83628d\"\r\n"
    "If-Modified-Since: Tue, 11 Jun 2024 10:00:00 GMT\r\n"
    "\r\n",

    "GET /images/logo.png HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Safari/605.1.15\r\n"
    "Accept: image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5\r\n"
    "Accept-Language: fr-FR,fr;q=0.9\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://www.example.com/static/css/site.min.css?v=20240611\r\n"
    "Sec-Fetch-Dest: image\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Connection: keep-alive\r\n"
    "\r\n",

    "POST /cgi-bin/form.cgi HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\n"
    "Content-Length: 27\r\n"
    "Origin: https://www.example.com\r\n"
    "Referer: https://www.example.com/form.html\r\n"
    "Connection: keep-alive\r\n"
    "\r\n",

    "GET /api/items?page=2&sort=name HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1\r\n"
    "Accept: application/json\r\n"
    "Accept-Language: de-DE,de;q=0.9\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl\r\n"
    "Origin: https://www.example.com\r\n"
    "Sec-Fetch-Mode: cors\r\n"
    "Sec-Fetch-Site: same-site\r\n"
    "Connection: keep-alive\r\n"
    "\r\n",
};

#define NCORPUS (sizeof(corpus) / sizeof(corpus[0]))
#define MAX_ROUNDS 10000000L

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Parses every corpus request `rounds` times; returns bytes parsed. */
static size_t run(long rounds, const size_t *lens, qt_http_request *req)
{
    static const qt_http_limits lim = { 8190, 8190, 100 };
    size_t bytes = 0;
    int status;

    for (long r = 0; r < rounds; r++) {
        for (size_t i = 0; i < NCORPUS; i++) {
            ssize_t n = qt_http_parse_request(corpus[i], lens[i], &lim, req, &status);
            if (n != (ssize_t)lens[i]) {
                fprintf(stderr, "corpus request %zu did not parse (%zd)\n", i, n);
                exit(1);
            }
            bytes += (size_t)n;
        }
    }
    return bytes;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    size_t lens[NCORPUS], total = 0;
    static qt_http_request req;

    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 200000;
    for (size_t i = 0; i < NCORPUS; i++) {
        lens[i] = strlen(corpus[i]);
        total += lens[i];
    }
    run(rounds / 10 + 1, lens, &req);   /* warm caches and branch predictors */

    double t0 = now_ns();
    size_t bytes = run(rounds, lens, &req);
    double ns = now_ns() - t0;
    double nreq = (double)rounds * NCORPUS;

    printf("corpus: %zu requests, %zu bytes on average\n", (size_t)NCORPUS, total / NCORPUS);
    printf("parsed %.0f requests: %.1f ns/request, %.0f MB/s\n",
           nreq, ns / nreq, (double)bytes / (ns / 1e9) / 1e6);
    return 0;
}
