/* The --net option: what network a NIC attaches to, parsed without
 * touching the host (no sockets, no devices), so the configuration can be
 * checked before anything is created and every mistake is reported as one
 * line naming the bad part.
 *
 *   user[,hostfwd=RULE]...[,mac=MAC][,host-loopback=on|off][,max-flows=N]
 *                                        user-mode NAT through libslirp
 *   tap=NAME[,mac=MAC]                   a host TAP device
 *
 *   RULE  [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT
 *         (protocol default tcp; HOSTADDR default 127.0.0.1, so a forward
 *         is reachable from this host only unless 0.0.0.0 is given;
 *         GUESTADDR default 10.0.2.15, the address the guest gets by DHCP)
 *   MAC   six hex bytes, e.g. 52:54:00:12:34:56 (unicast, not all zero)
 *   host-loopback=off  the guest's connections to 10.0.2.2 no longer reach
 *         the host's 127.0.0.1 (default on, as QEMU's user networking)
 *   max-flows=N  at most N host sockets for the guest's flows (TCP
 *         connections, UDP source ports, pings), NET_MAX_FLOWS_MIN to
 *         NET_MAX_FLOWS_MAX, default NET_MAX_FLOWS_DEFAULT
 *
 *     struct net_spec s;
 *     vmlet_error err;
 *     if (net_spec_parse("user,hostfwd=tcp::8080-:80", &s, &err) < 0)
 *         puts(err.message);   // --net '...': hostfwd '...': ...
 */
#ifndef VMLET_NETSPEC_H
#define VMLET_NETSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmlet.h"

#define NET_SPEC_MAX_HOSTFWD 16
#define NET_TAP_NAME_MAX     15 /* IFNAMSIZ - 1 */
#define NET_HOSTFWD_TEXT_MAX 64 /* a rule is shorter than this */

/* max-flows=N: how many host sockets one user network may hold. */
#define NET_MAX_FLOWS_DEFAULT 512
#define NET_MAX_FLOWS_MIN     1
#define NET_MAX_FLOWS_MAX     65536

/* The user-mode network (like QEMU's -netdev user). Host byte order. */
#define NET_USER_NETWORK         0x0a000200u /* 10.0.2.0/24 */
#define NET_USER_NETMASK         0xffffff00u
#define NET_USER_GATEWAY         0x0a000202u /* 10.0.2.2: the host */
#define NET_USER_DNS             0x0a000203u /* 10.0.2.3 */
#define NET_USER_GUEST           0x0a00020fu /* 10.0.2.15: first DHCP address */
#define NET_HOSTFWD_DEFAULT_HOST 0x7f000001u /* 127.0.0.1 */

enum net_spec_kind {
    NET_SPEC_USER,
    NET_SPEC_TAP,
};

struct net_hostfwd {
    bool udp;
    uint32_t host_addr;              /* host byte order; 0 = all interfaces */
    uint16_t host_port;              /* 1..65535 */
    uint32_t guest_addr;             /* host byte order, inside 10.0.2.0/24 */
    uint16_t guest_port;             /* 1..65535 */
    char text[NET_HOSTFWD_TEXT_MAX]; /* the rule as written, for messages */
};

struct net_spec {
    enum net_spec_kind kind;
    char tap_name[NET_TAP_NAME_MAX + 1];
    bool has_mac;
    uint8_t mac[6];
    unsigned nhostfwd;
    struct net_hostfwd hostfwd[NET_SPEC_MAX_HOSTFWD];
    /* host-loopback=off (user only). Stored negated so that a zeroed spec
     * keeps today's default, loopback reachable. */
    bool no_host_loopback;
    /* max-flows=N (user only); 0: NET_MAX_FLOWS_DEFAULT. */
    unsigned max_flows;
};

/* Writes s back as a --net value that net_spec_parse() takes, with the
 * NIC's MAC (mac, whether given or derived) always spelled out: what a
 * snapshot keeps. Returns 0, or -1 if it does not fit in len bytes. */
int net_spec_format(const struct net_spec *s, const uint8_t mac[6], char *buf, size_t len);

/* Parses one --net value. Returns 0, or -1 with err (VMLET_ERR_INVALID)
 * saying "net 'TEXT': PART: what is wrong". */
