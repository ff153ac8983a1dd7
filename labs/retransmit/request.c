/*
 * The client of the retransmit story: one connection, one request written in two segments, then a wait
 * for the server's echo of it.
 *
 * Usage: request HOST PORT SPORT [USER_TIMEOUT_MS]
 *        request echo PORT      (the server: each connection's bytes sent back, a process per connection)
 * Connects from port SPORT with TCP_NODELAY (so each write leaves as its own segment at once) and, when
 * USER_TIMEOUT_MS is given, TCP_USER_TIMEOUT: how long sent data may stay unacknowledged before the kernel
 * gives up on the connection. Then, for each line on stdin, it writes the request: a head segment
 * ("head of request N") and a tail segment ("tail of request N"), two segments in flight, so a lost tail
 * can be repaired by a tail loss probe before the retransmission timer. It reads until the whole echo is
 * back and says how long that took; or says how a call failed, with errno's name and the time since the
 * write, as the story tells it: "recv failed after 3.004 s: ETIMEDOUT (Connection timed out)".
 * At the end of its input it keeps the connection open until it fails or a signal ends the program.
 * Exit status: 1 when the connection fails, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static const char *errname(int e) {
    switch (e) {
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    default: return "E?";
    }
}

static void fail(const char *what, int e, double since) {
    if (since > 0)
        printf("%s failed after %.3f s: %s (%s)\n", what, now() - since, errname(e), strerror(e));
    else
        printf("%s failed: %s (%s)\n", what, errname(e), strerror(e));
    exit(1);
}

static void write_all(int s, const char *buf, size_t len, double since) {
    while (len > 0) {
        ssize_t n = write(s, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("write", errno, since);
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* The story's server: accept on PORT, and in a child per connection send back what arrives until the end. */
static int serve_echo(const char *port) {
    struct sockaddr_in a;
    int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(port));
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 16) < 0) fail("listen", errno, 0);
    signal(SIGCHLD, SIG_IGN);
    printf("echoing on port %s\n", port);
    for (;;) {
        char buf[4096];
        ssize_t n;
        int c = accept(l, NULL, NULL);
        if (c < 0) continue;
        if (fork() == 0) {
            close(l);
            while ((n = recv(c, buf, sizeof buf, 0)) > 0) write_all(c, buf, (size_t)n, 0);
            _exit(0);
        }
        close(c);
    }
}

int main(int argc, char **argv) {
    struct addrinfo hints, *res;
    struct sockaddr_in local;
    char line[256], head[64], tail[64], echo[256];
    int s, rc, one = 1, requests = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && !strcmp(argv[1], "echo")) return serve_echo(argv[2]);
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: request HOST PORT SPORT [USER_TIMEOUT_MS] | request echo PORT\n");
        return 2;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(argv[1], argv[2], &hints, &res)) != 0) {
        fprintf(stderr, "request: %s: %s\n", argv[1], gai_strerror(rc));
        return 2;
    }
    s = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (argc == 5) {
        unsigned int ms = (unsigned int)atoi(argv[4]);
        if (setsockopt(s, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) < 0) fail("setsockopt TCP_USER_TIMEOUT", errno, 0);
        printf("TCP_USER_TIMEOUT %u ms\n", ms);
    }
    memset(&local, 0, sizeof local);
    local.sin_family = AF_INET;
    local.sin_port = htons((unsigned short)atoi(argv[3]));
    if (bind(s, (struct sockaddr *)&local, sizeof local) < 0) fail("bind", errno, 0);
    if (connect(s, res->ai_addr, res->ai_addrlen) < 0) fail("connect", errno, 0);
    freeaddrinfo(res);
    printf("connected to %s:%s from port %s\n", argv[1], argv[2], argv[3]);
    while (fgets(line, sizeof line, stdin)) {
        size_t want, got = 0;
        double t0;
        requests++;
        snprintf(head, sizeof head, "head of request %d\n", requests);
        snprintf(tail, sizeof tail, "tail of request %d\n", requests);
        want = strlen(head) + strlen(tail);
        t0 = now();
        write_all(s, head, strlen(head), t0);
        write_all(s, tail, strlen(tail), t0);
        printf("sent request %d in two segments\n", requests);
        while (got < want) {
            ssize_t n = recv(s, echo, sizeof echo, 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                fail("recv", errno, t0);
            }
            if (n == 0) { printf("recv: end of stream after %.3f s\n", now() - t0); return 1; }
            got += (size_t)n;
        }
        printf("echo of request %d back after %.3f s\n", requests, now() - t0);
    }
    /* hold the connection until it fails (a poll that returns only for an error or the peer's end) */
    for (;;) {
        struct pollfd p = {s, POLLRDHUP, 0};
        if (poll(&p, 1, -1) > 0) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) fail("connection", err, 0);
            printf("the peer closed the connection\n");
            return 1;
        }
    }
}
