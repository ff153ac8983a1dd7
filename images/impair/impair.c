/* impair: an NFQUEUE program that impairs the packets iptables queues to it, one rule per queue.
 *
 * Usage: impair LOGFILE RULE...   where each RULE is one argv word
 *   QUEUE:NAME:ACTION:VALUE:SEED:DATA
 *   ACTION: nth (drop the VALUE-th packet), every (drop every VALUE-th), prob (drop with probability
 *   VALUE per million, from SEED); DATA: 1 counts only TCP segments with a payload, 0 every packet.
 * Each dropped packet is one line of LOGFILE: "<epoch seconds> <rule> drop seq=<n> flags=<f> len=<n>";
 * every other packet is accepted unchanged. Says "impair ready" once every queue is bound. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define MAX_RULES 32

struct rule {
    int queue;
    char name[64];
    char action[8];
    unsigned long value;
    unsigned long long state;  /* the seeded generator's state */
    int data_only;
    unsigned long seen;
};

static struct rule rules[MAX_RULES];
static int nrules;
static FILE *logf;

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
        else drop = next_random(r) % 1000000ULL < r->value;
    }
    if (drop) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        char fl[8] = "";
        if (tcp) flags_of(tcp, fl);
        fprintf(logf, "%ld.%06ld %s drop seq=%lu flags=%s len=%d\n", (long)tv.tv_sec, (long)tv.tv_usec, r->name,
                tcp ? (unsigned long)ntohl(tcp->seq) : 0UL, tcp ? fl : "-", payload);
        fflush(logf);
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
        if (sscanf(argv[i], "%d:%63[^:]:%7[^:]:%lu:%llu:%d", &r->queue, r->name, r->action, &r->value, &seed,
                   &r->data_only) != 6) {
            fprintf(stderr, "impair: bad rule '%s'\n", argv[i]);
            return 2;
        }
        r->state = seed;
        struct nfq_q_handle *qh = nfq_create_queue(h, (unsigned short)r->queue, &on_packet, r);
        if (!qh) { fprintf(stderr, "impair: cannot bind queue %d: %s\n", r->queue, strerror(errno)); return 1; }
        if (nfq_set_mode(qh, NFQNL_COPY_PACKET, 128) < 0) { perror("nfq_set_mode"); return 1; }
        nfq_set_queue_maxlen(qh, 8192);
        nrules++;
    }
    int fd = nfq_fd(h);
    nfnl_rcvbufsiz(nfq_nfnlh(h), 8 << 20);
    printf("impair ready\n");
    fflush(stdout);
    char buf[65536] __attribute__((aligned));
    for (;;) {
        int rv = recv(fd, buf, sizeof(buf), 0);
        if (rv >= 0) { nfq_handle_packet(h, buf, rv); continue; }
        if (errno == ENOBUFS) { fprintf(stderr, "impair: queue overrun (packets lost)\n"); continue; }
        perror("recv");
        return 1;
    }
}
