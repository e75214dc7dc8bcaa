/* User-mode networking backend (see slirp.h) over libslirp 4.x
 * (libslirp.h: slirp_new with SlirpConfig version 4, slirp_pollfds_fill /
 * slirp_pollfds_poll, slirp_input, the SlirpCb callbacks, and
 * slirp_add_hostfwd). It carries the frames of virtio 1.2 section 5.1.6
 * with an empty struct virtio_net_hdr_v1 (no offloads are offered).
 *
 * Why the structure is what it is:
 *   - libslirp is not thread-safe and keeps process-wide state (its
 *     clock, DNS cache), so one global mutex covers every libslirp call
 *     from any instance, and each instance calls it only from its own
 *     thread (creation and teardown, before the thread starts and after
 *     it ends, are the only exceptions).
 *   - slirp's send_packet callback cannot wait, so frames for the guest go
 *     into a fixed queue and are dropped (counted) when it is full; the
 *     guest's frames wait in another fixed queue, and a full one pushes
 *     back on the guest's transmit queue. Memory use is fixed at creation.
 *   - No glib main loop: a poll() loop with slirp's fds, an eventfd for
 *     wake-ups (guest frames queued, slirp's notify, stop) and the timers
 *     slirp asked for, kept in a short list here.
 *
 * The network is hostile too: everything slirp hands us is at most an
 * Ethernet frame of its MTU (checked), and the device checks it again. */
#include "thread.h"
#include "backend/slirp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <libslirp.h>
#include "error.h"

/* An Ethernet frame of slirp's MTU; queue slots hold one plus a header. */
#define FRAME_MAX       (14 + NET_SLIRP_MTU)
#define SLOT_SIZE       (VIRTIO_NET_HDR_LEN + FRAME_MAX)
/* Guest frames handed to slirp per loop round before its sockets get a look. */
#define TX_BATCH        NET_SLIRP_TX_FRAMES

/* All libslirp calls, from every instance (see above). */
static pthread_mutex_t slirp_global = PTHREAD_MUTEX_INITIALIZER;

struct ring {
    uint8_t *buf;               /* slots * SLOT_SIZE */
    uint16_t *len;
    unsigned slots, head, count;
};

struct stimer {
    struct stimer *next;
    bool armed, by_id;
    int64_t expire_ms;
    SlirpTimerCb cb;            /* timer_new */
    SlirpTimerId id;            /* timer_new_opaque */
    void *cb_opaque;
};

struct slirp_be {
    struct net_backend b;       /* first: the device sees only this */
    Slirp *slirp;
    SlirpCb cb;
    pthread_t thread;
    bool started;
    atomic_bool stopping;
    int wake_fd;                /* wakes the slirp thread */

    pthread_mutex_t q_lock;     /* the two rings and tx_waiting */
    struct ring rx, tx;
    bool tx_waiting;            /* the device got NET_SEND_BUSY */

    /* Owned by the slirp thread (or the creator before it starts). */
    struct pollfd *pfd;
    unsigned npfd, pfd_cap;
    struct stimer *timers;
    uint8_t frame[FRAME_MAX];   /* a guest frame on its way into slirp */
    bool rx_wake_due;           /* frames queued for the guest, device not woken yet */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- rings ------------------------------------------------------------- */

static bool ring_init(struct ring *r, unsigned slots)
{
    r->buf = malloc((size_t)slots * SLOT_SIZE);
    r->len = calloc(slots, sizeof *r->len);
    r->slots = slots;
    r->head = r->count = 0;
    return r->buf && r->len;
}

static void ring_free(struct ring *r)
{
    free(r->buf);
    free(r->len);
}

static uint8_t *ring_slot(struct ring *r, unsigned i)
{
    return r->buf + (size_t)((r->head + i) % r->slots) * SLOT_SIZE;
}

/* ---- device side: send() and recv() (device thread) ------------------- */

static enum net_send_result sl_send(struct net_backend *be, const struct iovec *iov,
                                    unsigned iovcnt, size_t len)
{
    struct slirp_be *s = (struct slirp_be *)be;
    struct virtio_net_hdr_v1 h;
    if (iovcnt < 1 || iov[0].iov_len != VIRTIO_NET_HDR_LEN) {
        NET_STAT_INC(&be->stats, tx_errors);
        return NET_SEND_DROPPED;
    }
    memcpy(&h, iov[0].iov_base, sizeof h);
    if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || h.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
        /* We offered no offload; the device should have refused this. */
        NET_STAT_INC(&be->stats, tx_malformed);
        return NET_SEND_DROPPED;
    }
    if (len > FRAME_MAX) {
        NET_STAT_INC(&be->stats, tx_dropped);     /* larger than slirp's MTU */
        return NET_SEND_DROPPED;
    }

