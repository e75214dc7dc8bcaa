/* User-mode networking backend (see slirp.h) over libslirp 4.x
 * (libslirp.h: slirp_new with SlirpConfig version 4, slirp_pollfds_fill /
 * slirp_pollfds_poll, slirp_input, the SlirpCb callbacks, and
 * slirp_add_hostfwd). It carries the frames of virtio 1.2 section 5.1.6
 * with an empty struct virtio_net_hdr_v1 (no offloads are offered).
 *
 * Why the structure is what it is:
 *   - slirp runs on the virtio-net device thread (the poll hooks of
 *     backend/net.h): its sockets join the device's wait, its timers set
 *     the wait's timeout, a guest frame goes straight into slirp_input and
 *     a frame from slirp is in the guest's queue in the same round. An
 *     earlier version ran slirp on a thread of its own and handed frames
 *     across with queues and eventfds: every frame crossed threads (a
 *     lock, an eventfd, a wake-up), which cost latency on exactly the
 *     path TCP's throughput depends on.
 *   - libslirp is not thread-safe and keeps process-wide state (its
 *     clock, DNS cache), so one global mutex covers every libslirp call
 *     from any instance; each instance is called from one thread at a time
 *     (its device thread, or its creator before and after).
 *   - slirp's send_packet callback cannot wait, so frames for the guest go
 *     into a fixed queue, which the device empties into the guest's
 *     buffers, and are dropped (counted) when it is full. Memory use is
 *     fixed at creation.
 *   - No glib main loop: slirp's fds go into the device's poll set, and
 *     the timers slirp asked for are kept in a short list here.
 *   - Flows are capped (max-flows, default 512): libslirp opens a host
 *     socket for every TCP connection, UDP source port and ping of the
 *     guest, with no limit of its own, and tells us about each through
 *     register_poll_fd / unregister_poll_fd. The distinct fds registered
 *     and not yet unregistered are the flows open (unregistering an fd
 *     never registered, a port forward's listener, changes nothing). At
 *     the cap, a guest frame that could open another is dropped before
 *     slirp sees it (flows_refused): a TCP SYN without ACK, an ICMP echo
 *     request slirp does not answer itself, a UDP datagram from a source
 *     with no socket yet (DHCP passes), and any IPv4 fragment, whose
 *     contents are only known after reassembly (backend/flowcap.h says
 *     which bytes are read to tell). slirp_input opens at most one socket
 *     per frame, so the count never passes the cap through the guest;
 *     connections to port forwards count but are not refused.
 *   - A port forward whose pending connection slirp cannot accept (vmlet
 *     is out of descriptors: EMFILE) stays readable, and slirp would be
 *     woken for it again at once, forever. A listener still readable
 *     after a round in which slirp opened no socket is therefore left out
 *     of the wait for 100 ms; the connection waits in the host's queue.
 *
 * The network is hostile too: everything slirp hands us is at most an
 * Ethernet frame of its MTU (checked), and the device checks it again. */
#include "backend/slirp.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <libslirp.h>
#include "backend/flowcap.h"
#include "error.h"

/* An Ethernet frame of slirp's MTU; queue slots hold one plus a header. */
#define FRAME_MAX (14 + NET_SLIRP_MTU)
#define SLOT_SIZE (VIRTIO_NET_HDR_LEN + FRAME_MAX)

/* How long a port forward whose connection cannot be accepted is left
 * out of the wait. */
#define ACCEPT_PAUSE_MS 100

/* All libslirp calls, from every instance (see above). */
static pthread_mutex_t slirp_global = PTHREAD_MUTEX_INITIALIZER;

/* libslirp, and the GLib it links, are loaded with the first user-mode
 * NIC rather than at process start: a VM without one then does not carry
 * their mapped and relocated pages (about 1.1 MiB of vmlet's own RSS,
 * bench/memory). The prototypes come from libslirp.h, so every call is
 * still type-checked. Loaded once, never unloaded. */
