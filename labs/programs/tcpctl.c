/* tcpctl: one TCP socket at a time, driven by commands, each answered with one line.
 *
 * The war-story labs' own program. Commands come from the arguments first (one command and its
 * operands after another), then one per line on stdin (a lab's `send` steps type them), so a story
 * can say exactly when its program calls connect(), recv() or close(). Every call's outcome is printed
 * with errno's name, as a story tells it: "recv failed: ECONNRESET (Connection reset by peer)".
 *
 *   listen PORT BACKLOG      a listener on PORT with this backlog (SO_REUSEADDR)
 *   accept                   accept one connection: it becomes the current socket
 *   connect HOST PORT        connect to HOST:PORT: the current socket
 *   bind SPORT               the next connect binds its socket to local port SPORT (SO_REUSEADDR) first: a
 *                            connection a lab's impairment or firewall can tell apart by its port
 *   burst HOST PORT N SPORT  N connections at once (non-blocking, from ports SPORT, SPORT+1, ...),
 *                            each reported once it completes or fails, or after 3 s; kept open
 *                            (blocking again), the last one the current socket
 *   delayack                 the next connection delays its handshake's last ACK (TCP_QUICKACK off
 *                            before connect(): Linux then holds it for its delayed-ACK timer, 200 ms),
 *                            as a real network's round trip would
 *   rcvbuf N                 SO_RCVBUF N on the sockets of every later listen, connect or burst, set before
 *                            listen() or connect() (the window scale is chosen then; the kernel doubles N, about
 *                            half of it is window): a reader whose window closes soon once it stops reading
 *   pick SPORT               the burst's connection from port SPORT becomes the current socket
 *   send TEXT                write TEXT and a newline to the current socket
 *   write TEXT               one write() of TEXT as is, with C escapes (\n, \r, \t, \\, \xHH) and no newline
 *                            added: a segment of any bytes
 *   fill N                   write N bytes of filler ('.'), one write() (repeated only for what it did not take)
 *   recv                     one read() of the current socket (blocks until data, EOF or an error)
 *   read N                   read() until N bytes came (or EOF, or an error): a request read whole
 *   nodelay                  TCP_NODELAY on the current socket (Nagle's algorithm off)
 *   keepalive                SO_KEEPALIVE on the current socket (its timers: the host's net.ipv4.tcp_keepalive_*)
 *   use N                    the Nth connection accepted (1, 2, ...) becomes the current socket
 *   pending                  wait until the current socket has data, and say how much, without reading it
 *   linger SECONDS           SO_LINGER {on, SECONDS} on the current socket (0: close() resets)
 *   close                    close() the current socket
 *   exit                     end the program (status 0)
 *
 * SIGPIPE is ignored, so a write to a reset connection reports EPIPE instead of killing the program.
 * At the end of its input it keeps running, holding its sockets (a listener that never accepts, say),
 * until `exit` or a signal: as a lab host's own program its stdin is empty.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BURST 64
#define MAX_ACCEPTED 256

static int listener = -1;
static int current = -1;
static int delay_ack = 0;
static int bind_port = 0; /* the local port of the next connect (0: the kernel's choice) */
static int rcv_buf = 0; /* SO_RCVBUF of the next listen, connect or burst (0: the kernel's) */
static int burst_fds[MAX_BURST], burst_ports[MAX_BURST], bursts = 0;
static int accepted_fds[MAX_ACCEPTED], accepted = 0;

static const char *errname(int e) {
    switch (e) {
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case ENOTCONN: return "ENOTCONN";
    case EBADF: return "EBADF";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EINPROGRESS: return "EINPROGRESS";
    case EAGAIN: return "EAGAIN";
    case EINVAL: return "EINVAL";
    default: return "E?";
    }
}

static void failed(const char *what, int e) {
    printf("%s failed: %s (%s)\n", what, errname(e), strerror(e));
}

static int resolve(const char *host, const char *port, struct sockaddr_in *out) {
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        printf("resolve %s failed: %s\n", host, gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, sizeof *out);
    freeaddrinfo(res);
    return 0;
}

static void set_rcvbuf(int fd) {
    if (rcv_buf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv_buf, sizeof rcv_buf) < 0)
        failed("setsockopt SO_RCVBUF", errno);
}

static void do_listen(const char *port, const char *backlog) {
    int one = 1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(port));
    listener = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    set_rcvbuf(listener);
    if (bind(listener, (struct sockaddr *)&a, sizeof a) < 0) { failed("bind", errno); return; }
    if (listen(listener, atoi(backlog)) < 0) { failed("listen", errno); return; }
    printf("listening on port %s with backlog %s\n", port, backlog);
}

static void do_accept(void) {
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    int fd = accept(listener, (struct sockaddr *)&peer, &len);
    if (fd < 0) { failed("accept", errno); return; }
    current = fd;
    if (accepted < MAX_ACCEPTED) accepted_fds[accepted++] = fd;
    printf("accepted %s:%d\n", inet_ntoa(peer.sin_addr), ntohs(peer.sin_port));
}

