/* impair: an NFQUEUE program that impairs the packets iptables queues to it, one rule per queue.
 *
 * Usage: impair LOGFILE RULE...   where each RULE is one argv word
 *   QUEUE:NAME:CHOICE:VALUE:SEED:DATA[:DELAY_US:JITTER_US]
 *   CHOICE: nth (the VALUE-th packet), every (every VALUE-th), prob (each with probability VALUE per
 *   million, from SEED), all; DATA: 1 counts only TCP segments with a payload, 0 every packet.
 *   Without DELAY_US (or with -1) the chosen packets are dropped; with it they are held DELAY_US microseconds
 *   (plus a uniform 0..JITTER_US from SEED), then accepted; DELAY_US -2: they are accepted and a copy is sent
 *   after them through a raw socket (outgoing packets only), marked DUP_MARK so that the iptables rule, which
 *   skips that mark, does not queue the copy again.
 * Each chosen packet is one line of LOGFILE: "<epoch seconds> <rule> drop|delay|duplicate seq=<n> flags=<f>
 * len=<n>";
 * every other packet is accepted at once, unchanged. Says "impair ready" once every queue is bound. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define MAX_RULES 32
#define DUP_MARK 0x7a1
#define DUPLICATE (-2)

struct rule {
    int queue;
    char name[64];
    char action[8];
    unsigned long value;
    unsigned long long state;  /* the seeded generator's state */
    int data_only;
    unsigned long seen;
    long delay_us;  /* -1: drop */
    long jitter_us;
};

/* held packets, released in due order (a ring: fixed delays keep it sorted; jitter may reorder, as a link does) */
#define MAX_HELD 65536
struct held { struct nfq_q_handle *qh; unsigned int id; double due; };
static struct held held[MAX_HELD];
static int nheld;

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void release_due(void) {
    double t = now_mono();
    int kept = 0;
    for (int i = 0; i < nheld; i++) {
        if (held[i].due <= t) nfq_set_verdict(held[i].qh, held[i].id, NF_ACCEPT, 0, NULL);
        else held[kept++] = held[i];
    }
    nheld = kept;
}

static int next_wait_ms(void) {
    if (!nheld) return -1;
    double soonest = held[0].due;
    for (int i = 1; i < nheld; i++) if (held[i].due < soonest) soonest = held[i].due;
    double ms = (soonest - now_mono()) * 1000.0;
    return ms <= 0 ? 0 : (int)ms + 1;
}

static struct rule rules[MAX_RULES];
static int nrules;
static FILE *logf;
static int rawfd = -1;  /* opened on the first duplicate rule */