#define SLIRP_SONAME "libslirp.so.0"
static struct {
    typeof(slirp_new) *slirp_new;
    typeof(slirp_cleanup) *slirp_cleanup;
    typeof(slirp_input) *slirp_input;
    typeof(slirp_pollfds_fill) *slirp_pollfds_fill;
    typeof(slirp_pollfds_poll) *slirp_pollfds_poll;
    typeof(slirp_handle_timer) *slirp_handle_timer;
    typeof(slirp_add_hostfwd) *slirp_add_hostfwd;
    typeof(slirp_version_string) *slirp_version_string;
} lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static char lib_error[200]; /* empty once loaded */

static void *lib_symbol(void *handle, const char *name)
{
    void *sym = dlsym(handle, name);
    if (!sym && !lib_error[0])
        snprintf(lib_error, sizeof lib_error, "%s has no %s", SLIRP_SONAME, name);
    return sym;
}

static void lib_load(void)
{
    void *h = dlopen(SLIRP_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(lib_error, sizeof lib_error, "%s", why ? why : "cannot load " SLIRP_SONAME);
        return;
    }
    lib.slirp_new = lib_symbol(h, "slirp_new");
    lib.slirp_cleanup = lib_symbol(h, "slirp_cleanup");
    lib.slirp_input = lib_symbol(h, "slirp_input");
    lib.slirp_pollfds_fill = lib_symbol(h, "slirp_pollfds_fill");
    lib.slirp_pollfds_poll = lib_symbol(h, "slirp_pollfds_poll");
    lib.slirp_handle_timer = lib_symbol(h, "slirp_handle_timer");
    lib.slirp_add_hostfwd = lib_symbol(h, "slirp_add_hostfwd");
    lib.slirp_version_string = lib_symbol(h, "slirp_version_string");
    if (lib_error[0])
        return;
    /* The build required 4.6.1 (meson.build says why); a host library
     * older than that has guest-triggerable bugs we will not run with. */
    unsigned major = 0, minor = 0, micro = 0;
    const char *v = lib.slirp_version_string();
    if (sscanf(v, "%u.%u.%u", &major, &minor, &micro) < 2 ||
        major * 10000 + minor * 100 + micro < 40601)
        snprintf(lib_error, sizeof lib_error, "%s is version %s; vmlet needs 4.6.1 or later",
                 SLIRP_SONAME, v);
}

struct ring {
    uint8_t *buf; /* slots * SLOT_SIZE */
    uint16_t *len;
    unsigned slots, head, count;
};

struct stimer {
    struct stimer *next;
    bool armed, by_id;
    int64_t expire_ms;
    SlirpTimerCb cb; /* timer_new */
    SlirpTimerId id; /* timer_new_opaque */
    void *cb_opaque;
};

/* A host socket slirp opened for a flow. A UDP socket keeps the guest
 * source it serves, for the cap (slirp has one socket per source). */
struct flow {
    int fd;
    bool udp;
    uint32_t addr; /* host byte order */
    uint16_t port;
};

/* A port forward's TCP listener. */
struct listener {
    int fd;
    int idx;          /* in this round's wait set, or -1 */
    int64_t pause_ms; /* left out of the wait until then (0: not) */
};

/* The guest side of a UDP port forward: replies from it need no socket. */
struct guest_port {
    uint32_t addr;
    uint16_t port;
};

