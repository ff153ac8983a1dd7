/*
 * svc: a small line service (it answers each line in upper case), one thread per client.
 *
 * Its bug is the most common cause of CLOSE_WAIT in a real service: when a client hangs up
 * (recv() returns 0) the handler returns without close(). The kernel has acked the client's
 * FIN, but the socket stays in CLOSE_WAIT, owned by svc, until the process exits. A client
 * that says "quit" is closed properly, so the leak shows only when clients hang up.
 *
 * Usage: svc [PORT]   (default 8000)
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[512];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return NULL;  /* BUG: the client hung up, and fd is never closed */
        if (n >= 4 && strncmp(buf, "quit", 4) == 0) {
            send(fd, "bye\r\n", 5, 0);
            close(fd);
            return NULL;
        }
        for (ssize_t i = 0; i < n; i++)
            buf[i] = (char)toupper((unsigned char)buf[i]);
        send(fd, buf, (size_t)n, 0);
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 16) < 0) {
        perror("svc");
        return 1;
    }
    printf("svc listening on port %d\n", port);
    fflush(stdout);
    for (;;) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int fd = accept(lfd, (struct sockaddr *)&peer, &len);
        if (fd < 0)
            continue;
        printf("svc: client %s:%d connected\n", inet_ntoa(peer.sin_addr), ntohs(peer.sin_port));
        fflush(stdout);
        pthread_t t;
        pthread_create(&t, NULL, serve, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}
