/* Choosing a NIC's backend from its --net spec (netspec.h): a TAP device
 * or user-mode NAT, and the MAC the guest sees. Kept out of virtio/net.c
 * so that the device itself links without either backend. */
#include "backend/net.h"
#include "backend/slirp.h"
#include "backend/tap.h"
#include "netspec.h"
#include "virtio/net.h"

struct virtio_net *virtio_net_new_for_spec(const struct net_spec *spec, unsigned index,
                                           vmlet_error *err)
{
    struct net_backend *be = spec->kind == NET_SPEC_TAP ? net_tap_open(spec->tap_name, err)
                                                        : net_slirp_new(spec, err);
    if (!be)
        return NULL;
    uint8_t mac[6];
    net_spec_mac(spec, index, mac);
    return virtio_net_new(be, mac, err); /* takes be, warning and all */
}
