/*
 * The server of the nagle story: reads each 12-byte request whole, then answers it ("okNN\n").
 *
 * It has nothing to send until the request's second piece is in, so the first piece's ACK waits for the
 * kernel's delayed-ACK timer instead of riding on a reply. One client at a time.
 *
 * Usage: rpcd [PORT]     (default 8000)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQUEST 12

static void serve(int c, const struct sockaddr_in *peer) {
    char req[REQUEST + 1], reply[8];
    int served = 0;
    printf("client %s:%d connected\n", inet_ntoa(peer->sin_addr), ntohs(peer->sin_port));
    for (;;) {
        size_t got = 0;
        while (got < REQUEST) {
            ssize_t n = recv(c, req + got, REQUEST - got, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                printf("client %s:%d %s after %d requests\n", inet_ntoa(peer->sin_addr), ntohs(peer->sin_port),
                       n == 0 ? "closed" : strerror(errno), served);
                close(c);
                return;
            }
            got += (size_t)n;
        }
        req[REQUEST] = '\0';
        snprintf(reply, sizeof reply, "ok%.2s\n", req + 4);
        if (send(c, reply, 5, 0) < 0) { perror("send"); close(c); return; }
        served++;
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8000, one = 1, l;
    struct sockaddr_in addr;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (port <= 0 || port > 65535) { fprintf(stderr, "usage: rpcd [PORT]\n"); return 2; }
    l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0) { perror("socket"); return 1; }
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons((unsigned short)port);
    if (bind(l, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }
    if (listen(l, 8) < 0) { perror("listen"); return 1; }
    printf("rpcd listening on port %d\n", port);
    for (;;) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int c = accept(l, (struct sockaddr *)&peer, &len);
        if (c < 0) {
            if (errno == EINTR) continue;
            perror("accept");
            continue;
        }
        serve(c, &peer);
    }
}
