/* The send queue of a UDP server's socket: while the server is corked, what its taken peers send
 * is copied here and leaves in one sendmmsg at the flush instead of one sendto each (the host
 * corks for a service pass: every reply to the events of one pass goes out together).
 *
 * Ownership: the queue owns the bytes. A queued datagram names its peer only to report the
 * result; the hub's peers are borrowed, and a peer that is freed first is forgotten here
 * (sn_udp_sendq_forget), its datagrams still leaving. A failure never vanishes: every datagram
 * is counted (sent, busy or error) on the server and, while it exists, on its peer, and a
 * failure for good becomes the peer's send_err, which its consumer turns into a status. */
#include "udp_internal.h"
#include "udp_sys.h"

#include <errno.h>
#include <string.h>

typedef struct sendq_entry {
    sn_udp_peer *peer; /* borrowed; NULL once forgotten */
    size_t off, len;   /* in bytes[] */
    sn_udp_sockaddr to;
    socklen_t to_len;
} sendq_entry;

struct sn_udp_sendq {
    unsigned n;
    size_t used;
    sendq_entry e[SN_UDP_SENDQ_MAX];
    struct mmsghdr msgs[SN_UDP_SENDQ_MAX];
    struct iovec iov[SN_UDP_SENDQ_MAX];
    uint8_t bytes[SN_UDP_SENDQ_BYTES];
};

bool sn_udp_sendq_push(sn_udp_hub *hub, sn_udp_peer *p, const void *buf, size_t len,
                       const sn_addr *to)
{
    if (len > SN_UDP_SENDQ_BYTES || to->len > sizeof(sn_udp_sockaddr)) return false;
    if (!hub->sendq) {
        if (!(hub->sendq = sn_malloc(sizeof *hub->sendq))) return false;
        hub->sendq->n = 0;
        hub->sendq->used = 0;
    }
    sn_udp_sendq *q = hub->sendq;
    if (q->n == SN_UDP_SENDQ_MAX || q->used + len > SN_UDP_SENDQ_BYTES) sn_udp_sendq_flush(hub);
    sendq_entry *e = &q->e[q->n++];
    e->peer = p;
    e->off = q->used;
    e->len = len;
    memcpy(&e->to, &to->ss, to->len);
    e->to_len = to->len;
    if (len) memcpy(q->bytes + q->used, buf, len);
    q->used += len;
    return true;
}

/* The result of one queued datagram (err 0: it left), counted as a direct send is. */
static void settle(sn_udp_hub *hub, const sendq_entry *e, int err)
{
    sn_udp_peer *p = e->peer;
    bool busy = err && sn_udp_send_busy(err);
    sn_udp_hub_count_send(hub, e->len, !err ? SN_OK : busy ? SN_ERR_BUSY : SN_FAILED);
    if (!err) {
        if (p) {
            p->stats.datagrams_sent++;
            p->stats.bytes_sent += e->len;
        }
        return;
    }
    if (busy) {
        /* Lost as the network may lose it, and counted: DTLS retransmits what it must. */
        if (p) p->stats.send_busy++;
        return;
    }
    if (!p) return;
    if (!p->send_err) p->send_err = err;
    if (!p->pending) sn_udp_hub_ready_push(hub, p); /* its consumer polls it and hears why */
}

/* Sends entry i alone (sendto), as a direct send does. Returns 0 or the errno. */
static int send_one(sn_udp_hub *hub, sn_udp_sendq *q, unsigned i)
{
    const sendq_entry *e = &q->e[i];
    return sn_udp_send_datagram(e->peer, hub->fd, q->bytes + e->off, e->len, &e->to.sa, e->to_len);
}

static void send_batch(sn_udp_hub *hub, sn_udp_sendq *q, unsigned n);

void sn_udp_sendq_flush(sn_udp_hub *hub)
{
    sn_udp_sendq *q = hub->sendq;
    if (!q || !q->n) return;
    unsigned n = q->n;
    if (hub->fd < 0) {
        for (unsigned i = 0; i < n; i++)
            settle(hub, &q->e[i], ENOTCONN);
    } else if (n == 1) {
        /* One datagram: sendto costs less than setting up a one-message sendmmsg. */
        settle(hub, &q->e[0], send_one(hub, q, 0));
    } else {
        send_batch(hub, q, n);
    }
    q->n = 0;
    q->used = 0;
}

static void send_batch(sn_udp_hub *hub, sn_udp_sendq *q, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        sendq_entry *e = &q->e[i];
        q->iov[i].iov_base = q->bytes + e->off;
        q->iov[i].iov_len = e->len;
        struct msghdr *h = &q->msgs[i].msg_hdr;
        memset(h, 0, sizeof *h);
        h->msg_name = &e->to;
        h->msg_namelen = e->to_len;
        h->msg_iov = &q->iov[i];
        h->msg_iovlen = 1;
    }
    unsigned done = 0;
    while (done < n) {
        int r = sn_udp_sys_sendmmsg(hub->fd, q->msgs + done, n - done);
        hub->st.send_batches++;
        if (r > 0) {
            for (unsigned i = done; i < done + (unsigned)r; i++)
                settle(hub, &q->e[i], 0);
            done += (unsigned)r;
            continue;
        }
        /* The datagram at `done` failed: the kernel says why for that one only. */
        int err = r < 0 ? errno : EIO;
        if (err == ECONNREFUSED) err = send_one(hub, q, done);
        settle(hub, &q->e[done], err);
        done++;
    }
}

size_t sn_udp_sendq_count(const sn_udp_hub *hub)
{
    return hub->sendq ? hub->sendq->n : 0;
}

void sn_udp_sendq_forget(sn_udp_hub *hub, const sn_udp_peer *p)
{
    sn_udp_sendq *q = hub->sendq;
    if (!q) return;
    for (unsigned i = 0; i < q->n; i++)
        if (q->e[i].peer == p) q->e[i].peer = NULL;
}

void sn_udp_sendq_free(sn_udp_hub *hub)
{
    sn_free(hub->sendq);
    hub->sendq = NULL;
    hub->corked = false;
}