/* Everything here is used by one thread at a time (see above). */
struct slirp_be {
    struct net_backend b; /* first: the device sees only this */
    Slirp *slirp;
    SlirpCb cb;
    struct ring rx; /* frames for the guest */
    struct stimer *timers;
    uint8_t frame[FRAME_MAX]; /* a guest frame on its way into slirp */
    /* The wait set of the current round, between prepare and dispatch. */
    struct net_pollset *ps;
    unsigned ps_first; /* slirp's fds start here */
    /* The flow cap (see above). */
    unsigned max_flows;
    struct flow *flows;
    unsigned nflows, flows_cap;
    uint64_t opened;             /* sockets registered, ever */
    struct net_flow_frame input; /* the frame inside slirp_input, else zeroed */
    struct guest_port udp_fwd[NET_SPEC_MAX_HOSTFWD];
    unsigned nudp_fwd;
    struct listener listeners[NET_SPEC_MAX_HOSTFWD];
    unsigned nlisteners;
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

/* ---- the flow cap (see above) ------------------------------------------- */

static struct flow *flow_find(struct slirp_be *s, int fd)
{
    for (unsigned i = 0; i < s->nflows; i++)
        if (s->flows[i].fd == fd)
            return &s->flows[i];
    return NULL;
}

/* Whether the guest frame described by fi is dropped to keep the cap. */
static bool over_cap(struct slirp_be *s, const struct net_flow_frame *fi)
{
    if (!fi->may_open || s->nflows < s->max_flows)
        return false;
    if (!fi->udp)
        return true;
    for (unsigned i = 0; i < s->nflows; i++) /* a source that has its socket */
        if (s->flows[i].udp && s->flows[i].addr == fi->src && s->flows[i].port == fi->sport)
            return false;
    for (unsigned i = 0; i < s->nudp_fwd; i++) /* a forward's guest side */
        if (s->udp_fwd[i].addr == fi->src && s->udp_fwd[i].port == fi->sport)
            return false;
    return true;
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
        NET_STAT_INC(&be->stats, tx_dropped); /* larger than slirp's MTU */
        return NET_SEND_DROPPED;
    }
    /* A copy first: the frame is in guest memory, which the guest may
     * change while slirp parses it. */
    size_t off = 0;
    for (unsigned i = 1; i < iovcnt && off < len; i++) {
        size_t n = iov[i].iov_len < len - off ? iov[i].iov_len : len - off;
        memcpy(s->frame + off, iov[i].iov_base, n);
        off += n;
    }
    struct net_flow_frame fi = net_flow_frame(s->frame, off);
    if (over_cap(s, &fi)) {
        NET_STAT_INC(&be->stats, flows_refused);
        return NET_SEND_DROPPED;
    }
    s->input = fi; /* for cb_register_poll_fd */
    pthread_mutex_lock(&slirp_global);
    lib.slirp_input(s->slirp, s->frame, (int)off);
    pthread_mutex_unlock(&slirp_global);
    s->input = (struct net_flow_frame){ 0 };
    return NET_SEND_OK;
}

static ssize_t sl_recv(struct net_backend *be, void *buf, size_t cap)
{
    struct slirp_be *s = (struct slirp_be *)be;
    struct ring *r = &s->rx;
    if (r->count == 0)
        return 0;
    size_t n = r->len[r->head];
    if (n > cap)
        n = 0; /* cannot happen: cap >= NET_BUF_MAX */
    memcpy(buf, ring_slot(r, 0), n);
    r->head = (r->head + 1) % r->slots;
    r->count--;
    if (n == 0) {
        NET_STAT_INC(&be->stats, rx_errors);
        return -1;
    }
    return (ssize_t)n;
}

static int sl_set_guest_offloads(struct net_backend *be, uint64_t features)
{
    (void)be;
    (void)features; /* none offered, none used */
    return 0;
}

/* ---- slirp callbacks (device thread, slirp_global held) ---------------- */

/* A frame from slirp for the guest: queue it, or drop it when the guest
 * is not keeping up (slirp's TCP will resend). */