    pthread_mutex_lock(&s->q_lock);
    struct ring *r = &s->tx;
    if (r->count == r->slots) {
        s->tx_waiting = true;
        pthread_mutex_unlock(&s->q_lock);
        return NET_SEND_BUSY;
    }
    bool was_empty = r->count == 0;
    uint8_t *slot = ring_slot(r, r->count);
    size_t off = 0;
    for (unsigned i = 1; i < iovcnt && off < len; i++) {
        size_t n = iov[i].iov_len < len - off ? iov[i].iov_len : len - off;
        memcpy(slot + off, iov[i].iov_base, n);
        off += n;
    }
    r->len[(r->head + r->count) % r->slots] = (uint16_t)off;
    r->count++;
    pthread_mutex_unlock(&s->q_lock);
    if (was_empty)
        eventfd_kick(s->wake_fd);
    return NET_SEND_OK;
}

static ssize_t sl_recv(struct net_backend *be, void *buf, size_t cap)
{
    struct slirp_be *s = (struct slirp_be *)be;
    pthread_mutex_lock(&s->q_lock);
    struct ring *r = &s->rx;
    if (r->count == 0) {
        pthread_mutex_unlock(&s->q_lock);
        return 0;
    }
    size_t n = r->len[r->head];
    if (n > cap)
        n = 0;                                /* cannot happen: cap >= NET_BUF_MAX */
    memcpy(buf, ring_slot(r, 0), n);
    r->head = (r->head + 1) % r->slots;
    r->count--;
    pthread_mutex_unlock(&s->q_lock);
    if (n == 0) {
        NET_STAT_INC(&be->stats, rx_errors);
        return -1;
    }
    return (ssize_t)n;
}

static int sl_set_guest_offloads(struct net_backend *be, uint64_t features)
{
    (void)be; (void)features;                 /* none offered, none used */
    return 0;
}

/* ---- slirp callbacks (slirp thread, slirp_global held) ----------------- */

/* A frame from slirp for the guest: queue it, or drop it when the guest
 * is not keeping up (slirp's TCP will resend). */
static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
    struct slirp_be *s = opaque;
    if (len < NET_FRAME_MIN || len > FRAME_MAX) {
        NET_STAT_INC(&s->b.stats, rx_malformed);
        return (ssize_t)len;
    }
    pthread_mutex_lock(&s->q_lock);
    struct ring *r = &s->rx;
    if (r->count == r->slots) {
        pthread_mutex_unlock(&s->q_lock);
        NET_STAT_INC(&s->b.stats, rx_dropped);
        return (ssize_t)len;
    }
    bool was_empty = r->count == 0;
    uint8_t *slot = ring_slot(r, r->count);
    memset(slot, 0, VIRTIO_NET_HDR_LEN);      /* no offloads: an empty header */
    memcpy(slot + VIRTIO_NET_HDR_LEN, buf, len);
    r->len[(r->head + r->count) % r->slots] = (uint16_t)(VIRTIO_NET_HDR_LEN + len);
    r->count++;
    bool half_full = r->count >= r->slots / 2;
    pthread_mutex_unlock(&s->q_lock);
    /* The device reads until the queue is empty, so a signal on the empty
     * -> non-empty edge is all it needs. It is sent once this round of
     * slirp's work is done, so that the device takes the round's frames
     * as one batch (one interrupt, one thread switch) rather than one by
     * one - unless the queue is filling up. */
    if (was_empty)
        s->rx_wake_due = true;
    if (half_full && s->rx_wake_due) {
        s->rx_wake_due = false;
        eventfd_kick(s->b.fd);
    }
    return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
    struct slirp_be *s = opaque;
    (void)msg;                                /* the guest controls it: not logged */
    NET_STAT_INC(&s->b.stats, tx_malformed);
}

static int64_t cb_clock_get_ns(void *opaque)
{
    (void)opaque;
    return now_ns();
}

static struct stimer *timer_add(struct slirp_be *s)
{
    struct stimer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->next = s->timers;
    s->timers = t;
    return t;
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
    struct stimer *t = timer_add(opaque);
    if (t) {
        t->cb = cb;
        t->cb_opaque = cb_opaque;
    }
    return t;
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    struct stimer *t = timer_add(opaque);
    if (t) {
        t->by_id = true;
        t->id = id;
        t->cb_opaque = cb_opaque;
    }
    return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
    struct slirp_be *s = opaque;
    for (struct stimer **p = &s->timers; *p; p = &(*p)->next)
        if (*p == timer) {
            *p = ((struct stimer *)timer)->next;
            free(timer);
            return;
        }
}

