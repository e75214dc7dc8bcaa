/* User-mode networking as a network backend (backend/net.h), through
 * libslirp: the guest gets NAT to the host's network with no set-up and
 * no privileges, like QEMU's -netdev user.
 *
 *   network 10.0.2.0/24; the gateway 10.0.2.2 is the host (a connection
 *   from the guest to 10.0.2.2:PORT reaches 127.0.0.1:PORT on the host);
 *   DNS at 10.0.2.3 (relayed to the host's resolver); DHCP hands out
 *   10.0.2.15 first. IPv4 only. MTU 1500.
 *
 *     struct net_spec s;   // from net_spec_parse("user,hostfwd=...")
 *     struct net_backend *be = net_slirp_new(&s, &err);
 *
 * Port forwards (s.hostfwd) listen on the host from creation on; an
 * address or port that cannot be used fails creation with a message such
 * as "hostfwd tcp:127.0.0.1:8080: port 8080 is already in use".
 *
 * Threads: none of its own. libslirp runs on the virtio-net device
 * thread through the backend's poll hooks (backend/net.h): slirp's sockets
 * join the device's wait and its timers set the wait's timeout, so a frame
 * crosses from a host socket to the guest's queue, and back, without a
 * thread switch. libslirp is not thread-safe and its instances share
 * global state, so all instances in the process take one global lock
 * around their libslirp calls. While no device thread runs (before the
 * driver starts, after a reset) slirp is not polled: connections to a
 * port forward wait in the host's listen queue.
 *   guest -> slirp: send() hands the frame to slirp at once (a copy);
 *   slirp -> guest: a fixed queue of 256 frames that the device empties
 *     into the guest's buffers after each round; when full (the guest is
 *     not reading) slirp's frames are dropped and counted in rx_dropped;
 *     TCP resends.
 * backend.fd is -1: the device has nothing to wait on but the poll hooks.
 *
 * Flows: slirp holds at most spec max-flows (default 512) host sockets for
 * the guest's connections, UDP source ports and pings; at the cap, guest
 * frames that would open another are dropped and counted (flows_refused;
 * flows_open is the gauge). A port forward is not polled for 100 ms at a
 * time while its connection cannot be accepted (EMFILE). See slirp.c.
 *
 * Offloads: none (backend.offloads is 0), so the guest sends complete
 * checksums and no segmentation, and slirp's frames carry an empty
 * header. Frames larger than 1514 bytes from the guest are dropped and
 * counted (tx_dropped). */
#ifndef VMLET_BACKEND_SLIRP_H
#define VMLET_BACKEND_SLIRP_H

#include "vmlet.h"
#include "backend/net.h"
#include "netspec.h"

#define NET_SLIRP_MTU       1500
#define NET_SLIRP_RX_FRAMES 256

/* Creates the user-mode network for spec (kind NET_SPEC_USER), its port
 * forwards listening. Returns NULL with err (one line) on failure. */
struct net_backend *net_slirp_new(const struct net_spec *spec, vmlet_error *err);

#endif