int net_spec_parse(const char *text, struct net_spec *out, vmlet_error *err);

/* The pieces of a spec, shared by net_spec_parse() and vm.json's "network"
 * entries (src/config_json.c), so both fill a struct net_spec by the same
 * rules. They say what is wrong as a code; each caller words it in its own
 * syntax (a --net value, or a JSON key path). */
enum net_fwd_error {
    NET_FWD_OK,
    NET_FWD_TOO_LONG, /* NET_HOSTFWD_TEXT_MAX bytes or more */
    NET_FWD_NO_COLON, /* no ':' after the protocol */
    NET_FWD_PROTOCOL, /* part: not tcp or udp */
    NET_FWD_NO_DASH,  /* no '-' between host and guest side */
    NET_FWD_TWO_DASHES,
    NET_FWD_HOST_SIDE, /* part: the host side, without a ':' */
    NET_FWD_HOST_ADDR, /* part: not an IPv4 address */
    NET_FWD_HOST_PORT, /* part: not 1..65535 */
    NET_FWD_GUEST_SIDE,
    NET_FWD_GUEST_ADDR,
    NET_FWD_GUEST_NETWORK,  /* part: outside 10.0.2.0/24 */
    NET_FWD_GUEST_RESERVED, /* part: see net_guest_addr_role() */
    NET_FWD_GUEST_PORT,
};

/* Parses the rule rule[0..len) (no NUL needed) into *f, which also keeps
 * the rule as written. On an error, part (NET_HOSTFWD_TEXT_MAX bytes)
 * holds the piece that is wrong, as written. */
enum net_fwd_error net_parse_hostfwd(const char *rule, size_t len, struct net_hostfwd *f,
                                     char *part);
/* max-flows: whether n is in NET_MAX_FLOWS_MIN..NET_MAX_FLOWS_MAX; and the
 * cap a spec asks for (its max_flows, or the default). */
bool net_max_flows_ok(uint64_t n);
unsigned net_spec_max_flows(const struct net_spec *s);

/* What a reserved guest address is: "the gateway (the host)", "the DNS
 * server", "the network address" or "the broadcast address". */
const char *net_guest_addr_role(uint32_t addr);
/* Two forwards collide if they listen on the same protocol and port and
 * their addresses overlap (0.0.0.0 overlaps everything). */
bool net_hostfwd_clash(const struct net_hostfwd *a, const struct net_hostfwd *b);

enum net_mac_error {
    NET_MAC_OK,
    NET_MAC_SYNTAX,    /* not exactly xx:xx:xx:xx:xx:xx */
    NET_MAC_MULTICAST, /* odd first byte */
    NET_MAC_ZERO,      /* 00:00:00:00:00:00 */
};
/* A NIC's MAC from s[0..len): six hex pairs, unicast, not all zero. */
enum net_mac_error net_parse_mac(const char *s, size_t len, uint8_t mac[6]);

/* What Linux accepts as an interface name (1 to NET_TAP_NAME_MAX bytes),
 * minus the characters --net and our messages cannot carry. */
bool net_tap_name_ok(const char *s, size_t len);

/* The MAC of NIC number index (0-based, in --net order): the one given,
 * else a stable default: for user networking 52:54:00:12:34:(0x56 + index)
 * (QEMU's numbering), for TAP 52:54:00 followed by three bytes hashed
 * from the TAP name, so VMs on different TAP devices of one bridge do not
 * collide and a VM keeps its MAC (and DHCP lease) from run to run. */
void net_spec_mac(const struct net_spec *s, unsigned index, uint8_t mac[6]);

/* Checks what only shows across NICs: one TAP device used twice, the same
 * host port forwarded twice, two NICs with the same MAC. Returns 0, or -1
 * with err naming both. */
int net_specs_check(const struct net_spec *specs, unsigned n, vmlet_error *err);

/* "tcp:127.0.0.1:8080": the listening side of a rule, for messages. */
void net_hostfwd_host_text(const struct net_hostfwd *f, char *buf, size_t len);

/* Formats a MAC as 52:54:00:12:34:56 (buf of at least 18 bytes). */
void net_mac_text(const uint8_t mac[6], char *buf, size_t len);

#endif