static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
    struct slirp_be *s = opaque;
    if (len < NET_FRAME_MIN || len > FRAME_MAX) {
        NET_STAT_INC(&s->b.stats, rx_malformed);
        return (ssize_t)len;
    }
    struct ring *r = &s->rx;
    if (r->count == r->slots) {
        NET_STAT_INC(&s->b.stats, rx_dropped);
        return (ssize_t)len;
    }
    uint8_t *slot = ring_slot(r, r->count);
    memset(slot, 0, VIRTIO_NET_HDR_LEN); /* no offloads: an empty header */
    memcpy(slot + VIRTIO_NET_HDR_LEN, buf, len);
    r->len[(r->head + r->count) % r->slots] = (uint16_t)(VIRTIO_NET_HDR_LEN + len);
    r->count++;
    return (ssize_t)len; /* the device reads the queue after this round */
}

static void cb_guest_error(const char *msg, void *opaque)
{
    struct slirp_be *s = opaque;
    (void)msg; /* the guest controls it: not logged */
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

/* slirp opened a socket for a flow (poll() itself needs no registration):
 * count it. An fd registered again (slirp closed it without saying) is
 * still one flow. */
static void cb_register_poll_fd(int fd, void *opaque)
{
    struct slirp_be *s = opaque;
    if (fd < 0)
        return;
    s->opened++;
    struct flow *f = flow_find(s, fd);
    if (!f) {
        if (s->nflows == s->flows_cap) {
            unsigned cap = s->flows_cap ? s->flows_cap * 2 : 64;
            struct flow *p = realloc(s->flows, cap * sizeof *p);
            if (!p)
                return; /* out of memory: this one goes uncounted */
            s->flows = p;
            s->flows_cap = cap;
        }
        f = &s->flows[s->nflows++];
    }
    /* A UDP socket is opened only for the datagram being input. */
    *f = (struct flow){
        .fd = fd, .udp = s->input.udp, .addr = s->input.src, .port = s->input.sport
    };
    __atomic_store_n(&s->b.stats.flows_open, s->nflows, __ATOMIC_RELAXED);
}

/* slirp closes a socket; a port forward's listener, never registered,
 * changes nothing. */
static void cb_unregister_poll_fd(int fd, void *opaque)
{
    struct slirp_be *s = opaque;
    struct flow *f = fd < 0 ? NULL : flow_find(s, fd);
    if (!f)
        return;
    *f = s->flows[--s->nflows];
    __atomic_store_n(&s->b.stats.flows_open, s->nflows, __ATOMIC_RELAXED);
}

/* slirp wants its fds looked at again (a new socket, say). The device
 * thread asks slirp for them before every wait, and slirp only calls this
 * from inside a call the device thread made: nothing to do. */
static void cb_notify(void *opaque)
{
    (void)opaque;
}

/* ---- the poll hooks (device thread) ------------------------------------- */

static struct listener *listener_find(struct slirp_be *s, int fd)
{
    for (unsigned i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].fd == fd)
            return &s->listeners[i];
    return NULL;
}

static int cb_add_poll(int fd, int events, void *opaque)
{
    struct slirp_be *s = opaque;
    struct listener *l = listener_find(s, fd);
    if (l && l->pause_ms) {
        if (now_ns() / 1000000 < l->pause_ms)
            return -1; /* not watched this round */
        l->pause_ms = 0;
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
    int idx = net_pollset_add(s->ps, fd, ev); /* -1: not polled this round */
    if (l)
        l->idx = idx;
    return idx;
}

static int cb_get_revents(int idx, void *opaque)
{
    struct slirp_be *s = opaque;
    if (idx < (int)s->ps_first) /* only slirp's own fds */
        return 0;
    short re = net_pollset_revents(s->ps, idx);
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
            lib.slirp_handle_timer(s->slirp, due->id, due->cb_opaque);
        else if (due->cb)
            due->cb(due->cb_opaque);
    }
}

