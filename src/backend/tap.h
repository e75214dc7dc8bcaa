/* A TAP device as a network backend (backend/net.h): full-speed
 * networking through the host kernel, with vnet headers so checksum and
 * segmentation offloads pass between guest and host untouched.
 *
 *     vmlet_error err;
 *     struct net_backend *be = net_tap_open("tap0", &err);
 *     if (!be) puts(err.message);
 *     else if (be->warning[0]) puts(be->warning);   // e.g. the device is down
 *
 * The device is opened through /dev/net/tun with IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR and a 12-byte vnet header (TUNSETVNETHDRSZ), non-blocking.
 * A multi_queue device is attached as one queue. If the device does not
 * exist and vmlet has CAP_NET_ADMIN, the kernel creates it: vmlet then
 * brings it up, and it disappears when vmlet exits (the warning says so);
 * it has no address and is in no bridge until the user puts it there.
 * An existing device that is down is left down (the warning says how to
 * bring it up): vmlet changes nothing it did not create.
 *
 * Offloads (backend.offloads): the kernel always accepts partial
 * checksums and TCP segmentation from us (CSUM, HOST_TSO4/6, HOST_ECN);
 * the guest-side ones (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN) are offered if
 * TUNSETOFFLOAD takes them, and set_guest_offloads() then enables exactly
 * what the driver accepted. UFO and USO are not used.
 *
 * Flow control: recv() reads the fd, which the device reads only when the
 * guest has buffers, so a slow guest leaves frames in the kernel's queue
 * (bounded by the kernel: it drops when full). send() writes the frame;
 * EAGAIN makes it NET_SEND_BUSY and the device waits for EPOLLOUT. */
#ifndef VMLET_BACKEND_TAP_H
#define VMLET_BACKEND_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include "vmlet.h"
#include "backend/net.h"

/* Opens TAP device name (1-15 characters). Returns NULL with err filled
 * with one line naming the device and saying what to do. */
struct net_backend *net_tap_open(const char *name, vmlet_error *err);

/* The message for attaching to name failing with errno e (TUNSETIFF);
 * exists: whether an interface of that name existed. Used by
 * net_tap_open(); public so the wording can be tested without the
 * privileges each case needs. */
void net_tap_error_text(const char *name, int e, bool exists, char *buf, size_t len);

#endif
