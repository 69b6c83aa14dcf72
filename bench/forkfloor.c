/*
 * The CGI floor: how many times per second this machine can posix_spawn a
 * program, let it run to completion and reap it, with no server involved.
 * A CGI handler cannot beat this, so bench/run reports it next to the
 * servers' CGI figures.  The child's stdout goes to /dev/null, like a CGI
 * whose output is discarded; a CGI environment is given so the program
 * takes the same path as under a server.
 *
 * Usage: forkfloor PROGRAM SECONDS MAXCOUNT [PARALLEL]
 * PARALLEL (default 1) programs run at once: as each one is reaped the
 * next is spawned, as a server with that many CGI clients would.
 * Prints "spawns=N seconds=S per_sec=R cpu_us=C" and exits 0, or 1 on
 * error; C is the CPU time (user + system, this process and the reaped
 * programs) per spawn, comparable with a server's CPU per CGI request.
 * Bounded: stops starting programs at SECONDS of wall time or MAXCOUNT
 * spawns, first reached, then reaps the ones still running.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* User + system seconds of who (RUSAGE_SELF or RUSAGE_CHILDREN). */
static double cpu_s(int who)
{
    struct rusage ru;

    if (getrusage(who, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Starts prog with stdout on /dev/null; its pid, or -1. */
static pid_t spawn_one(const char *prog, const posix_spawn_file_actions_t *fa)
{
    static char *const envp[] = {
        "GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "QUERY_STRING=",
        "SERVER_PROTOCOL=HTTP/1.1", "PATH=/usr/bin:/bin", NULL };
    char *argv[] = { (char *)prog, NULL };
    pid_t pid;

    return posix_spawn(&pid, prog, fa, NULL, argv, envp) == 0 ? pid : -1;
}

/* Reaps one of our programs; 0 if it exited with status 0. */
static int reap_one(void)
{
    int status;

    if (waitpid(-1, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    posix_spawn_file_actions_t fa;
    double seconds, t0, elapsed, cpu0;
    long max, started = 0, done = 0, parallel = 1;
    int rc = 1;

    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: forkfloor PROGRAM SECONDS MAXCOUNT [PARALLEL]\n");
        return 2;
    }
    seconds = atof(argv[2]);
    max = atol(argv[3]);
    if (argc == 5)
        parallel = atol(argv[4]);
    if (seconds <= 0 || seconds > 600 || max <= 0 || parallel < 1 || parallel > 256) {
        fprintf(stderr, "forkfloor: SECONDS in (0, 600], MAXCOUNT > 0, PARALLEL in [1, 256]\n");
        return 2;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    cpu0 = cpu_s(RUSAGE_SELF) + cpu_s(RUSAGE_CHILDREN);
    t0 = now_s();
    for (;;) {
        bool more = started < max && now_s() - t0 < seconds;

        if (more && started - done < parallel) {
            if (spawn_one(argv[1], &fa) < 0)
                break;
            started++;
            continue;
        }
        if (started == done)
            break;
        if (reap_one() != 0)
            break;
        done++;
    }
    elapsed = now_s() - t0;
    if (started == 0 || done != started) {
        fprintf(stderr, "forkfloor: %s failed after %ld spawns\n", argv[1], done);
        while (done < started && waitpid(-1, NULL, 0) > 0)
            done++;             /* leave no zombie behind */
        goto cleanup;
    }
    printf("spawns=%ld seconds=%.3f per_sec=%.1f cpu_us=%.1f\n", done, elapsed,
           (double)done / elapsed,
           (cpu_s(RUSAGE_SELF) + cpu_s(RUSAGE_CHILDREN) - cpu0) * 1e6 / (double)done);
    rc = 0;
cleanup:
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}
