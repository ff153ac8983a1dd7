/*
 * The server of the closewait story (SCENARIO.md, "The server program's behaviour").
 *
 * Single-threaded: it accepts one connection, reads from it until the peer
 * closes, closes it, and only then accepts the next one. A second client's
 * handshake completes in the kernel meanwhile and waits in the accept queue;
 * if that client closes first, its socket sits in CLOSE_WAIT with no owner.
 *
 * Usage: server [PORT [BACKLOG]]        (defaults: 8000, 5)
 * With the environment variable LAB_SERVER_CLOSE_ON_FIN=1 it is the "fixed"
 * variant: it serves each client in a child process, so every peer's FIN is
 * answered by close() and no CLOSE_WAIT lingers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void serve(int conn, const struct sockaddr_in *peer) {
    char buf[BUFSIZ + 1];
    printf("Accept client %s:%d\n", inet_ntoa(peer->sin_addr), ntohs(peer->sin_port));
    for (;;) {
        ssize_t n = recv(conn, buf, BUFSIZ, 0);
        if (n == 0) {
            printf("client %s:%d closed\n", inet_ntoa(peer->sin_addr), ntohs(peer->sin_port));
            break;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            printf("recv error from %s:%d: %s\n", inet_ntoa(peer->sin_addr), ntohs(peer->sin_port),
                   strerror(errno));
            break;
        }
        buf[n] = '\0';
        printf("recv from %s:%d: %s\n", inet_ntoa(peer->sin_addr), ntohs(peer->sin_port), buf);
    }
    close(conn);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    int backlog = argc > 2 ? atoi(argv[2]) : 5;
    const char *fixed = getenv("LAB_SERVER_CLOSE_ON_FIN");
    int concurrent = fixed != NULL && strcmp(fixed, "1") == 0;
    int one = 1;
    struct sockaddr_in addr;
    int lsock;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (port <= 0 || port > 65535 || backlog < 0) {
        fprintf(stderr, "usage: server [PORT [BACKLOG]]\n");
        return 2;
    }
    if (concurrent) signal(SIGCHLD, SIG_IGN); /* children reaped by the kernel */

    lsock = socket(AF_INET, SOCK_STREAM, 0);
    if (lsock < 0) { perror("socket"); return 1; }
    if (setsockopt(lsock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) { perror("setsockopt"); return 1; }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons((unsigned short)port);
    if (bind(lsock, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }
    if (listen(lsock, backlog) < 0) { perror("listen"); return 1; }
    printf("server listening on 0.0.0.0:%d (backlog %d, %s)\n", port, backlog,
           concurrent ? "one process per client" : "one client at a time");

    for (;;) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int conn = accept(lsock, (struct sockaddr *)&peer, &len);
        if (conn < 0) {
            if (errno == EINTR) continue;
            perror("accept");
            continue;
        }
        if (concurrent) {
            pid_t pid = fork();
            if (pid == 0) { close(lsock); serve(conn, &peer); _exit(0); }
            close(conn);
        } else {
            serve(conn, &peer);
        }
    }
}