static void sl_poll_prepare(struct net_backend *be, struct net_pollset *ps, int *timeout_ms)
{
    struct slirp_be *s = (struct slirp_be *)be;
    s->ps = ps;
    s->ps_first = ps->n;
    uint32_t timeout = *timeout_ms < 0 ? UINT32_MAX : (uint32_t)*timeout_ms;
    int64_t next = timers_next(s, now_ns() / 1000000);
    if (next >= 0 && next < (int64_t)timeout)
        timeout = (uint32_t)next;
    for (unsigned i = 0; i < s->nlisteners; i++)
        s->listeners[i].idx = -1;
    pthread_mutex_lock(&slirp_global);
    lib.slirp_pollfds_fill(s->slirp, &timeout, cb_add_poll, s);
    pthread_mutex_unlock(&slirp_global);
    int64_t now_ms = now_ns() / 1000000;
    for (unsigned i = 0; i < s->nlisteners; i++) { /* wake when a pause ends */
        int64_t until = s->listeners[i].pause_ms;
        if (until && until - now_ms < (int64_t)timeout)
            timeout = until > now_ms ? (uint32_t)(until - now_ms) : 0;
    }
    *timeout_ms = timeout == UINT32_MAX ? -1 : timeout > INT_MAX ? INT_MAX : (int)timeout;
}

/* After a round in which slirp opened no socket: a listener that was
 * readable and still is has a connection slirp could not accept (EMFILE);
 * leave it out of the wait for a while instead of waking for it again at
 * once (see above). */
static void pause_stuck_listeners(struct slirp_be *s, const struct net_pollset *ps)
{
    for (unsigned i = 0; i < s->nlisteners; i++) {
        struct listener *l = &s->listeners[i];
        if (l->idx < (int)s->ps_first || !(net_pollset_revents(ps, l->idx) & POLLIN))
            continue;
        struct pollfd p = { .fd = l->fd, .events = POLLIN };
        if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN))
            l->pause_ms = now_ns() / 1000000 + ACCEPT_PAUSE_MS;
    }
}

static void sl_poll_dispatch(struct net_backend *be, const struct net_pollset *ps, bool error)
{
    struct slirp_be *s = (struct slirp_be *)be;
    s->ps = (struct net_pollset *)ps; /* read only from here on */
    uint64_t opened = s->opened;
    pthread_mutex_lock(&slirp_global);
    lib.slirp_pollfds_poll(s->slirp, error, cb_get_revents, s);
    timers_run(s);
    pthread_mutex_unlock(&slirp_global);
    if (!error && s->opened == opened)
        pause_stuck_listeners(s, ps);
    s->ps = NULL;
}

/* ---- life cycle -------------------------------------------------------- */

static void sl_free(struct net_backend *be)
{
    struct slirp_be *s = (struct slirp_be *)be;
    if (!s)
        return;
    if (s->slirp) {
        pthread_mutex_lock(&slirp_global);
        lib.slirp_cleanup(s->slirp); /* closes its sockets, frees timers via cb */
        pthread_mutex_unlock(&slirp_global);
    }
    while (s->timers) {
        struct stimer *t = s->timers;
        s->timers = t->next;
        free(t);
    }
    ring_free(&s->rx);
    free(s->flows);
    free(s);
}

static const struct net_backend_ops slirp_ops = {
    .send = sl_send,
    .recv = sl_recv,
    .set_guest_offloads = sl_set_guest_offloads,
    .poll_prepare = sl_poll_prepare,
    .poll_dispatch = sl_poll_dispatch,
    .free = sl_free,
};

/* A UDP port another program holds is not refused by slirp, which binds
 * with SO_REUSEADDR; a bind without it tells. */
static int udp_port_free(const struct net_hostfwd *f)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons(f->host_port),
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
        set_error(err, VMLET_ERR_HOST,
                  "hostfwd %s: port %u needs privileges (ports below "
                  "1024 need CAP_NET_BIND_SERVICE); forward a port of 1024 or above",
                  where, f->host_port);
        break;
    case EADDRNOTAVAIL: {
        char a[INET_ADDRSTRLEN];
        struct in_addr in = { htonl(f->host_addr) };
        inet_ntop(AF_INET, &in, a, sizeof a);
        set_error(err, VMLET_ERR_HOST, "hostfwd %s: %s is not an address of this host", where, a);
        break;
    }
    default:
        set_error(err, VMLET_ERR_HOST, "hostfwd %s: cannot listen: %s", where, strerror(e));
        break;
    }
}

