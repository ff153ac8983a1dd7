/*
 * The programs of the zero-window story: a bulk writer and a reader that may stop reading.
 *
 *   bulk write HOST PORT SPORT BYTES   connect from port SPORT, write BYTES (in 4 KB writes, blocking when the
 *                                      send buffer is full), say how long it took, close and exit 0
 *   bulk read PORT RCVBUF [now]        listen on PORT with SO_RCVBUF = RCVBUF (set before listen(), so the
 *                                      accepted socket has it) and accept one connection; with `now` read it
 *                                      at once, else read nothing until a line comes on stdin (the slow
 *                                      reader), then read to the end of the stream and say how much came
 *
 * A failed call is said with errno's name, as the story tells it: "write failed: ETIMEDOUT (...)"; exit 1.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
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
    default: return "E?";
    }
}

static int fail(const char *what, int e) {
    printf("%s failed: %s (%s)\n", what, errname(e), strerror(e));
    return 1;
}

static int do_write(const char *host, const char *port, const char *sport, long bytes) {
    struct addrinfo hints, *res;
    struct sockaddr_in local;
    char buf[4096];
    long sent = 0;
    int one = 1, rc, s;
    double t0;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        fprintf(stderr, "bulk: %s: %s\n", host, gai_strerror(rc));
        return 2;
    }
    s = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&local, 0, sizeof local);
    local.sin_family = AF_INET;
    local.sin_port = htons((unsigned short)atoi(sport));
    if (bind(s, (struct sockaddr *)&local, sizeof local) < 0) return fail("bind", errno);
    if (connect(s, res->ai_addr, res->ai_addrlen) < 0) return fail("connect", errno);
    freeaddrinfo(res);
    printf("connected to %s:%s from port %s\n", host, port, sport);
    memset(buf, 'x', sizeof buf);
    t0 = now();
    while (sent < bytes) {
        size_t chunk = bytes - sent < (long)sizeof buf ? (size_t)(bytes - sent) : sizeof buf;
        ssize_t n = write(s, buf, chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            printf("after %ld bytes: ", sent);
            return fail("write", errno);
        }
        sent += n;
    }
    printf("wrote %ld bytes in %.3f s\n", sent, now() - t0);
    if (close(s) < 0) return fail("close", errno);
    printf("closed\n");
    return 0;
}

static int do_read(const char *port, int rcvbuf, int at_once) {
    struct sockaddr_in a;
    char buf[65536], line[64];
    long got = 0;
    int one = 1, l, s, size;
    socklen_t len = sizeof size;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(port));
    l = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(l, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) return fail("setsockopt SO_RCVBUF", errno);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0) return fail("bind", errno);
    if (listen(l, 5) < 0) return fail("listen", errno);
    printf("listening on port %s\n", port);
    if ((s = accept(l, NULL, NULL)) < 0) return fail("accept", errno);
    getsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, &len);
    printf("accepted a connection: SO_RCVBUF %d (asked for %d; the kernel doubles it)\n", size, rcvbuf);
    if (!at_once) {
        printf("not reading\n");
        if (!fgets(line, sizeof line, stdin)) return 0;
        printf("reading\n");
    }
    for (;;) {
        ssize_t n = read(s, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("read", errno);
        }
        if (n == 0) break;
        got += n;
    }
    printf("read %ld bytes, then the end of the stream\n", got);
    close(s);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc == 6 && !strcmp(argv[1], "write")) return do_write(argv[2], argv[3], argv[4], atol(argv[5]));
    if ((argc == 4 || (argc == 5 && !strcmp(argv[4], "now"))) && !strcmp(argv[1], "read"))
        return do_read(argv[2], atoi(argv[3]), argc == 5);
    fprintf(stderr, "usage: bulk write HOST PORT SPORT BYTES | bulk read PORT RCVBUF [now]\n");
    return 2;
}
