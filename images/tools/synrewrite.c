/*
 * synrewrite: give this host's outgoing TCP SYNs a Windows fingerprint.
 *
 * Usage: synrewrite QUEUE_NUM WINDOW WSCALE TTL        e.g. synrewrite 0 8192 8 128
 *
 * It is the NFQUEUE end of
 *   iptables -t mangle -A OUTPUT -p tcp --tcp-flags SYN,ACK,RST SYN -j NFQUEUE --queue-num N
 * and runs in a sidecar that shares the host's network namespace (CAP_NET_ADMIN).
 * Each queued SYN (SYN set, ACK clear) is rewritten and reinjected (NF_ACCEPT
 * with the new packet):
 *   IP TTL         = TTL                                  (IP checksum recomputed)
 *   TCP window     = WINDOW
 *   TCP options    = [mss <original mss>, nop, wscale WSCALE, nop, nop, sackOK]  (12 bytes)
 * The TCP header grows or shrinks to hold exactly these options (data offset and
 * IP total length follow), any SYN payload is kept, and the TCP checksum is
 * recomputed. Anything else that reaches the queue is accepted unchanged.
 *
 * Output (line-buffered): "synrewrite ready" once bound to the queue, then one
 * "rewrote SYN a.b.c.d:P > e.f.g.h:Q ..." line per rewritten SYN.
 * SIGTERM/SIGINT end it cleanly (queue unbound, exit status 0).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NEW_OPTS_LEN 12
#define MAX_PKT 65535

static volatile sig_atomic_t stop_requested = 0;
static unsigned int opt_window, opt_wscale, opt_ttl;
static unsigned char outbuf[MAX_PKT];

static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static uint16_t get16(const unsigned char *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static void put16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }

/* One's-complement sum of a byte range (big-endian 16-bit words). */
static uint32_t sum_bytes(uint32_t sum, const unsigned char *p, size_t len) {
    while (len > 1) { sum += get16(p); p += 2; len -= 2; }
    if (len) sum += (uint32_t)p[0] << 8;
    return sum;
}

static uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

static void fmt_opts(char *out, size_t n, const unsigned char *o, size_t len) {
    size_t i = 0, used = 0;
    int w;
    used += (size_t)snprintf(out + used, n - used, "[");
    while (i < len && used < n) {
        unsigned kind = o[i];
        const char *sep = used > 1 ? "," : "";
        if (kind == 0) { w = snprintf(out + used, n - used, "%seol", sep); used += (size_t)w; break; }
        if (kind == 1) { w = snprintf(out + used, n - used, "%snop", sep); used += (size_t)w; i++; continue; }
        if (i + 1 >= len || o[i + 1] < 2 || i + o[i + 1] > len) {
            w = snprintf(out + used, n - used, "%sbad", sep); used += (size_t)w; break;
        }
        unsigned olen = o[i + 1];
        if (kind == 2 && olen == 4) w = snprintf(out + used, n - used, "%smss %u", sep, get16(o + i + 2));
        else if (kind == 3 && olen == 3) w = snprintf(out + used, n - used, "%swscale %u", sep, o[i + 2]);
        else if (kind == 4) w = snprintf(out + used, n - used, "%ssackOK", sep);
        else if (kind == 8 && olen == 10) w = snprintf(out + used, n - used, "%sTS", sep);
        else w = snprintf(out + used, n - used, "%sopt-%u", sep, kind);
        used += (size_t)w;
        i += olen;
    }
    if (used < n) snprintf(out + used, n - used, "]");
    out[n - 1] = '\0';
}

/* The MSS option's value, or -1 when there is none. */
static int find_mss(const unsigned char *o, size_t len) {
    size_t i = 0;
    while (i < len) {
        if (o[i] == 0) break;
        if (o[i] == 1) { i++; continue; }
        if (i + 1 >= len || o[i + 1] < 2 || i + o[i + 1] > len) break;
        if (o[i] == 2 && o[i + 1] == 4) return get16(o + i + 2);
        i += o[i + 1];
    }
    return -1;
}