static unsigned long long next_random(struct rule *r) {  /* splitmix64: same seed, same drops */
    unsigned long long z = (r->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void flags_of(const struct tcphdr *t, char *out) {
    int n = 0;
    if (t->syn) out[n++] = 'S';
    if (t->fin) out[n++] = 'F';
    if (t->rst) out[n++] = 'R';
    if (t->psh) out[n++] = 'P';
    if (t->ack) out[n++] = '.';
    out[n] = 0;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data) {
    (void)msg;
    struct rule *r = data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    unsigned int id = ph ? ntohl(ph->packet_id) : 0;
    unsigned char *pkt;
    int len = nfq_get_payload(nfa, &pkt);
    const struct tcphdr *tcp = NULL;
    int payload = 0;
    if (len >= (int)sizeof(struct iphdr)) {
        const struct iphdr *ip = (const struct iphdr *)pkt;
        int ihl = ip->ihl * 4;
        if (ip->protocol == IPPROTO_TCP && len >= ihl + (int)sizeof(struct tcphdr)) {
            tcp = (const struct tcphdr *)(pkt + ihl);
            payload = ntohs(ip->tot_len) - ihl - tcp->doff * 4;
        }
    }
    int counts = !r->data_only || (tcp && payload > 0);
    int drop = 0;
    if (counts) {
        r->seen++;
        if (strcmp(r->action, "nth") == 0) drop = r->seen == r->value;
        else if (strcmp(r->action, "every") == 0) drop = r->value && r->seen % r->value == 0;
        else if (strcmp(r->action, "all") == 0) drop = 1;
        else drop = next_random(r) % 1000000ULL < r->value;
    }
    int delay = drop && r->delay_us >= 0 && nheld < MAX_HELD;
    int dup = drop && r->delay_us == DUPLICATE;
    if (drop) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        char fl[8] = "";
        if (tcp) flags_of(tcp, fl);
        fprintf(logf, "%ld.%06ld %s %s seq=%lu flags=%s len=%d\n", (long)tv.tv_sec, (long)tv.tv_usec, r->name,
                delay ? "delay" : dup ? "duplicate" : "drop",
                tcp ? (unsigned long)ntohl(tcp->seq) : 0UL, tcp ? fl : "-", payload);
        fflush(logf);
    }
    if (delay) {
        long extra = r->jitter_us > 0 ? (long)(next_random(r) % (unsigned long long)(r->jitter_us + 1)) : 0;
        held[nheld++] = (struct held){qh, id, now_mono() + (r->delay_us + extra) / 1e6};
        return 0;
    }
    if (dup) {
        int rv = nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
        if (len >= (int)sizeof(struct iphdr)) {
            struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = ((const struct iphdr *)pkt)->daddr};
            if (sendto(rawfd, pkt, len, 0, (struct sockaddr *)&to, sizeof(to)) < 0) perror("impair: duplicate");
        }
        return rv;
    }
    return nfq_set_verdict(qh, id, drop ? NF_DROP : NF_ACCEPT, 0, NULL);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: impair LOGFILE QUEUE:NAME:ACTION:VALUE:SEED:DATA...\n");
        return 2;
    }
    logf = fopen(argv[1], "a");
    if (!logf) { perror(argv[1]); return 1; }
    struct nfq_handle *h = nfq_open();
    if (!h) { perror("nfq_open"); return 1; }
    for (int i = 2; i < argc && nrules < MAX_RULES; i++) {
        struct rule *r = &rules[nrules];
        unsigned long long seed = 0;
        r->delay_us = -1;
        int n = sscanf(argv[i], "%d:%63[^:]:%7[^:]:%lu:%llu:%d:%ld:%ld", &r->queue, r->name, r->action, &r->value,
                       &seed, &r->data_only, &r->delay_us, &r->jitter_us);
        if (n != 6 && n != 8) {
            fprintf(stderr, "impair: bad rule '%s'\n", argv[i]);
            return 2;
        }
        r->state = seed;
        if (r->delay_us == DUPLICATE && rawfd < 0) {
            int mark = DUP_MARK;
            rawfd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
            if (rawfd < 0 || setsockopt(rawfd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
                perror("impair: raw socket for duplicates");
                return 1;
            }
        }
        struct nfq_q_handle *qh = nfq_create_queue(h, (unsigned short)r->queue, &on_packet, r);
        if (!qh) { fprintf(stderr, "impair: cannot bind queue %d: %s\n", r->queue, strerror(errno)); return 1; }
        if (nfq_set_mode(qh, NFQNL_COPY_PACKET, r->delay_us == DUPLICATE ? 65535 : 128) < 0) { perror("nfq_set_mode"); return 1; }
        nfq_set_queue_maxlen(qh, 8192);
        nrules++;
    }
    int fd = nfq_fd(h);
    nfnl_rcvbufsiz(nfq_nfnlh(h), 8 << 20);
    printf("impair ready\n");
    fflush(stdout);
    char buf[65536] __attribute__((aligned));
    struct pollfd pfd = {fd, POLLIN, 0};
    for (;;) {
        release_due();
        if (poll(&pfd, 1, next_wait_ms()) <= 0) continue;
        int rv = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (rv >= 0) { nfq_handle_packet(h, buf, rv); continue; }
        if (errno == EAGAIN || errno == EINTR) continue;
        if (errno == ENOBUFS) { fprintf(stderr, "impair: queue overrun (packets lost)\n"); continue; }
        perror("recv");
        return 1;
    }
}
