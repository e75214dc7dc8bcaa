/* Could a guest frame open a host socket in libslirp (see flowcap.h). */
#include "backend/flowcap.h"

#include "netspec.h"

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)be16(p) << 16 | be16(p + 2);
}

struct net_flow_frame net_flow_frame(const uint8_t *f, size_t len)
{
    struct net_flow_frame fi = { .may_open = true };
    if (len < 14 || be16(f + 12) != 0x0800) {
        fi.may_open = false; /* ARP, or what slirp ignores (IPv6 is off) */
        return fi;
    }
    const uint8_t *ip = f + 14;
    size_t iplen = len - 14;
    if (iplen < 20 || ip[0] >> 4 != 4)
        return fi; /* slirp drops it; so does the cap */
    size_t ihl = (size_t)(ip[0] & 15) * 4;
    if (ihl < 20 || iplen < ihl || (be16(ip + 6) & 0x3fff))
        return fi; /* bad, or a fragment: the next header is not ours to see */
    const uint8_t *l4 = ip + ihl;
    size_t l4len = iplen - ihl;
    uint32_t dst = be32(ip + 16);
    switch (ip[9]) {
    case 6: /* TCP: a SYN without ACK starts a connection */
        if (l4len >= 14)
            fi.may_open = (l4[13] & 0x02) && !(l4[13] & 0x10);
        break;
    case 17: /* UDP: a socket per guest source, but DHCP is slirp's own */
        if (l4len >= 4) {
            fi.udp = true;
            fi.src = be32(ip + 12);
            fi.sport = be16(l4);
            fi.may_open = !(be16(l4 + 2) == 67 && (dst == NET_USER_GATEWAY || dst == 0xffffffffu));
        }
        break;
    case 1: /* ICMP: an echo request beyond the gateway and DNS gets a socket */
        if (l4len >= 4)
            fi.may_open = l4[0] == 8 && dst != NET_USER_GATEWAY && dst != NET_USER_DNS;
        break;
    default: fi.may_open = false; /* slirp knows no other protocol */
    }
    return fi;
}