/* expire_time: milliseconds on the cb_clock_get_ns clock. */
static void cb_timer_mod(void *timer, int64_t expire_time, void *opaque)
{
    (void)opaque;
    struct stimer *t = timer;
    if (t) {
        t->expire_ms = expire_time;
        t->armed = true;
    }
}

static void cb_register_poll_fd(int fd, void *opaque)
{
    (void)fd; (void)opaque;                   /* poll() needs no registration */
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
    (void)fd; (void)opaque;
}

static void cb_notify(void *opaque)
{
    struct slirp_be *s = opaque;
    eventfd_kick(s->wake_fd);
}

/* ---- the slirp thread -------------------------------------------------- */

static int cb_add_poll(int fd, int events, void *opaque)
{
    struct slirp_be *s = opaque;
    if (s->npfd == s->pfd_cap) {
        unsigned cap = s->pfd_cap * 2;
        struct pollfd *p = realloc(s->pfd, cap * sizeof *p);
        if (!p)
            return -1;                        /* not polled this round */
        s->pfd = p;
        s->pfd_cap = cap;
    }
    short ev = 0;
    if (events & SLIRP_POLL_IN)
        ev |= POLLIN;
    if (events & SLIRP_POLL_OUT)
        ev |= POLLOUT;
    if (events & SLIRP_POLL_PRI)
        ev |= POLLPRI;
    if (events & SLIRP_POLL_ERR)
        ev |= POLLERR;
    if (events & SLIRP_POLL_HUP)
        ev |= POLLHUP;
    s->pfd[s->npfd] = (struct pollfd){ .fd = fd, .events = ev };
    return (int)s->npfd++;
}

static int cb_get_revents(int idx, void *opaque)
{
    struct slirp_be *s = opaque;
    if (idx < 1 || (unsigned)idx >= s->npfd)  /* 0 is our wake fd */
        return 0;
    short re = s->pfd[idx].revents;
    int ev = 0;
    if (re & POLLIN)
        ev |= SLIRP_POLL_IN;
    if (re & POLLOUT)
        ev |= SLIRP_POLL_OUT;
    if (re & POLLPRI)
        ev |= SLIRP_POLL_PRI;
    if (re & (POLLERR | POLLNVAL))
        ev |= SLIRP_POLL_ERR;
    if (re & POLLHUP)
        ev |= SLIRP_POLL_HUP;
    return ev;
}

/* Milliseconds until the next armed timer (0 if one is due), or -1. */
static int64_t timers_next(struct slirp_be *s, int64_t now_ms)
{
    int64_t best = -1;
    for (struct stimer *t = s->timers; t; t = t->next) {
        if (!t->armed)
            continue;
        int64_t d = t->expire_ms > now_ms ? t->expire_ms - now_ms : 0;
        if (best < 0 || d < best)
            best = d;
    }
    return best;
}

/* Fires due timers. A callback may add, re-arm or free timers, so the
 * list is scanned afresh after each one. */
static void timers_run(struct slirp_be *s)
{
    for (;;) {
        int64_t now_ms = now_ns() / 1000000;
        struct stimer *due = NULL;
        for (struct stimer *t = s->timers; t && !due; t = t->next)
            if (t->armed && t->expire_ms <= now_ms)
                due = t;
        if (!due)
            return;
        due->armed = false;
        if (due->by_id)
            slirp_handle_timer(s->slirp, due->id, due->cb_opaque);
        else if (due->cb)
            due->cb(due->cb_opaque);
    }
}

/* Takes the oldest guest frame into s->frame; its length, or 0. */
static size_t tx_pop(struct slirp_be *s)
{
    pthread_mutex_lock(&s->q_lock);
    struct ring *r = &s->tx;
    size_t n = 0;
    if (r->count) {
        n = r->len[r->head];
        memcpy(s->frame, ring_slot(r, 0), n);
        r->head = (r->head + 1) % r->slots;
        r->count--;
    }
    pthread_mutex_unlock(&s->q_lock);
    return n;
}

static bool tx_pending(struct slirp_be *s)
{
    pthread_mutex_lock(&s->q_lock);
    bool any = s->tx.count != 0;
    pthread_mutex_unlock(&s->q_lock);
    return any;
}

