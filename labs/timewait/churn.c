/*
 * The client of the timewait story: short connections, one after another, to one server.
 *
 * Each connection: connect(), send one line, close() at once, so this side sends the first FIN (the
 * active close) and keeps the connection in TIME_WAIT for 60 s. With a small
 * net.ipv4.ip_local_port_range every local port toward the server is soon held by a TIME_WAIT socket
 * and connect() fails with EADDRNOTAVAIL ("Cannot assign requested address"): no SYN is sent at all.
 *
 * Usage: churn HOST PORT COUNT [RETRY_MS]
 *   COUNT     connections to make, one after another
 *   RETRY_MS  after a connect() that fails with EADDRNOTAVAIL, wait this long and try once more (0: no retry)
 * Exit status: 0 when every connection was made, 1 when one could not be (the errno is printed as perror
 * does, with its name), 2 on bad arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *errno_name(int e) {
    switch (e) {
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return "?";
    }
}

/* One connection: 0 when made (its local port in *port), else the errno of connect(). */
static int one(const struct sockaddr_in *server, int n, unsigned *port) {
    struct sockaddr_in local;
    socklen_t len = sizeof local;
    char line[64];
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) { perror("socket"); exit(1); }
    if (connect(s, (const struct sockaddr *)server, sizeof *server) < 0) {
        int e = errno;
        close(s);
        return e;
    }
    if (getsockname(s, (struct sockaddr *)&local, &len) == 0) *port = ntohs(local.sin_port);
    snprintf(line, sizeof line, "hello %d\n", n);
    if (send(s, line, strlen(line), 0) < 0) perror("send");
    close(s); /* the active close: our FIN goes first */
    return 0;
}

int main(int argc, char **argv) {
    struct addrinfo hints, *res;
    struct sockaddr_in server;
    int count, retry_ms, rc;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 4 || argc > 5 || (count = atoi(argv[3])) <= 0) {
        fprintf(stderr, "usage: churn HOST PORT COUNT [RETRY_MS]\n");
        return 2;
    }
    retry_ms = argc > 4 ? atoi(argv[4]) : 0;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(argv[1], argv[2], &hints, &res)) != 0) {
        fprintf(stderr, "churn: %s: %s\n", argv[1], gai_strerror(rc));
        return 2;
    }
    memcpy(&server, res->ai_addr, sizeof server);
    freeaddrinfo(res);

    for (int n = 1; n <= count; n++) {
        unsigned port = 0;
        int e = one(&server, n, &port);
        if (e == EADDRNOTAVAIL && retry_ms > 0) {
            struct timespec ts = {retry_ms / 1000, (long)(retry_ms % 1000) * 1000000L};
            printf("connection %d: connect: %s (%s); retrying in %d ms\n", n, strerror(e), errno_name(e), retry_ms);
            nanosleep(&ts, NULL);
            e = one(&server, n, &port);
            if (e == 0) {
                printf("connection %d: local port %u, reused from TIME_WAIT\n", n, port);
                continue;
            }
        }
        if (e != 0) {
            printf("connection %d: connect: %s (%s)\n", n, strerror(e), errno_name(e));
            return 1;
        }
        printf("connection %d: local port %u, closed by us first\n", n, port);
    }
    printf("all %d connections made\n", count);
    return 0;
}