static void do_use(const char *n) {
    int i = atoi(n);
    if (i < 1 || i > accepted) { printf("use: no connection %s accepted\n", n); return; }
    current = accepted_fds[i - 1];
    printf("connection %d is the current socket\n", i);
}

static void do_connect(const char *host, const char *port) {
    struct sockaddr_in a;
    if (resolve(host, port, &a) < 0) return;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    set_rcvbuf(fd);
    if (bind_port) {
        int one = 1;
        struct sockaddr_in local;
        memset(&local, 0, sizeof local);
        local.sin_family = AF_INET;
        local.sin_port = htons((unsigned short)bind_port);
        bind_port = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) { failed("bind", errno); close(fd); return; }
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { failed("connect", errno); close(fd); return; }
    current = fd;
    printf("connected to %s:%s\n", host, port);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void do_burst(const char *host, const char *port, const char *count, const char *sport) {
    struct sockaddr_in a;
    int n = atoi(count), first = atoi(sport), fds[MAX_BURST], done[MAX_BURST];
    if (n < 1 || n > MAX_BURST) { printf("burst: 1 to %d connections\n", MAX_BURST); return; }
    if (resolve(host, port, &a) < 0) return;
    for (int i = 0; i < n; i++) {
        int one = 1;
        struct sockaddr_in local;
        memset(&local, 0, sizeof local);
        local.sin_family = AF_INET;
        local.sin_port = htons((unsigned short)(first + i));
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        set_rcvbuf(fds[i]);
        if (delay_ack) {
            int zero = 0;
            setsockopt(fds[i], IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero);
            delay_ack = 0;
        }
        done[i] = 0;
        if (bind(fds[i], (struct sockaddr *)&local, sizeof local) < 0) {
            printf("connection %d from port %d: ", i + 1, first + i);
            failed("bind", errno);
            done[i] = 1;
            continue;
        }
        if (connect(fds[i], (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
            printf("connection %d from port %d: ", i + 1, first + i);
            failed("connect", errno);
            done[i] = 1;
        }
    }
    double deadline = now() + 3.0;
    for (;;) {
        struct pollfd p[MAX_BURST];
        int waiting = 0, map[MAX_BURST];
        for (int i = 0; i < n; i++)
            if (!done[i]) { p[waiting].fd = fds[i]; p[waiting].events = POLLOUT; map[waiting++] = i; }
        double left = deadline - now();
        if (waiting == 0 || left <= 0) break;
        if (poll(p, (nfds_t)waiting, (int)(left * 1000) + 1) <= 0) continue;
        for (int k = 0; k < waiting; k++) {
            if (!p[k].revents) continue;
            int i = map[k], err = 0;
            socklen_t len = sizeof err;
            getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len);
            printf("connection %d from port %d: ", i + 1, first + i);
            if (err) failed("connect", err); else printf("connected to %s:%s\n", host, port);
            done[i] = 1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (!done[i]) printf("connection %d from port %d: connect pending after 3 s (no SYN-ACK)\n", i + 1, first + i);
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) & ~O_NONBLOCK);
        if (bursts < MAX_BURST) { burst_fds[bursts] = fds[i]; burst_ports[bursts++] = first + i; }
    }
    current = fds[n - 1];
}

static void do_pick(const char *sport) {
    for (int i = 0; i < bursts; i++)
        if (burst_ports[i] == atoi(sport)) {
            current = burst_fds[i];
            printf("the connection from port %s is the current socket\n", sport);
            return;
        }
    printf("pick: no connection from port %s\n", sport);
}

static void do_send(const char *text) {
    char buf[4096];
    int len = snprintf(buf, sizeof buf, "%s\n", text);
    ssize_t n = send(current, buf, (size_t)len, 0);
    if (n < 0) failed("send", errno); else printf("sent %zd bytes\n", n);
}

static int unescape(const char *text, char *out, int room) {
    int n = 0;
    for (const char *c = text; *c && n < room; c++) {
        if (*c != '\\' || !c[1]) { out[n++] = *c; continue; }
        c++;
        if (*c == 'n') out[n++] = '\n';
        else if (*c == 'r') out[n++] = '\r';
        else if (*c == 't') out[n++] = '\t';
        else if (*c == 'x' && c[1] && c[2]) {
            char hex[3] = {c[1], c[2], 0};
            out[n++] = (char)strtol(hex, NULL, 16);
            c += 2;
        } else out[n++] = *c;
    }
    return n;
}

static void do_write(const char *text) {
    char buf[4096];
    int len = unescape(text, buf, (int)sizeof buf);
    ssize_t n = write(current, buf, (size_t)len);
    if (n < 0) failed("write", errno); else printf("wrote %zd bytes\n", n);
}

static void do_fill(const char *count) {
    size_t want = (size_t)atol(count), done = 0;
    char *buf = malloc(want ? want : 1);
    if (!buf) { failed("fill", errno); return; }
    memset(buf, '.', want);
    while (done < want) {
        ssize_t n = write(current, buf + done, want - done);
        if (n < 0) { failed("write", errno); break; }
        done += (size_t)n;
    }
    free(buf);
    printf("wrote %zu bytes\n", done);
}

static void do_read(const char *count) {
    char buf[4096];
    size_t want = (size_t)atol(count), got = 0;
    while (got < want) {
        size_t room = want - got < sizeof buf ? want - got : sizeof buf;
        ssize_t n = recv(current, buf, room, 0);
        if (n < 0) { failed("read", errno); return; }
        if (n == 0) { printf("read %zu bytes, then the end of stream (the peer's FIN)\n", got); return; }
        got += (size_t)n;
    }
    printf("read %zu bytes\n", got);
}

static void do_setopt(int level, int name, const char *what) {
    int one = 1;
    if (setsockopt(current, level, name, &one, sizeof one) < 0) failed(what, errno);
    else printf("%s on\n", what);
}

static void do_recv(void) {
    char buf[4096];
    ssize_t n = recv(current, buf, sizeof buf - 1, 0);
    if (n < 0) { failed("recv", errno); return; }
    if (n == 0) { printf("recv: end of stream (the peer's FIN)\n"); return; }
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    printf("received %zd bytes: %s\n", n, buf);
}

static void do_pending(void) {
    struct pollfd p = {current, POLLIN, 0};
    int n = 0;
    poll(&p, 1, -1);
    ioctl(current, FIONREAD, &n);
    printf("%d bytes wait unread\n", n);
}

static void do_linger(const char *secs) {
    struct linger l = {1, atoi(secs)};
    if (setsockopt(current, SOL_SOCKET, SO_LINGER, &l, sizeof l) < 0) failed("setsockopt SO_LINGER", errno);
    else printf("SO_LINGER {on, %s}\n", secs);
}

static void do_close(void) {
    if (close(current) < 0) failed("close", errno); else printf("closed\n");
    current = -1;
}

/* Runs the command at words[0]; returns how many words it took, 0 for an unknown one, -1 to exit. */
static int run(char **w, int n) {
    const char *c = w[0];
    if (!strcmp(c, "listen") && n >= 3) { do_listen(w[1], w[2]); return 3; }
    if (!strcmp(c, "accept")) { do_accept(); return 1; }
    if (!strcmp(c, "connect") && n >= 3) { do_connect(w[1], w[2]); return 3; }
    if (!strcmp(c, "burst") && n >= 5) { do_burst(w[1], w[2], w[3], w[4]); return 5; }
    if (!strcmp(c, "delayack")) { delay_ack = 1; printf("the next handshake's last ACK is delayed\n"); return 1; }
    if (!strcmp(c, "bind") && n >= 2) { bind_port = atoi(w[1]); printf("the next connect is from port %d\n", bind_port); return 2; }
    if (!strcmp(c, "rcvbuf") && n >= 2) { rcv_buf = atoi(w[1]); printf("SO_RCVBUF %d on the next sockets\n", rcv_buf); return 2; }
    if (!strcmp(c, "pick") && n >= 2) { do_pick(w[1]); return 2; }
    if (!strcmp(c, "send") && n >= 2) { do_send(w[1]); return 2; }
    if (!strcmp(c, "write") && n >= 2) { do_write(w[1]); return 2; }
    if (!strcmp(c, "fill") && n >= 2) { do_fill(w[1]); return 2; }
    if (!strcmp(c, "recv")) { do_recv(); return 1; }
    if (!strcmp(c, "read") && n >= 2) { do_read(w[1]); return 2; }
    if (!strcmp(c, "nodelay")) { do_setopt(IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY"); return 1; }
    if (!strcmp(c, "keepalive")) { do_setopt(SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"); return 1; }
    if (!strcmp(c, "use") && n >= 2) { do_use(w[1]); return 2; }
    if (!strcmp(c, "pending")) { do_pending(); return 1; }
    if (!strcmp(c, "linger") && n >= 2) { do_linger(w[1]); return 2; }
    if (!strcmp(c, "close")) { do_close(); return 1; }
    if (!strcmp(c, "exit")) return -1;
    printf("unknown command: %s\n", c);
    return 0;
}

int main(int argc, char **argv) {
    char line[4096];
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc;) {
        int used = run(argv + i, argc - i);
        if (used < 0) return 0;
        if (used == 0) return 2;
        i += used;
    }
    while (fgets(line, sizeof line, stdin)) {
        char *w[6] = {0};
        int n = 0;
        line[strcspn(line, "\r\n")] = 0;
        /* the command, then its operands; the TEXT of send and write is the rest of the line */
        char *rest = line;
        while (n < 6 && rest && *rest) {
            while (*rest == ' ') rest++;
            if (!*rest) break;
            if (n == 1 && (!strcmp(w[0], "send") || !strcmp(w[0], "write"))) { w[n++] = rest; break; }
            w[n++] = rest;
            rest = strchr(rest, ' ');
            if (rest) *rest++ = 0;
        }
        if (n == 0) continue;
        if (run(w, n) < 0) return 0;
    }
    for (;;) pause();
}