static void *slirp_thread(void *arg)
{
    struct slirp_be *s = arg;
    pthread_setname_np(pthread_self(), "slirp");

    while (!atomic_load(&s->stopping)) {
        s->npfd = 0;
        cb_add_poll(s->wake_fd, SLIRP_POLL_IN, s);   /* index 0 */
        uint32_t timeout = UINT32_MAX;
        int64_t next = timers_next(s, now_ns() / 1000000);
        if (next >= 0)
            timeout = next < (int64_t)UINT32_MAX ? (uint32_t)next : UINT32_MAX - 1;
        if (tx_pending(s))
            timeout = 0;
        pthread_mutex_lock(&slirp_global);
        slirp_pollfds_fill(s->slirp, &timeout, cb_add_poll, s);
        pthread_mutex_unlock(&slirp_global);

        int ms = timeout == UINT32_MAX ? -1 : timeout > INT_MAX ? INT_MAX : (int)timeout;
        int r = poll(s->pfd, s->npfd, ms);
        if (r < 0 && errno != EINTR) {
            static const struct timespec pause = { 0, 10 * 1000 * 1000 };
            nanosleep(&pause, NULL);          /* ENOMEM: do not spin */
        }
        if (r > 0 && s->pfd[0].revents)
            eventfd_drain(s->wake_fd);

        bool took = false;
        pthread_mutex_lock(&slirp_global);
        slirp_pollfds_poll(s->slirp, r < 0, cb_get_revents, s);
        for (unsigned i = 0; i < TX_BATCH; i++) {
            size_t n = tx_pop(s);
            if (!n)
                break;
            slirp_input(s->slirp, s->frame, (int)n);
            took = true;
        }
        timers_run(s);
        pthread_mutex_unlock(&slirp_global);
        if (s->rx_wake_due) {
            s->rx_wake_due = false;
            eventfd_kick(s->b.fd);                    /* this round's frames for the guest */
        }

        if (took) {
            pthread_mutex_lock(&s->q_lock);
            bool waiting = s->tx_waiting;
            s->tx_waiting = false;
            pthread_mutex_unlock(&s->q_lock);
            if (waiting)
                eventfd_kick(s->b.fd);                /* the device may send again */
        }
    }
    return NULL;
}

/* ---- life cycle -------------------------------------------------------- */

static void sl_free(struct net_backend *be)
{
    struct slirp_be *s = (struct slirp_be *)be;
    if (!s)
        return;
    if (s->started) {
        atomic_store(&s->stopping, true);
        eventfd_kick(s->wake_fd);
        pthread_join(s->thread, NULL);
    }
    if (s->slirp) {
        pthread_mutex_lock(&slirp_global);
        slirp_cleanup(s->slirp);              /* closes its sockets, frees timers via cb */
        pthread_mutex_unlock(&slirp_global);
    }
    while (s->timers) {
        struct stimer *t = s->timers;
        s->timers = t->next;
        free(t);
    }
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    if (s->b.fd >= 0)
        close(s->b.fd);
    ring_free(&s->rx);
    ring_free(&s->tx);
    free(s->pfd);
    pthread_mutex_destroy(&s->q_lock);
    free(s);
}

static const struct net_backend_ops slirp_ops = {
    .send = sl_send,
    .recv = sl_recv,
    .set_guest_offloads = sl_set_guest_offloads,
    .free = sl_free,
};

/* A UDP port another program holds is not refused by slirp, which binds
 * with SO_REUSEADDR; a bind without it tells. */
static int udp_port_free(const struct net_hostfwd *f)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(f->host_port),
                             .sin_addr.s_addr = htonl(f->host_addr) };
    int e = bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ? errno : 0;
    close(fd);
    return e;
}

static void hostfwd_error(const struct net_hostfwd *f, int e, vmlet_error *err)
{
    char where[64];
    net_hostfwd_host_text(f, where, sizeof where);
    switch (e) {
    case EADDRINUSE:
        set_error(err, VMLET_ERR_HOST, "hostfwd %s: port %u is already in use", where,
                  f->host_port);
        break;
    case EACCES:
    case EPERM:
        set_error(err, VMLET_ERR_HOST, "hostfwd %s: port %u needs privileges (ports below "
                  "1024 need CAP_NET_BIND_SERVICE); forward a port of 1024 or above", where,
                  f->host_port);
        break;
    case EADDRNOTAVAIL: {
        char a[INET_ADDRSTRLEN];
        struct in_addr in = { htonl(f->host_addr) };
        inet_ntop(AF_INET, &in, a, sizeof a);
        set_error(err, VMLET_ERR_HOST, "hostfwd %s: %s is not an address of this host", where,
                  a);
        break;
    }
    default:
        set_error(err, VMLET_ERR_HOST, "hostfwd %s: cannot listen: %s", where, strerror(e));
        break;
    }
}