static int collect_listener(int fd, int events, void *opaque)
{
    struct slirp_be *s = opaque;
    int listening = 0;
    socklen_t len = sizeof listening;
    (void)events;
    if (s->nlisteners < NET_SPEC_MAX_HOSTFWD &&
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening)
        s->listeners[s->nlisteners++] = (struct listener){ .fd = fd, .idx = -1 };
    return -1;
}

/* Before the guest has any flow, every socket slirp polls belongs to a
 * port forward; the TCP ones are its listeners. */
static void find_listeners(struct slirp_be *s)
{
    uint32_t timeout = 0;
    pthread_mutex_lock(&slirp_global);
    lib.slirp_pollfds_fill(s->slirp, &timeout, collect_listener, s);
    pthread_mutex_unlock(&slirp_global);
}

struct net_backend *net_slirp_new(const struct net_spec *spec, vmlet_error *err)
{
    if (spec->kind != NET_SPEC_USER) {
        set_error(err, VMLET_ERR_INTERNAL, "user networking: not a user spec");
        return NULL;
    }
    pthread_once(&lib_once, lib_load);
    if (lib_error[0]) {
        set_error(err, VMLET_ERR_HOST,
                  "user networking needs libslirp (Debian package libslirp0): %s; install it, "
                  "or use a tap NIC (--net tap=NAME)",
                  lib_error);
        return NULL;
    }
    struct slirp_be *s = calloc(1, sizeof *s);
    if (!s) {
        set_error(err, VMLET_ERR_NOMEM, "user networking: out of memory");
        return NULL;
    }
    s->b.ops = &slirp_ops;
    s->b.fd = -1; /* its work runs in the poll hooks */
    s->b.fd_is_wake = false;
    s->b.offloads = 0;
    atomic_init(&s->b.failed, false);
    snprintf(s->b.desc, sizeof s->b.desc, "user");
    s->max_flows = net_spec_max_flows(spec);
    if (!ring_init(&s->rx, NET_SLIRP_RX_FRAMES)) {
        set_error(err, VMLET_ERR_NOMEM, "user networking: out of memory");
        sl_free(&s->b);
        return NULL;
    }

    s->cb = (SlirpCb)
    {
        .send_packet = cb_send_packet, .guest_error = cb_guest_error,
        .clock_get_ns = cb_clock_get_ns, .timer_new = cb_timer_new, .timer_free = cb_timer_free,
        .timer_mod = cb_timer_mod, .register_poll_fd = cb_register_poll_fd,
        .unregister_poll_fd = cb_unregister_poll_fd, .notify = cb_notify,
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
    /* On (the default), 10.0.2.2 reaches the host's 127.0.0.1: services
     * bound to loopback only, which trust local users, see the guest as
     * one. host-loopback=off makes slirp refuse those connections. (Not
     * cfg.restricted: that cuts the guest off from everything outside,
     * not just the host.) */
    cfg.disable_host_loopback = spec->no_host_loopback;
    cfg.enable_emu = false; /* libslirp calls that code unsafe */

    pthread_mutex_lock(&slirp_global);
    s->slirp = lib.slirp_new(&cfg, &s->cb, s);
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
            int rc = lib.slirp_add_hostfwd(s->slirp, f->udp, host, f->host_port, guest,
                                           f->guest_port);
            e = rc < 0 ? (errno ? errno : EINVAL) : 0;
            pthread_mutex_unlock(&slirp_global);
        }
        if (e) {
            hostfwd_error(f, e, err);
            sl_free(&s->b);
            return NULL;
        }
        if (f->udp)
            s->udp_fwd[s->nudp_fwd++] = (struct guest_port){ f->guest_addr, f->guest_port };
    }
    find_listeners(s);
    return &s->b;
}
