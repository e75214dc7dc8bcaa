/* virtio-vsock, the socket device (virtio 1.2 section 5.10), with the
 * host side on Unix sockets (docs/vsock.md): a host program connects to
 * uds_path and writes "CONNECT <port>\n" to reach a guest listener; a
 * guest connecting to CID 2 port P reaches the Unix socket
 * "<uds_path>_<P>". */
#ifndef VMLET_VIRTIO_VSOCK_H
#define VMLET_VIRTIO_VSOCK_H

#include <stdint.h>
#include "vmlet.h"
#include "virtio/virtio.h"

#define VIRTIO_ID_VSOCK 19

#define VSOCK_HOST_CID     2
/* Connections per VM, host handshakes in progress included: the rest are
 * refused (RST to the guest, the Unix connection closed). */
#define VSOCK_MAX_CONNS    1024
/* What vmlet buffers for one connection, guest to host, and advertises as
 * its buf_alloc: the guest never has more than this in flight. The first
 * VSOCK_WIDE_CONNS connections open at a time get VSOCK_CONN_BUF (a
 * window wide enough for one stream to run at speed), later ones
 * VSOCK_CONN_BUF_MIN: a guest and host programs that fill every buffer
 * hold at most 128 x 256 KiB + 896 x 64 KiB = 88 MiB. */
#define VSOCK_CONN_BUF     (256 * 1024)
#define VSOCK_CONN_BUF_MIN (64 * 1024)
#define VSOCK_WIDE_CONNS   128
/* The largest payload of one packet either way (Linux sends at most 64 KiB). */
#define VSOCK_MAX_PKT      (64 * 1024)
#define VSOCK_HDR_SIZE     44
/* A host program has this long to send its CONNECT line, and then the
 * guest as long again to answer the request, counted from the request's
 * delivery or from the last packet the guest sent, whichever is later;
 * past that the Unix connection is closed (and the guest sent RST). Linux
 * queues its answer behind the data it is sending: a guest busy with 100
 * connections at once and 64 MiB each way answered some requests after
 * more than 5 s, and once after 14.9 s, in the nested lab. */
#define VSOCK_HANDSHAKE_MS 15000

struct virtio_vsock;

/* Creates the listening socket at uds_path (mode 0600; a stale socket is
 * replaced, a live one or another kind of file refused). Returns NULL
 * with err filled. */
struct virtio_vsock *virtio_vsock_new(uint64_t guest_cid, const char *uds_path, vmlet_error *err);
/* Stops the device, closes every connection, removes the socket it made. */
void virtio_vsock_free(struct virtio_vsock *v);
/* Its ops for the transport (dev is the virtio_vsock); NULL for NULL.
 * One thread ("virtio-vsock") serves the three queues, the listening
 * socket and every connection with poll(). */
struct virtio_device *virtio_vsock_device(struct virtio_vsock *v);

/* Changes the handshake time limit (0: none), from the next activation. */
void virtio_vsock_set_timeout(struct virtio_vsock *v, unsigned ms);

/* Has the next activation start by sending the driver a transport reset
 * event (it drops its connections and reads guest_cid again): for a VM
 * restored from a snapshot, whose host connections are gone. */
void virtio_vsock_queue_transport_reset(struct virtio_vsock *v);

struct virtio_vsock_stats {
    uint64_t conns_opened, conns_refused, conns_reset;
    /* Of conns_refused: a host program that sent no CONNECT line in time,
     * and a guest that did not answer a REQUEST in time. */
    uint64_t line_timeouts, answer_timeouts;
    /* The longest a guest took to answer a host REQUEST it accepted (ms,
     * from the REQUEST reaching its rx queue). */
    uint64_t answer_ms_max;
    uint64_t bytes_to_host, bytes_to_guest;
    uint64_t pkts_dropped, pkts_malformed;
};
void virtio_vsock_get_stats(const struct virtio_vsock *v, struct virtio_vsock_stats *s);

#endif
