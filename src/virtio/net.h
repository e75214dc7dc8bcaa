/* virtio-net (virtio 1.2 section 5.1): an Ethernet NIC for the guest,
 * attached to a network backend (backend/net.h: TAP or user-mode NAT).
 *
 *     struct net_backend *be = net_tap_open("tap0", &err);    // or net_slirp_new()
 *     struct virtio_net *net = virtio_net_new(be, mac, &err);  // takes be
 *     struct virtio_device *dev = virtio_net_device(net);
 *     virtio_pci_new(pci, irq, &mem, &dev->ops, dev);
 *     ...
 *     virtio_net_free(net);     // after the transport is gone; frees be too
 *
 * Or, from a --net spec, backend and MAC chosen (backend/net.c):
 *     struct virtio_net *net = virtio_net_new_for_spec(&spec, index, &err);
 *
 * Queues: receiveq1 (0), transmitq1 (1) and the control queue (2, used
 * if the driver accepts VIRTIO_NET_F_CTRL_VQ); 256 entries each.
 *
 * Features offered: MAC, STATUS (link up), MRG_RXBUF, CTRL_VQ, CTRL_RX,
 * CTRL_MAC_ADDR, and of the offloads CSUM, GUEST_CSUM, GUEST_TSO4/6,
 * GUEST_ECN, GUEST_UFO, GUEST_USO4/6, HOST_TSO4/6, HOST_ECN, HOST_UFO,
 * HOST_USO exactly those the backend reports (slirp: none; TAP: checksum
 * and TCP segmentation both ways). The transport adds VERSION_1,
 * INDIRECT_DESC and EVENT_IDX. Feature dependencies (5.1.3.1) are
 * enforced on what the driver accepts: an offload whose prerequisite was
 * not accepted counts as not negotiated.
 *
 * Hostile guest, hostile network (docs/hostile-guest.md):
 *   - transmit chains must be device-readable only, hold the 12-byte
 *     header and a frame of 14..65589 bytes; the header must use only
 *     negotiated offloads, with csum_start + csum_offset + 2 and hdr_len
 *     inside the frame and a non-zero gso_size for segmentation. Anything
 *     else is returned unsent and counted in tx_malformed. The backend
 *     gets a sanitised copy of the header, never the guest's memory.
 *   - received frames get the same checks against the guest's side of
 *     the offloads (a frame the driver did not agree to is dropped:
 *     rx_malformed), shorter than an Ethernet header is dropped, and a
 *     frame larger than the guest's buffers is dropped (rx_too_big): one
 *     buffer without MRG_RXBUF, with it up to as many buffers as the queue
 *     holds. Receive buffers too small for the header are returned unused
 *     (rx_bad_buffers).
 *   - a broken ring or chain (VIRTQ_BROKEN) sets NEEDS_RESET and that
 *     queue is left alone until reset.
 *   - memory is fixed at creation: one frame buffer, one held receive
 *     chain per queue entry, one transmit chain. The backend is read only
 *     while the guest has posted receive buffers (backpressure); a guest
 *     that stops reading costs nothing but the backend's bounded queue.
 *
 * Receive filtering (CTRL_RX): after reset the device is promiscuous (a
 * driver without CTRL_RX gets every frame); PROMISC, ALLMULTI and
 * MAC_TABLE_SET (up to 64 unicast and 64 multicast addresses, more means
 * all of that kind) then select by destination MAC; broadcast always
 * passes. CTRL_MAC_ADDR sets the MAC, which config space then shows; reset
 * restores the original.
 *
 * Threads: activate() starts one device thread ("virtio-net") serving all
 * three queues with epoll on the kick eventfds, the backend's fd and a
 * stop eventfd. reset() (and free) stop it and return only after it has
 * been joined: no guest memory is touched afterwards; held receive
 * buffers and a waiting transmit chain are simply forgotten, like the
 * rest of the queue state. reset() must not be called from the device
 * thread nor with a lock held that virtio_notify_queue(),
 * virtio_notify_config() or virtio_set_needs_reset() take.
 * config_read/config_write and virtio_net_get_stats() may be called from
 * any thread. */
#ifndef VMLET_VIRTIO_NET_H
#define VMLET_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmlet.h"
#include "virtio/virtio.h"
#include "backend/net.h"

#define VIRTIO_NET_QUEUE_SIZE  256
#define VIRTIO_NET_RXQ         0
#define VIRTIO_NET_TXQ         1
#define VIRTIO_NET_CTRLQ       2
/* mac, status, max_virtqueue_pairs, mtu, speed, duplex, rss_max_key_size,
 * rss_max_indirection_table_length, supported_hash_types (5.1.4). */
#define VIRTIO_NET_CONFIG_SIZE 24

#define VIRTIO_NET_S_LINK_UP 1

/* Control queue (5.1.6.5). */
#define VIRTIO_NET_CTRL_RX            0
#define VIRTIO_NET_CTRL_RX_PROMISC    0
#define VIRTIO_NET_CTRL_RX_ALLMULTI   1
#define VIRTIO_NET_CTRL_MAC           1
#define VIRTIO_NET_CTRL_MAC_TABLE_SET 0
#define VIRTIO_NET_CTRL_MAC_ADDR_SET  1
#define VIRTIO_NET_OK                 0
#define VIRTIO_NET_ERR                1
#define VIRTIO_NET_MAC_TABLE_MAX      64

struct virtio_net;

/* A NIC with MAC mac on backend be. Takes be in all cases (freed on
 * failure). Returns NULL with err filled when out of memory or fds. */
struct virtio_net *virtio_net_new(struct net_backend *be, const uint8_t mac[6], vmlet_error *err);
/* Resets the device if active, then frees it and its backend. */
void virtio_net_free(struct virtio_net *n);
/* The NIC a --net spec describes: a TAP or user-mode backend as spec
 * says, the spec's MAC or the default one for NIC number index. Returns
 * NULL with err filled. Defined in backend/net.c. */
struct net_spec;
struct virtio_net *virtio_net_new_for_spec(const struct net_spec *spec, unsigned index,
                                           vmlet_error *err);
/* The device as the VM and the transport see it (NULL for NULL): its
 * ops (device.h) are the callbacks; their dev argument is the device. */
struct virtio_device *virtio_net_device(struct virtio_net *n);
/* The NIC that d is, or NULL if d is another kind of device. */
struct virtio_net *virtio_net_of(struct virtio_device *d);
/* What the backend wanted the user to hear at start-up, or NULL. */
const char *virtio_net_warning(const struct virtio_net *n);
/* The device's and the backend's counters, added up. */
void virtio_net_get_stats(const struct virtio_net *n, struct net_stats *out);

/* The checks the device applies, for tests and fuzzing. features: what
 * the driver accepted, after virtio_net_effective_features(). */
uint64_t virtio_net_effective_features(uint64_t accepted);
/* A transmit header for a frame of frame_len bytes: true and the
 * sanitised header for the backend in *out, or false if the driver broke
 * a rule of 5.1.6.2. */
bool virtio_net_tx_hdr_check(const struct virtio_net_hdr_v1 *in, uint64_t features,
                             size_t frame_len, struct virtio_net_hdr_v1 *out);
/* A receive header from the backend: true (and *h cleaned up as 5.1.6.4
 * requires) if the guest may get it, false if it must be dropped. */
bool virtio_net_rx_hdr_check(struct virtio_net_hdr_v1 *h, uint64_t features, size_t frame_len);

#endif
