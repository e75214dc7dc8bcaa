/* The one question the flow cap of user networking (backend/slirp.c) asks
 * of a guest frame: could it make libslirp open a host socket? Pure: no
 * slirp, no sockets, so it is unit-tested and fuzzed on its own.
 *
 * It reads only the Ethernet type, the fixed IPv4 header and the first 4
 * (UDP, ICMP) or 14 (TCP) bytes after the IPv4 header and its options, each
 * after a length check. What may open a socket, as libslirp 4.x does it:
 *   - a TCP segment with SYN and without ACK (a new connection);
 *   - a UDP datagram (slirp keeps one socket per guest source address and
 *     port; whether this one has it, the caller knows), except DHCP to the
 *     gateway or broadcast, which slirp answers itself;
 *   - an ICMP echo request to anything but the gateway and the DNS
 *     address, which slirp answers itself;
 *   - an IPv4 fragment (its contents are known only after reassembly), and
 *     an IPv4 frame too short or malformed to tell (slirp drops those; the
 *     cap drops them too, so its safety does not rest on slirp's parser).
 * Everything else (ARP, IPv6, which vmlet's slirp has off, other IP
 * protocols) opens nothing. */
#ifndef VMLET_BACKEND_FLOWCAP_H
#define VMLET_BACKEND_FLOWCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct net_flow_frame {
    bool may_open; /* could open a socket (for UDP: if its source has none) */
    bool udp;      /* a UDP datagram from src:sport (host byte order) */
    uint32_t src;
    uint16_t sport;
};

/* frame: the Ethernet frame the guest sent, len bytes. */
struct net_flow_frame net_flow_frame(const uint8_t *frame, size_t len);

#endif