struct net_backend *net_slirp_new(const struct net_spec *spec, vmlet_error *err)
{
    if (spec->kind != NET_SPEC_USER) {
        set_error(err, VMLET_ERR_INTERNAL, "user networking: not a user spec");
        return NULL;
    }
    struct slirp_be *s = calloc(1, sizeof *s);
    if (!s) {
        set_error(err, VMLET_ERR_NOMEM, "user networking: out of memory");
        return NULL;
    }
    s->b.ops = &slirp_ops;
    s->b.fd_is_wake = true;
    s->b.offloads = 0;
    atomic_init(&s->b.failed, false);
    atomic_init(&s->stopping, false);
    snprintf(s->b.desc, sizeof s->b.desc, "user");
    pthread_mutex_init(&s->q_lock, NULL);
    s->b.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->pfd_cap = 32;
    s->pfd = malloc(s->pfd_cap * sizeof *s->pfd);
    bool rings = ring_init(&s->rx, NET_SLIRP_RX_FRAMES) && ring_init(&s->tx, NET_SLIRP_TX_FRAMES);
    if (s->b.fd < 0 || s->wake_fd < 0 || !s->pfd || !rings) {
        set_error(err, VMLET_ERR_HOST, "user networking: cannot set up: %s", strerror(errno));
        sl_free(&s->b);
        return NULL;
    }

    s->cb = (SlirpCb){
        .send_packet = cb_send_packet,
        .guest_error = cb_guest_error,
        .clock_get_ns = cb_clock_get_ns,
        .timer_new = cb_timer_new,
        .timer_free = cb_timer_free,
        .timer_mod = cb_timer_mod,
        .register_poll_fd = cb_register_poll_fd,
        .unregister_poll_fd = cb_unregister_poll_fd,
        .notify = cb_notify,
#if SLIRP_CONFIG_VERSION_MAX >= 4
        .timer_new_opaque = cb_timer_new_opaque,
#endif
    };
    SlirpConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.version = SLIRP_CONFIG_VERSION_MAX < 4 ? SLIRP_CONFIG_VERSION_MAX : 4;
    cfg.restricted = 0;
    cfg.in_enabled = true;
    cfg.vnetwork.s_addr = htonl(NET_USER_NETWORK);
    cfg.vnetmask.s_addr = htonl(NET_USER_NETMASK);
    cfg.vhost.s_addr = htonl(NET_USER_GATEWAY);
    cfg.in6_enabled = false;
    cfg.vdhcp_start.s_addr = htonl(NET_USER_GUEST);
    cfg.vnameserver.s_addr = htonl(NET_USER_DNS);
    cfg.if_mtu = NET_SLIRP_MTU;
    cfg.if_mru = NET_SLIRP_MTU;
    cfg.disable_host_loopback = false;       /* 10.0.2.2 reaches the host's 127.0.0.1 */
    cfg.enable_emu = false;                  /* libslirp calls that code unsafe */

    pthread_mutex_lock(&slirp_global);
    s->slirp = slirp_new(&cfg, &s->cb, s);
    pthread_mutex_unlock(&slirp_global);
    if (!s->slirp) {
        set_error(err, VMLET_ERR_HOST, "user networking: libslirp refused the configuration");
        sl_free(&s->b);
        return NULL;
    }

    for (unsigned i = 0; i < spec->nhostfwd; i++) {
        const struct net_hostfwd *f = &spec->hostfwd[i];
        int e = f->udp ? udp_port_free(f) : 0;
        if (!e) {
            struct in_addr host = { htonl(f->host_addr) }, guest = { htonl(f->guest_addr) };
            pthread_mutex_lock(&slirp_global);
            errno = 0;
            int rc = slirp_add_hostfwd(s->slirp, f->udp, host, f->host_port, guest,
                                       f->guest_port);
            e = rc < 0 ? (errno ? errno : EINVAL) : 0;
            pthread_mutex_unlock(&slirp_global);
        }
        if (e) {
            hostfwd_error(f, e, err);
            sl_free(&s->b);
            return NULL;
        }
    }

    /* Blocked signals also keep a SIGPIPE from a host socket away. */
    int e = thread_start_unsignalled(&s->thread, slirp_thread, s);
    if (e) {
        set_error(err, VMLET_ERR_HOST, "user networking: cannot start its thread: %s",
                  strerror(e));
        sl_free(&s->b);
        return NULL;
    }
    s->started = true;
    return &s->b;
}
