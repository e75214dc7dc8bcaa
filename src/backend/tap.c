/* TAP backend (see tap.h). Implements the host side of the virtio-net
 * header of virtio 1.2 section 5.1.6 through Linux's tun driver
 * (Documentation/networking/tuntap.rst): IFF_VNET_HDR with a 12-byte
 * header (TUNSETVNETHDRSZ), so frames cross with struct virtio_net_hdr_v1
 * in front exactly as the device and the guest see them, and
 * TUNSETOFFLOAD for the guest-side offloads of section 5.1.3.
 *
 * The host side is trusted no more than it must be: what recv() returns
 * is checked by the device (header against the negotiated features,
 * length) before it reaches the guest. */
#include "backend/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "error.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

#define TUN_PATH "/dev/net/tun"

/* The offloads the kernel takes from us on write with a vnet header. */
#define HOST_OFFLOADS \
    (NET_BIT(VIRTIO_NET_F_CSUM) | NET_BIT(VIRTIO_NET_F_HOST_TSO4) | \
     NET_BIT(VIRTIO_NET_F_HOST_TSO6) | NET_BIT(VIRTIO_NET_F_HOST_ECN))

struct tap {
    struct net_backend b; /* first: the device sees only this */
    char name[IFNAMSIZ];
    unsigned tun_offloads; /* TUN_F_* the kernel accepted in the probe */
    uint8_t *linear;       /* for frames in more than IOV_MAX pieces */
};

void net_tap_error_text(const char *name, int e, bool exists, char *buf, size_t len)
{
    switch (e) {
    case EPERM:
        if (!exists)
            snprintf(buf, len,
                     "tap '%s': no such device and no permission to create it "
                     "(needs CAP_NET_ADMIN); create it with: ip tuntap add dev %s mode tap "
                     "user $USER && ip link set %s up",
                     name, name, name);
        else
            snprintf(buf, len,
                     "tap '%s': permission denied (the device belongs to another "
                     "user or group); recreate it for you with: ip tuntap del dev %s mode tap "
                     "&& ip tuntap add dev %s mode tap user $USER && ip link set %s up",
                     name, name, name, name);
        break;
    case EBUSY:
        snprintf(buf, len,
                 "tap '%s' is in use by another program (a TAP device serves one "
                 "at a time); stop it or give another device",
                 name);
        break;
    case EINVAL:
        if (exists) {
            snprintf(buf, len,
                     "tap '%s' exists but is not a TAP device (a TUN device or "
                     "another kind of interface); give a device made with: ip tuntap add "
                     "dev NAME mode tap user $USER",
                     name);
            break;
        }
        /* fall through */
    default:
        snprintf(buf, len, "tap '%s': cannot attach to the device: %s", name, strerror(e));
        break;
    }
}

/* ---- data path ----------------------------------------------------------- */

static enum net_send_result tap_send(struct net_backend *be, const struct iovec *iov,
                                     unsigned iovcnt, size_t len)
{
    struct tap *t = (struct tap *)be;
    if (atomic_load_explicit(&be->failed, memory_order_relaxed)) {
        NET_STAT_INC(&be->stats, tx_errors);
        return NET_SEND_DROPPED;
    }
    size_t total = VIRTIO_NET_HDR_LEN + len;
    struct iovec one;
    if (iovcnt > IOV_MAX) {
        /* A hostile or odd chain of tiny pieces: one copy, one write. */
        if (!t->linear && !(t->linear = malloc(NET_BUF_MAX))) {
            NET_STAT_INC(&be->stats, tx_errors);
            return NET_SEND_DROPPED;
        }
        size_t off = 0;
        for (unsigned i = 0; i < iovcnt && off < total; i++) {
            size_t n = iov[i].iov_len < total - off ? iov[i].iov_len : total - off;
            memcpy(t->linear + off, iov[i].iov_base, n);
            off += n;
        }
        one = (struct iovec){ t->linear, total };
        iov = &one;
        iovcnt = 1;
    }
    ssize_t w;
    do {
        w = writev(be->fd, iov, (int)iovcnt);
    } while (w < 0 && errno == EINTR);
    if (w >= 0)
        return NET_SEND_OK; /* tun takes a frame whole or not at all */
    switch (errno) {
    case EAGAIN: return NET_SEND_BUSY;
    case EIO: /* the device is down: like a cable out */
        NET_STAT_INC(&be->stats, tx_dropped);
        return NET_SEND_DROPPED;
    case EBADFD: /* the device was deleted under us */
    case EBADF:
        atomic_store(&be->failed, true);
        /* fall through */
    default: /* EINVAL: the kernel refused the frame */
        NET_STAT_INC(&be->stats, tx_errors);
        return NET_SEND_DROPPED;
    }
}

