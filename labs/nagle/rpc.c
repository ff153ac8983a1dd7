/*
 * The client of the nagle story: small requests written in two pieces, then a read of the reply.
 *
 * Each request is a 6-byte header ("headNN") and a 6-byte body ("bodyNN"), each its own write(), then
 * the client reads the server's reply ("okNN\n"). With Nagle's algorithm on (the default), the body is a
 * small segment while the header is not yet acknowledged, so the kernel holds it; the server acknowledges
 * the header only when its delayed-ACK timer fires (about 40 ms on Linux), since it has nothing to send
 * until the whole request is in. With TCP_NODELAY the body leaves at once and the round trip is the
 * network's.
 *
 * Usage: rpc HOST PORT COUNT [nodelay]
 * Prints each request's round trip (from the header's write to the reply's last byte) and the median of
 * requests 3 to COUNT (the first ones can be quick: Linux acknowledges at once at a connection's start).
 * Exit status: 0, or 1 when the connection fails, 2 on bad arguments.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUESTS 99

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void write_all(int s, const char *buf, size_t len, const char *what) {
    while (len > 0) {
        ssize_t n = write(s, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            printf("write %s: %s\n", what, strerror(errno));
            exit(1);
        }
        buf += n;
        len -= (size_t)n;
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    struct addrinfo hints, *res;
    double rtt[MAX_REQUESTS];
    int count, nodelay, s, rc, one = 1;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 4 || argc > 5 || (count = atoi(argv[3])) <= 0 || count > MAX_REQUESTS
        || (argc == 5 && strcmp(argv[4], "nodelay") != 0)) {
        fprintf(stderr, "usage: rpc HOST PORT COUNT [nodelay]   (COUNT 1-%d)\n", MAX_REQUESTS);
        return 2;
    }
    nodelay = argc == 5;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(argv[1], argv[2], &hints, &res)) != 0) {
        fprintf(stderr, "rpc: %s: %s\n", argv[1], gai_strerror(rc));
        return 2;
    }
    s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) { perror("socket"); return 1; }
    if (nodelay && setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
        perror("setsockopt TCP_NODELAY");
        return 1;
    }
    if (connect(s, res->ai_addr, res->ai_addrlen) < 0) { perror("connect"); return 1; }
    freeaddrinfo(res);
    printf("connected, TCP_NODELAY %s\n", nodelay ? "on" : "off (Nagle's algorithm on)");

    for (int i = 1; i <= count; i++) {
        char head[7], body[7], reply[6];
        size_t got = 0;
        double t0;
        snprintf(head, sizeof head, "head%02d", i);
        snprintf(body, sizeof body, "body%02d", i);
        t0 = now_ms();
        write_all(s, head, 6, "header");
        write_all(s, body, 6, "body");
        while (got < 5) {
            ssize_t n = read(s, reply + got, 5 - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                printf("read reply %d: %s\n", i, n == 0 ? "the server closed the connection" : strerror(errno));
                return 1;
            }
            got += (size_t)n;
        }
        rtt[i - 1] = now_ms() - t0;
        printf("request %02d: %.3f ms\n", i, rtt[i - 1]);
    }
    close(s);
    if (count >= 3) {
        qsort(rtt + 2, (size_t)count - 2, sizeof rtt[0], cmp);
        printf("median round trip of requests 3-%d: %.3f ms\n", count, rtt[2 + (count - 2) / 2]);
    }
    return 0;
}