/* Rewrites the SYN in pkt into outbuf; returns the new length, or -1 to leave it alone. */
static int rewrite(const unsigned char *pkt, int len) {
    if (len < 20 || (pkt[0] >> 4) != 4) return -1;
    size_t ihl = (size_t)(pkt[0] & 0x0F) * 4;
    size_t tot = get16(pkt + 2);
    if (ihl < 20 || tot > (size_t)len || tot < ihl + 20 || pkt[9] != IPPROTO_TCP) return -1;
    if ((get16(pkt + 6) & 0x3FFF) != 0) return -1; /* a fragment: never for a SYN, leave it */
    const unsigned char *tcp = pkt + ihl;
    size_t doff = (size_t)(tcp[12] >> 4) * 4;
    unsigned flags = tcp[13];
    if (doff < 20 || ihl + doff > tot) return -1;
    if (!(flags & 0x02) || (flags & 0x10)) return -1; /* SYN without ACK only */

    const unsigned char *opts = tcp + 20;
    size_t optlen = doff - 20;
    size_t paylen = tot - ihl - doff;
    int mss = find_mss(opts, optlen);
    if (mss < 0) mss = 536; /* RFC 879 default, what the peer assumes without the option */
    size_t newtot = ihl + 20 + NEW_OPTS_LEN + paylen;
    if (newtot > MAX_PKT) return -1;

    /* IP header, with the new TTL and total length */
    memcpy(outbuf, pkt, ihl);
    put16(outbuf + 2, (uint16_t)newtot);
    outbuf[8] = (unsigned char)opt_ttl;
    put16(outbuf + 10, 0);
    put16(outbuf + 10, fold(sum_bytes(0, outbuf, ihl)));

    /* TCP header: ports, seq, ack, flags as they were; new data offset and window */
    unsigned char *t = outbuf + ihl;
    memcpy(t, tcp, 20);
    t[12] = (unsigned char)((((20 + NEW_OPTS_LEN) / 4) << 4) | (tcp[12] & 0x0F));
    unsigned old_win = get16(tcp + 14);
    put16(t + 14, (uint16_t)opt_window);
    put16(t + 16, 0); /* checksum, below */
    unsigned char *o = t + 20;
    o[0] = 2; o[1] = 4; put16(o + 2, (uint16_t)mss); /* mss */
    o[4] = 1;                                        /* nop */
    o[5] = 3; o[6] = 3; o[7] = (unsigned char)opt_wscale; /* wscale */
    o[8] = 1; o[9] = 1;                              /* nop, nop */
    o[10] = 4; o[11] = 2;                            /* sackOK */
    memcpy(o + NEW_OPTS_LEN, tcp + doff, paylen);

    /* TCP checksum over the pseudo-header and the segment */
    size_t tcplen = newtot - ihl;
    uint32_t sum = 0;
    sum = sum_bytes(sum, outbuf + 12, 8); /* src, dst */
    sum += IPPROTO_TCP;
    sum += (uint32_t)tcplen;
    sum = sum_bytes(sum, t, tcplen);
    put16(t + 16, fold(sum));

    char before[160], after[160], src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];
    fmt_opts(before, sizeof before, opts, optlen);
    fmt_opts(after, sizeof after, o, NEW_OPTS_LEN);
    inet_ntop(AF_INET, pkt + 12, src, sizeof src);
    inet_ntop(AF_INET, pkt + 16, dst, sizeof dst);
    printf("rewrote SYN %s:%u > %s:%u ttl %u->%u win %u->%u opts %s->%s len %zu->%zu\n",
           src, get16(tcp), dst, get16(tcp + 2), pkt[8], opt_ttl, old_win, opt_window, before, after, tot, newtot);
    fflush(stdout);
    return (int)newtot;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *nfmsg, struct nfq_data *nfa, void *data) {
    (void)nfmsg; (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (ph == NULL) return 0;
    uint32_t id = ntohl(ph->packet_id);
    unsigned char *pkt = NULL;
    int len = nfq_get_payload(nfa, &pkt);
    int newlen = len > 0 ? rewrite(pkt, len) : -1;
    if (newlen < 0) return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    return nfq_set_verdict(qh, id, NF_ACCEPT, (uint32_t)newlen, outbuf);
}

static int parse_uint(const char *s, unsigned max, unsigned *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v > max) return -1;
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv) {
    unsigned qnum;
    if (argc != 5 || parse_uint(argv[1], 65535, &qnum) || parse_uint(argv[2], 65535, &opt_window) ||
        parse_uint(argv[3], 14, &opt_wscale) || parse_uint(argv[4], 255, &opt_ttl) || opt_ttl == 0) {
        fprintf(stderr, "usage: synrewrite QUEUE_NUM WINDOW WSCALE(0-14) TTL(1-255)\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: recv() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct nfq_handle *h = nfq_open();
    if (h == NULL) { perror("synrewrite: nfq_open"); return 1; }
    /* Needed by kernels before 3.8 only; harmless (and may fail) elsewhere. */
    nfq_unbind_pf(h, AF_INET);
    if (nfq_bind_pf(h, AF_INET) < 0) { /* also a no-op on modern kernels */ }
    struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)qnum, &on_packet, NULL);
    if (qh == NULL) {
        fprintf(stderr, "synrewrite: cannot bind queue %u: %s\n", qnum, strerror(errno));
        nfq_close(h);
        return 1;
    }
    if (nfq_set_mode(qh, NFQNL_COPY_PACKET, 0xFFFF) < 0) {
        fprintf(stderr, "synrewrite: cannot set copy mode: %s\n", strerror(errno));
        nfq_destroy_queue(qh);
        nfq_close(h);
        return 1;
    }
    int fd = nfq_fd(h);
    printf("synrewrite ready (queue %u: win %u wscale %u ttl %u)\n", qnum, opt_window, opt_wscale, opt_ttl);
    fflush(stdout);

    static char buf[MAX_PKT + 4096] __attribute__((aligned));
    int rc = 0;
    while (!stop_requested) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) { /* the kernel dropped queued packets; keep going */
                fprintf(stderr, "synrewrite: queue overrun (ENOBUFS)\n");
                continue;
            }
            perror("synrewrite: recv");
            rc = 1;
            break;
        }
        nfq_handle_packet(h, buf, (int)n);
    }
    nfq_destroy_queue(qh);
    nfq_close(h);
    printf("synrewrite stopped\n");
    return rc;
}