static ssize_t tap_recv(struct net_backend *be, void *buf, size_t cap)
{
    if (atomic_load_explicit(&be->failed, memory_order_relaxed))
        return -1;
    ssize_t r;
    do {
        r = read(be->fd, buf, cap);
    } while (r < 0 && errno == EINTR);
    if (r > 0)
        return r;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    /* 0 or EBADFD: detached (device deleted); EFAULT/EINVAL: a frame that
     * did not fit, already dropped by the kernel. */
    if (r == 0 || errno == EBADFD || errno == EBADF)
        atomic_store(&be->failed, true);
    NET_STAT_INC(&be->stats, rx_errors);
    return -1;
}

/* TUN_F_* for the guest's accepted features, following the dependencies
 * of section 5.1.3.1 (each segmentation offload needs GUEST_CSUM). */
static unsigned tun_flags_for(uint64_t f, unsigned supported)
{
    unsigned flags = 0;
    if (!(f & NET_BIT(VIRTIO_NET_F_GUEST_CSUM)))
        return 0;
    flags |= TUN_F_CSUM;
    if (f & NET_BIT(VIRTIO_NET_F_GUEST_TSO4))
        flags |= TUN_F_TSO4;
    if (f & NET_BIT(VIRTIO_NET_F_GUEST_TSO6))
        flags |= TUN_F_TSO6;
    if ((flags & (TUN_F_TSO4 | TUN_F_TSO6)) && (f & NET_BIT(VIRTIO_NET_F_GUEST_ECN)))
        flags |= TUN_F_TSO_ECN;
    return flags & supported;
}

static int tap_set_guest_offloads(struct net_backend *be, uint64_t features)
{
    struct tap *t = (struct tap *)be;
    unsigned flags = tun_flags_for(features, t->tun_offloads);
    if (ioctl(be->fd, TUNSETOFFLOAD, flags) == 0)
        return 0;
    /* Whatever we could not enable, the kernel now resolves itself (it
     * checksums and segments before handing frames to us). */
    ioctl(be->fd, TUNSETOFFLOAD, 0u);
    return -1;
}

static void tap_free(struct net_backend *be)
{
    struct tap *t = (struct tap *)be;
    if (be->fd >= 0)
        close(be->fd);
    free(t->linear);
    free(t);
}

static const struct net_backend_ops tap_ops = {
    .send = tap_send,
    .recv = tap_recv,
    .set_guest_offloads = tap_set_guest_offloads,
    .free = tap_free,
};

/* ---- opening ------------------------------------------------------------- */

/* Interface flags through an ordinary socket; false if unknown. */
static bool if_flags(const char *name, short *flags)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    struct ifreq ifr = { 0 };
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    if (ok)
        *flags = ifr.ifr_flags;
    close(s);
    return ok;
}

static bool if_up(const char *name)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    struct ifreq ifr = { 0 };
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    if (ok) {
        ifr.ifr_flags |= IFF_UP;
        ok = ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
    }
    close(s);
    return ok;
}

struct net_backend *net_tap_open(const char *name, vmlet_error *err)
{
    size_t nlen = name ? strlen(name) : 0;
    if (nlen == 0 || nlen >= IFNAMSIZ || strchr(name, '/')) {
        set_error(err, VMLET_ERR_INVALID,
                  "tap '%s': not a valid interface name (1-%d "
                  "characters, no '/')",
                  name ? name : "", IFNAMSIZ - 1);
        return NULL;
    }
    bool existed = if_nametoindex(name) != 0;

    int fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENXIO || e == ENODEV)
            set_error(err, VMLET_ERR_HOST,
                      "tap '%s': %s does not exist (%s); load the tun "
                      "module: modprobe tun",
                      name, TUN_PATH, strerror(e));
        else if (e == EACCES || e == EPERM)
            set_error(err, VMLET_ERR_HOST,
                      "tap '%s': cannot open %s (%s); it is normally "
                      "mode 0666: chmod 0666 %s",
                      name, TUN_PATH, strerror(e), TUN_PATH);
        else
            set_error(err, VMLET_ERR_HOST, "tap '%s': cannot open %s: %s", name, TUN_PATH,
                      strerror(e));
        return NULL;
    }

    unsigned features = 0;
    if (ioctl(fd, TUNGETFEATURES, &features) == 0 && !(features & IFF_VNET_HDR)) {
        close(fd);
        set_error(err, VMLET_ERR_HOST,
                  "tap '%s': the kernel's tun driver has no vnet "
                  "header support (IFF_VNET_HDR); use a newer kernel",
                  name);
        return NULL;
    }

    struct ifreq ifr = { 0 };
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    int rc = ioctl(fd, TUNSETIFF, &ifr);
    if (rc < 0 && errno == EINVAL && existed) {
        /* A multi_queue device only takes queues that say so. */
        ifr.ifr_flags |= IFF_MULTI_QUEUE;
        rc = ioctl(fd, TUNSETIFF, &ifr);
        if (rc < 0 && errno != EBUSY && errno != EPERM)
            errno = EINVAL; /* report the first, clearer failure */
    }
    if (rc < 0) {
        int e = errno;
        close(fd);
        char msg[sizeof err->message];
        net_tap_error_text(name, e, existed || if_nametoindex(name) != 0, msg, sizeof msg);
        set_error(err, e == EINVAL ? VMLET_ERR_INVALID : VMLET_ERR_HOST, "%s", msg);
        return NULL;
    }

    int hdr = VIRTIO_NET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
        int e = errno;
        close(fd);
        set_error(err, VMLET_ERR_HOST,
                  "tap '%s': cannot use 12-byte vnet headers "
                  "(TUNSETVNETHDRSZ: %s)",
                  name, strerror(e));
        return NULL;
    }

    struct tap *t = calloc(1, sizeof *t);
    if (!t) {
        close(fd);
        set_error(err, VMLET_ERR_NOMEM, "tap '%s': out of memory", name);
        return NULL;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    t->b.ops = &tap_ops;
    t->b.fd = fd;
    t->b.fd_is_wake = false;
    atomic_init(&t->b.failed, false);
    snprintf(t->b.desc, sizeof t->b.desc, "tap '%s'", name);

    /* Which guest-side offloads the kernel can give us; then none until
     * a driver accepts them. */
    unsigned want = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    if (ioctl(fd, TUNSETOFFLOAD, want) == 0)
        t->tun_offloads = want;
    else if (ioctl(fd, TUNSETOFFLOAD, (unsigned)TUN_F_CSUM) == 0)
        t->tun_offloads = TUN_F_CSUM;
    ioctl(fd, TUNSETOFFLOAD, 0u);
    t->b.offloads = HOST_OFFLOADS;
    if (t->tun_offloads & TUN_F_CSUM)
        t->b.offloads |= NET_BIT(VIRTIO_NET_F_GUEST_CSUM);
    if (t->tun_offloads & TUN_F_TSO4)
        t->b.offloads |= NET_BIT(VIRTIO_NET_F_GUEST_TSO4);
    if (t->tun_offloads & TUN_F_TSO6)
        t->b.offloads |= NET_BIT(VIRTIO_NET_F_GUEST_TSO6);
    if (t->tun_offloads & TUN_F_TSO_ECN)
        t->b.offloads |= NET_BIT(VIRTIO_NET_F_GUEST_ECN);

    short flags = 0;
    if (!existed) {
        /* We created it (we had CAP_NET_ADMIN): it is ours to bring up. */
        bool up = if_up(name);
        snprintf(t->b.warning, sizeof t->b.warning,
                 "tap '%s' did not exist: vmlet created it%s; it has no address and goes "
                 "away when vmlet exits (for a lasting one: ip tuntap add dev %s mode tap "
                 "user $USER)",
                 name, up ? " and brought it up" : " (still down)", name);
    } else if (if_flags(name, &flags) && !(flags & IFF_UP)) {
        snprintf(t->b.warning, sizeof t->b.warning,
                 "tap '%s' is down: the guest's network will be silent until: "
                 "ip link set %s up",
                 name, name);
    }
    return &t->b;
}
