/* Unit tests for the network backends and the --net parser:
 *   src/netspec.c         every malformed spec is refused naming its bad
 *                         part; default MACs; checks across NICs
 *   src/backend/slirp.c   end to end without a guest: a DHCP DISCOVER gets
 *                         an OFFER, a TCP SYN to the gateway reaches a
 *                         server on the host's 127.0.0.1, a port forward
 *                         listens and sends the guest a connection, a port
 *                         in use is refused with a clear message, the
 *                         queue to the guest is bounded and counts drops
 *   src/backend/tap.c     the messages for the ways opening a TAP fails,
 *                         checked for real where the host lets us (an
 *                         unprivileged user namespace, an unprivileged
 *                         uid) and by the message function otherwise; a
 *                         real TAP round trip only with CAP_NET_ADMIN.
 *   src/virtio/net.c      over the real backends: a driver (played here
 *                         on hand-built rings) gets a DHCP offer through
 *                         slirp, a guest that does not read costs a
 *                         bounded queue and no CPU, slirp's sockets are
 *                         polled by the device thread; with CAP_NET_ADMIN,
 *                         frames cross a TAP device with offloads on.
 * Nothing here needs the network. Every wait has a deadline and alarm()
 * ends a hung run. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>

#include "memory.h"
#include "netspec.h"
#include "virtio/device.h"
#include "virtio/net.h"
#include "virtio/queue.h"
#include "virtio/virtio.h"
#include "backend/flowcap.h"
#include "backend/net.h"
#include "backend/slirp.h"
#include "backend/tap.h"

#include "fake_transport.h"

/* ---- the --net parser ----------------------------------------------------- */

static void test_spec_good(void **state)
{
    (void)state;
    struct net_spec s;
    vmlet_error err;

    assert_int_equal(net_spec_parse("user", &s, &err), 0);
    assert_int_equal(s.kind, NET_SPEC_USER);
    assert_int_equal(s.nhostfwd, 0);
    assert_false(s.has_mac);
    assert_false(s.no_host_loopback); /* the host's loopback is reachable by default */

    assert_int_equal(s.max_flows, 0); /* the default cap */
    assert_int_equal(net_spec_max_flows(&s), NET_MAX_FLOWS_DEFAULT);
    assert_int_equal(NET_MAX_FLOWS_DEFAULT, 512);
    assert_int_equal(net_spec_parse("user,max-flows=1", &s, &err), 0);
    assert_int_equal(net_spec_max_flows(&s), 1);
    assert_int_equal(net_spec_parse("user,hostfwd=::2222-:22,max-flows=65536", &s, &err), 0);
    assert_int_equal(net_spec_max_flows(&s), 65536);

    assert_int_equal(net_spec_parse("user,host-loopback=off", &s, &err), 0);
    assert_true(s.no_host_loopback);
    assert_int_equal(net_spec_parse("user,host-loopback=on", &s, &err), 0);
    assert_false(s.no_host_loopback);
    assert_int_equal(
        net_spec_parse("user,hostfwd=::2222-:22,host-loopback=off,mac=52:54:00:12:34:99", &s, &err),
        0);
    assert_true(s.no_host_loopback);
    assert_int_equal(s.nhostfwd, 1);
    assert_true(s.has_mac);

    assert_int_equal(net_spec_parse("user,hostfwd=tcp:127.0.0.1:8080-:80", &s, &err), 0);
    assert_int_equal(s.nhostfwd, 1);
    assert_false(s.hostfwd[0].udp);
    assert_int_equal(s.hostfwd[0].host_addr, 0x7f000001);
    assert_int_equal(s.hostfwd[0].host_port, 8080);
    assert_int_equal(s.hostfwd[0].guest_addr, NET_USER_GUEST);
    assert_int_equal(s.hostfwd[0].guest_port, 80);
    assert_string_equal(s.hostfwd[0].text, "tcp:127.0.0.1:8080-:80");

    assert_int_equal(
        net_spec_parse("user,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp::5353-:53", &s, &err), 0);
    assert_int_equal(s.nhostfwd, 2);
    assert_true(s.hostfwd[1].udp);
    assert_int_equal(s.hostfwd[1].host_addr, NET_HOSTFWD_DEFAULT_HOST);
    assert_int_equal(s.hostfwd[1].host_port, 5353);
    assert_int_equal(s.hostfwd[1].guest_port, 53);

    /* Protocol defaults to tcp; all interfaces; another guest address. */
    assert_int_equal(
        net_spec_parse("user,hostfwd=::2222-10.0.2.20:22,hostfwd=tcp:0.0.0.0:8443-:443,"
                       "mac=52:54:00:AB:cd:01",
                       &s, &err),
        0);
    assert_false(s.hostfwd[0].udp);
    assert_int_equal(s.hostfwd[0].guest_addr, 0x0a000214);
    assert_int_equal(s.hostfwd[1].host_addr, 0);
    assert_true(s.has_mac);
    static const uint8_t m[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0x01 };
    assert_memory_equal(s.mac, m, 6);

    /* The same port for tcp and udp is two different forwards. */
    assert_int_equal(net_spec_parse("user,hostfwd=tcp::53-:53,hostfwd=udp::53-:53", &s, &err), 0);

    assert_int_equal(net_spec_parse("tap=tap0", &s, &err), 0);
    assert_int_equal(s.kind, NET_SPEC_TAP);
    assert_string_equal(s.tap_name, "tap0");
    assert_int_equal(net_spec_parse("tap=vmlet-tap.15ch,mac=52:54:00:12:34:56", &s, &err), 0);
    assert_string_equal(s.tap_name, "vmlet-tap.15ch");
    assert_true(s.has_mac);

    char many[1024] = "user";
    for (unsigned i = 0; i < NET_SPEC_MAX_HOSTFWD; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), ",hostfwd=::%u-:%u", 10000 + i,
                 80 + i);
    assert_int_equal(net_spec_parse(many, &s, &err), 0);
    assert_int_equal(s.nhostfwd, NET_SPEC_MAX_HOSTFWD);
}

/* Each bad spec: refused, the message starts with net 'SPEC': and names
 * the bad part. */
static void test_spec_bad(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *part;
    } cases[] = {
        { "", "empty" },
        { "foo", "'foo' is not a network kind" },
        { "users", "'users' is not a network kind" },
        { "tap", "tap needs a device name" },
        { "tap=", "tap name '' is not a valid interface name" },
        { "tap=a/b", "tap name 'a/b' is not a valid interface name" },
        { "tap=0123456789abcdef", "tap name '0123456789abcdef'" },
        { "tap=a b", "tap name 'a b'" },
        { "tap=..", "tap name '..'" },
        { "user,", "empty option" },
        { ",user", "empty option" },
        { "user,,hostfwd=tcp::1-:1", "empty option" },
        { "user,bogus=1", "unknown option 'bogus=1'" },
        { "tap=tap0,hostfwd=tcp::1-:2", "hostfwd is for user networking only" },
        { "user,user", "'user' must come first" },
        { "user,tap=tap0", "'tap=tap0' must come first" },
        { "user,mac=52:54:00:12:34", "mac '52:54:00:12:34' is not a MAC address" },
        { "user,mac=52:54:00:12:34:5g", "mac '52:54:00:12:34:5g' is not a MAC address" },
        { "user,mac=52-54-00-12-34-56", "mac '52-54-00-12-34-56' is not a MAC address" },
        { "user,mac=01:00:5e:00:00:01", "mac '01:00:5e:00:00:01' is a multicast address" },
        { "user,mac=00:00:00:00:00:00", "mac '00:00:00:00:00:00' is all zeros" },
        { "user,mac=52:54:00:12:34:56,mac=52:54:00:12:34:57", "mac given twice" },
        { "user,host-loopback=no", "host-loopback 'no' is not on or off" },
        { "user,host-loopback=", "host-loopback '' is not on or off" },
        { "user,host-loopback=off,host-loopback=on", "host-loopback given twice" },
        { "tap=tap0,host-loopback=off", "host-loopback is for user networking only" },
        { "user,host-loopback", "unknown option 'host-loopback'" },
        { "user,max-flows=0", "max-flows '0' is not a number from 1 to 65536" },
        { "user,max-flows=65537", "max-flows '65537' is not a number from 1 to 65536" },
        { "user,max-flows=", "max-flows '' is not a number from 1 to 65536" },
        { "user,max-flows=+5", "max-flows '+5' is not a number from 1 to 65536" },
        { "user,max-flows=5k", "max-flows '5k' is not a number from 1 to 65536" },
        { "user,max-flows=18446744073709551617", "max-flows '18446744073709551617' is not" },
        { "user,max-flows=8,max-flows=9", "max-flows given twice" },
        { "tap=tap0,max-flows=8", "max-flows is for user networking only" },
        { "user,max-flows", "unknown option 'max-flows'" },
        { "user,hostfwd=", "hostfwd '': expected [tcp|udp]:" },
        { "user,hostfwd=tcp8080", "hostfwd 'tcp8080': expected" },
        { "user,hostfwd=sctp::1-:2", "hostfwd 'sctp::1-:2': protocol 'sctp' is not tcp or udp" },
        { "user,hostfwd=tcp:1.2.3:80-:80", "host address '1.2.3' is not an IPv4 address" },
        { "user,hostfwd=tcp:localhost:80-:80", "host address 'localhost' is not an IPv4 address" },
        { "user,hostfwd=tcp:8080-:80", "host side '8080' is not [HOSTADDR]:HOSTPORT" },
        { "user,hostfwd=:2222-:22", "host side '2222' is not [HOSTADDR]:HOSTPORT" },
        { "user,hostfwd=tcp::99999-:80", "host port '99999' is not a port number" },
        { "user,hostfwd=tcp::0-:80", "host port '0' is not a port number" },
        { "user,hostfwd=tcp::-:80", "host port '' is not a port number" },
        { "user,hostfwd=tcp::+80-:80", "host port '+80' is not a port number" },
        { "user,hostfwd=tcp::80", "no '-' between the host and the guest side" },
        { "user,hostfwd=tcp::8080-80", "guest side '80' is not [GUESTADDR]:GUESTPORT" },
        { "user,hostfwd=tcp::8080-:", "guest port '' is not a port number" },
        { "user,hostfwd=tcp::8080-:65536", "guest port '65536' is not a port number" },
        { "user,hostfwd=tcp::8080-1.2.3.4.5:80", "guest address '1.2.3.4.5' is not an IPv4" },
        { "user,hostfwd=tcp::8080-192.168.1.2:80",
          "guest address '192.168.1.2' is not in the guest network 10.0.2.0/24" },
        { "user,hostfwd=tcp::8080-10.0.2.2:80", "guest address '10.0.2.2' is the gateway" },
        { "user,hostfwd=tcp::8080-10.0.2.3:80", "guest address '10.0.2.3' is the DNS server" },
        { "user,hostfwd=tcp::8080-10.0.2.255:80", "the broadcast address" },
        { "user,hostfwd=tcp::8080-:80,hostfwd=tcp:0.0.0.0:8080-:81",
          "hostfwd 'tcp:0.0.0.0:8080-:81': tcp port 8080 is already forwarded by 'tcp::8080-:80'" },
        { "user,hostfwd=udp:127.0.0.1:53-:53,hostfwd=udp:127.0.0.1:53-:54",
          "udp port 53 is already forwarded" },
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct net_spec s;
        vmlet_error err = { 0 };
        int rc = net_spec_parse(cases[i].spec, &s, &err);
        char prefix[200];
        snprintf(prefix, sizeof prefix, "net '%s': ", cases[i].spec);
        if (rc != -1 || err.code != VMLET_ERR_INVALID ||
            strncmp(err.message, prefix, strlen(prefix)) != 0 ||
            !strstr(err.message, cases[i].part)) {
            print_error("spec '%s': rc %d, message '%s', wanted '%s'\n", cases[i].spec, rc,
                        err.message, cases[i].part);
            fail();
        }
    }

    /* 17 forwards. */
    char many[1024] = "user";
    for (unsigned i = 0; i <= NET_SPEC_MAX_HOSTFWD; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), ",hostfwd=::%u-:%u", 10000 + i,
                 80 + i);
    struct net_spec s;
    vmlet_error err;
    assert_int_equal(net_spec_parse(many, &s, &err), -1);
    assert_non_null(strstr(err.message, "more than 16 hostfwd rules"));
    assert_int_equal(net_spec_parse(NULL, &s, &err), -1);
}

static void test_spec_macs(void **state)
{
    (void)state;
    struct net_spec u, t0, t1, given;
    vmlet_error err;
    assert_int_equal(net_spec_parse("user", &u, &err), 0);
    assert_int_equal(net_spec_parse("tap=tap0", &t0, &err), 0);
    assert_int_equal(net_spec_parse("tap=tap1", &t1, &err), 0);
    assert_int_equal(net_spec_parse("tap=tap1,mac=02:00:00:00:00:01", &given, &err), 0);

    uint8_t m[6], m2[6];
    char txt[18];
    net_spec_mac(&u, 0, m);
    net_mac_text(m, txt, sizeof txt);
    assert_string_equal(txt, "52:54:00:12:34:56");
    net_spec_mac(&u, 1, m);
    net_mac_text(m, txt, sizeof txt);
    assert_string_equal(txt, "52:54:00:12:34:57");
    /* TAP: stable per name, unicast and locally administered. */
    net_spec_mac(&t0, 0, m);
    net_spec_mac(&t0, 5, m2);
    assert_memory_equal(m, m2, 6);
    assert_int_equal(m[0], 0x52);
    net_spec_mac(&t1, 0, m2);
    assert_memory_not_equal(m, m2, 6);
    net_spec_mac(&given, 3, m);
    net_mac_text(m, txt, sizeof txt);
    assert_string_equal(txt, "02:00:00:00:00:01");

    struct net_hostfwd f = { .udp = true, .host_addr = 0x7f000001, .host_port = 5353 };
    net_hostfwd_host_text(&f, txt, sizeof txt);
    char big[64];
    net_hostfwd_host_text(&f, big, sizeof big);
    assert_string_equal(big, "udp:127.0.0.1:5353");
}

static void test_specs_across_nics(void **state)
{
    (void)state;
    struct net_spec s[3];
    vmlet_error err;
    assert_int_equal(net_spec_parse("user,hostfwd=tcp::8080-:80", &s[0], &err), 0);
    assert_int_equal(net_spec_parse("user,hostfwd=tcp::8081-:80", &s[1], &err), 0);
    assert_int_equal(net_spec_parse("tap=tap0", &s[2], &err), 0);
    assert_int_equal(net_specs_check(s, 3, &err), 0);

    assert_int_equal(net_spec_parse("user,hostfwd=tcp:0.0.0.0:8080-:22", &s[1], &err), 0);
    assert_int_equal(net_specs_check(s, 3, &err), -1);
    assert_non_null(strstr(err.message, "hostfwd 'tcp::8080-:80' (NIC 1) and "
                                        "'tcp:0.0.0.0:8080-:22' (NIC 2)"));

    assert_int_equal(net_spec_parse("tap=tap0", &s[1], &err), 0);
    assert_int_equal(net_specs_check(s, 3, &err), -1);
    assert_non_null(strstr(err.message, "tap 'tap0' is given twice (NICs 2 and 3)"));

    assert_int_equal(net_spec_parse("user,mac=52:54:00:12:34:56", &s[1], &err), 0);
    assert_int_equal(net_specs_check(s, 2, &err), -1); /* NIC 1's default is that MAC */
    assert_non_null(strstr(err.message, "NICs 1 and 2 both have MAC 52:54:00:12:34:56"));
}

/* ---- frames ---------------------------------------------------------------- */

static const uint8_t GUEST_MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t GW_MAC[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 }; /* slirp's */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}
static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += get16(p + i);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    return sum;
}

static uint16_t fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Ethernet + IPv4 header (20 bytes, checksummed) for a payload of len. */
static size_t eth_ip(uint8_t *p, const uint8_t *dst_mac, uint32_t src, uint32_t dst, uint8_t proto,
                     size_t len)
{
    memcpy(p, dst_mac, 6);
    memcpy(p + 6, GUEST_MAC, 6);
    put16(p + 12, 0x0800);
    uint8_t *ip = p + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + len));
    ip[8] = 64;
    ip[9] = proto;
    put32(ip + 12, src);
    put32(ip + 16, dst);
    put16(ip + 10, fold(sum16(ip, 20, 0)));
    return 34;
}

static size_t dhcp_discover(uint8_t *p, uint32_t xid)
{
    size_t bootp = 300, udp = 8 + bootp;
    size_t off = eth_ip(p, (const uint8_t[6]){ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 0, 0xffffffff,
                        17, udp);
    uint8_t *u = p + off;
    put16(u, 68);
    put16(u + 2, 67);
    put16(u + 4, (uint16_t)udp);
    put16(u + 6, 0); /* no UDP checksum (IPv4 allows it) */
    uint8_t *b = u + 8;
    memset(b, 0, bootp);
    b[0] = 1; /* BOOTREQUEST */
    b[1] = 1;
    b[2] = 6;
    put32(b + 4, xid);
    put16(b + 10, 0x8000); /* broadcast reply */
    memcpy(b + 28, GUEST_MAC, 6);
    put32(b + 236, 0x63825363); /* magic cookie */
    uint8_t *o = b + 240;
    *o++ = 53;
    *o++ = 1;
    *o++ = 1; /* DHCPDISCOVER */
    *o++ = 255;
    return off + udp;
}

#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* A TCP segment with no payload from the guest's sport. */
static size_t tcp_seg(uint8_t *p, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq,
                      uint8_t flags)
{
    size_t off = eth_ip(p, GW_MAC, NET_USER_GUEST, dst, 6, 20);
    uint8_t *t = p + off;
    memset(t, 0, 20);
    put16(t, sport);
    put16(t + 2, dport);
    put32(t + 4, seq);
    t[12] = 5 << 4;
    t[13] = flags;
    put16(t + 14, 65535);
    uint8_t pseudo[12];
    put32(pseudo, NET_USER_GUEST);
    put32(pseudo + 4, dst);
    pseudo[8] = 0;
    pseudo[9] = 6;
    put16(pseudo + 10, 20);
    put16(t + 16, fold(sum16(t, 20, sum16(pseudo, 12, 0))));
    return off + 20;
}

static size_t tcp_syn(uint8_t *p, uint32_t dst, uint16_t sport, uint16_t dport)
{
    return tcp_seg(p, dst, sport, dport, 1000, TCP_SYN);
}

/* A UDP datagram of 4 bytes (no checksum) from the guest's sport. */
static size_t udp_dgram(uint8_t *p, uint32_t dst, uint16_t sport, uint16_t dport)
{
    size_t off = eth_ip(p, GW_MAC, NET_USER_GUEST, dst, 17, 12);
    uint8_t *u = p + off;
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, 12);
    put16(u + 6, 0);
    memcpy(u + 8, "flow", 4);
    return off + 12;
}

/* An ICMP echo request with 8 bytes of data. */
static size_t icmp_echo(uint8_t *p, uint32_t dst, uint16_t id)
{
    size_t off = eth_ip(p, GW_MAC, NET_USER_GUEST, dst, 1, 16);
    uint8_t *c = p + off;
    memset(c, 0, 16);
    c[0] = 8; /* echo request */
    put16(c + 4, id);
    put16(c + 6, 1);
    memcpy(c + 8, "pingping", 8);
    put16(c + 2, fold(sum16(c, 16, 0)));
    return off + 16;
}

static size_t arp_request(uint8_t *p, uint32_t target)
{
    memset(p, 0, 60);
    memset(p, 0xff, 6);
    memcpy(p + 6, GUEST_MAC, 6);
    put16(p + 12, 0x0806);
    uint8_t *a = p + 14;
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, 1);
    memcpy(a + 8, GUEST_MAC, 6);
    put32(a + 14, NET_USER_GUEST);
    put32(a + 24, target);
    return 60;
}

/* Waits up to ms for the backend as the device thread would: on its fd,
 * or, for a backend with poll hooks (slirp), one round of its own work. */
static void be_wait(struct net_backend *be, int ms)
{
    if (be->ops->poll_prepare) {
        struct net_pollset ps = { 0 };
        int timeout = ms;
        be->ops->poll_prepare(be, &ps, &timeout);
        if (timeout < 0 || timeout > ms)
            timeout = ms;
        int k = poll(ps.fds, ps.n, timeout);
        be->ops->poll_dispatch(be, &ps, k < 0);
        free(ps.fds);
        return;
    }
    struct pollfd p = { .fd = be->fd, .events = POLLIN };
    poll(&p, 1, ms);
    if (be->fd_is_wake && (p.revents & POLLIN)) {
        uint64_t v;
        if (read(be->fd, &v, 8) < 0) {
            /* raced with another reader: fine */
        }
    }
}

/* Offers a frame as the device would; waits for room if the backend is busy. */
static enum net_send_result be_send(struct net_backend *be, const uint8_t *frame, size_t len)
{
    struct virtio_net_hdr_v1 h = { 0 };
    struct iovec iov[2] = { { &h, sizeof h }, { (void *)frame, len } };
    uint64_t end = now_ms() + WAIT_MS;
    for (;;) {
        enum net_send_result r = be->ops->send(be, iov, 2, len);
        if (r != NET_SEND_BUSY || now_ms() > end)
            return r;
        be_wait(be, 100);
    }
}

/* Waits for the next frame from the backend; its length (with header) or 0. */
static ssize_t be_recv(struct net_backend *be, uint8_t *buf, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    for (;;) {
        ssize_t n = be->ops->recv(be, buf, NET_BUF_MAX);
        if (n != 0)
            return n;
        uint64_t now = now_ms();
        if (now >= end)
            return 0;
        be_wait(be, (int)(end - now));
    }
}

/* ---- slirp ------------------------------------------------------------------ */

static struct net_backend *slirp_from(const char *text, vmlet_error *err)
{
    struct net_spec s;
    assert_int_equal(net_spec_parse(text, &s, err), 0);
    return net_slirp_new(&s, err);
}

/* The NIC the VM builds from a spec: its backend and its MAC. */
static void test_device_for_spec(void **state)
{
    (void)state;
    struct net_spec s;
    vmlet_error err;
    assert_int_equal(net_spec_parse("user", &s, &err), 0);
    struct virtio_net *n = virtio_net_new_for_spec(&s, 1, &err);
    assert_non_null(n);
    struct virtio_device *d = virtio_net_device(n);
    assert_string_equal(d->ops.name, "net");
    assert_int_equal(d->ops.device_id, VIRTIO_ID_NET);
    uint8_t mac[6];
    d->ops.config_read(d, 0, mac, 6);
    assert_memory_equal(mac, "\x52\x54\x00\x12\x34\x57", 6); /* NIC 1's default */
    assert_ptr_equal(virtio_net_of(d), n);
    d->ops.free(d);
}

/* libslirp is loaded with the first user NIC (dlopen). When it cannot
 * be, the NIC is refused with a line saying what to install and what
 * else works. Run in a child of this test (re-executed with a broken
 * libslirp.so.0 first on LD_LIBRARY_PATH), since the library is loaded
 * once per process. */
static int slirp_missing_child(void)
{
    vmlet_error err;
    struct net_spec s;
    if (net_spec_parse("user", &s, &err) != 0)
        return 2;
    if (net_slirp_new(&s, &err))
        return 3;
    const char *m = err.message;
    fprintf(stderr, "# %s\n", m);
    return strstr(m, "libslirp0") && strstr(m, "libslirp.so.0") && strstr(m, "tap") ? 0 : 4;
}

static void test_slirp_missing(void **state)
{
    (void)state;
    char dir[] = "/tmp/vmlet-noslirp.XXXXXX", lib[64], path[64] = "LD_LIBRARY_PATH=";
    assert_non_null(mkdtemp(dir));
    snprintf(lib, sizeof lib, "%s/libslirp.so.0", dir);
    FILE *f = fopen(lib, "w");
    assert_non_null(f);
    fputs("not an ELF file\n", f); /* dlopen fails: "file too short" / "invalid ELF header" */
    fclose(f);
    strncat(path, dir, sizeof path - strlen(path) - 1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = { "test_net_backends", NULL };
        char *envp[] = { path, "TEST_SLIRP_MISSING=1", NULL };
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    unlink(lib);
    rmdir(dir);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_slirp_dhcp(void **state)
{
    (void)state;
    vmlet_error err;
    struct net_backend *be = slirp_from("user", &err);
    assert_non_null(be);
    assert_int_equal(be->fd, -1); /* works in the device's poll hooks */
    assert_non_null(be->ops->poll_prepare);
    assert_int_equal(be->offloads, 0);
    assert_int_equal(be->ops->set_guest_offloads(be, 0), 0);

    static uint8_t frame[NET_BUF_MAX], buf[NET_BUF_MAX];
    size_t len = dhcp_discover(frame, 0x1234abcd);
    assert_int_equal(be_send(be, frame, len), NET_SEND_OK);

    bool offered = false;
    for (unsigned tries = 0; tries < 10 && !offered; tries++) {
        ssize_t n = be_recv(be, buf, WAIT_MS);
        assert_true(n > 0);
        static const uint8_t zero[VIRTIO_NET_HDR_LEN];
        assert_memory_equal(buf, zero, VIRTIO_NET_HDR_LEN); /* no offloads */
        const uint8_t *e = buf + VIRTIO_NET_HDR_LEN;
        if (get16(e + 12) != 0x0800 || e[14 + 9] != 17)
            continue;
        const uint8_t *u = e + 14 + (e[14] & 15) * 4;
        if (get16(u) != 67 || get16(u + 2) != 68)
            continue;
        const uint8_t *b = u + 8;
        assert_int_equal(b[0], 2); /* BOOTREPLY */
        assert_int_equal(get32(b + 4), 0x1234abcd);
        assert_int_equal(get32(b + 16), NET_USER_GUEST); /* yiaddr 10.0.2.15 */
        assert_int_equal(get32(b + 236), 0x63825363);
        const uint8_t *o = b + 240, *end = buf + n;
        while (o + 2 < end && *o != 255) {
            if (*o == 0) { /* pad: one byte */
                o++;
                continue;
            }
            if (o[0] == 53 && o[1] >= 1)
                offered = o[2] == 2; /* DHCPOFFER */
            o += 2 + o[1];
        }
    }
    assert_true(offered);
    struct net_stats z = { 0 };
    net_stats_accumulate(&z, &be->stats);
    assert_int_equal(z.rx_dropped, 0);
    be->ops->free(be);
}

static int listen_tcp(uint16_t *port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 4), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    *port = ntohs(a.sin_port);
    return s;
}

/* A port nothing listens on right now. */
static uint16_t free_port(int type)
{
    int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* The guest connects to 10.0.2.2:PORT; the host's 127.0.0.1:PORT answers. */
static void test_slirp_gateway_is_host(void **state)
{
    (void)state;
    uint16_t port;
    int srv = listen_tcp(&port);
    vmlet_error err;
    struct net_backend *be = slirp_from("user", &err);
    assert_non_null(be);
    uint8_t frame[100];
    size_t len = tcp_syn(frame, NET_USER_GATEWAY, 40000, port);
    assert_int_equal(be_send(be, frame, len), NET_SEND_OK);
    struct pollfd p = { .fd = srv, .events = POLLIN };
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    int c = accept(srv, NULL, NULL);
    assert_true(c >= 0);
    close(c);
    close(srv);
    be->ops->free(be);
}

/* host-loopback=off: the guest's connection to 10.0.2.2:PORT no longer
 * reaches the host's 127.0.0.1:PORT; with host-loopback=on it does. */
static void test_slirp_host_loopback_off(void **state)
{
    (void)state;
    for (int on = 0; on <= 1; on++) {
        uint16_t port;
        int srv = listen_tcp(&port);
        vmlet_error err;
        struct net_backend *be = slirp_from(on ? "user,host-loopback=on" : "user,host-loopback=off",
                                            &err);
        assert_non_null(be);
        uint8_t frame[100];
        size_t len = tcp_syn(frame, NET_USER_GATEWAY, 40000, port);
        assert_int_equal(be_send(be, frame, len), NET_SEND_OK);
        /* slirp connects from inside slirp_input; give it some rounds of
         * its own work as well before looking. */
        for (int i = 0; i < 5; i++)
            be_wait(be, 20);
        struct pollfd p = { .fd = srv, .events = POLLIN };
        int k = poll(&p, 1, on ? WAIT_MS : 200);
        if (on) {
            assert_int_equal(k, 1);
            int c = accept(srv, NULL, NULL);
            assert_true(c >= 0);
            close(c);
        } else {
            assert_int_equal(k, 0); /* nobody connected */
        }
        close(srv);
        be->ops->free(be);
    }
}

/* A user network forwarding 127.0.0.1:PORT (a free port) to the guest's
 * port 80; spec gets the text it was made from. */
static struct net_backend *slirp_forwarding(char spec[128], uint16_t *port)
{
    *port = free_port(SOCK_STREAM);
    snprintf(spec, 128, "user,hostfwd=tcp:127.0.0.1:%u-:80", *port);
    vmlet_error err;
    struct net_backend *be = slirp_from(spec, &err);
    if (!be)
        print_error("%s\n", err.message);
    assert_non_null(be);
    return be;
}

/* A connection from the host to 127.0.0.1:port. */
static int connect_local(uint16_t port)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(0x7f000001) };
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    return c;
}

/* hostfwd: the port listens on the host; a connection makes slirp reach
 * for the guest (first an ARP request for 10.0.2.15). */
static void test_slirp_hostfwd(void **state)
{
    (void)state;
    char spec[128];
    uint16_t port;
    struct net_backend *be = slirp_forwarding(spec, &port);
    vmlet_error err;
    int c = connect_local(port);

    static uint8_t buf[NET_BUF_MAX];
    bool seen = false;
    for (unsigned tries = 0; tries < 10 && !seen; tries++) {
        ssize_t n = be_recv(be, buf, WAIT_MS);
        assert_true(n > 0);
        const uint8_t *e = buf + VIRTIO_NET_HDR_LEN;
        if (get16(e + 12) == 0x0806 && get16(e + 14 + 6) == 1 &&
            get32(e + 14 + 24) == NET_USER_GUEST)
            seen = true; /* who-has 10.0.2.15 */
    }
    assert_true(seen);

    /* The same port again (another NIC, another VM): a clear refusal. */
    struct net_backend *be2 = slirp_from(spec, &err);
    assert_null(be2);
    char want[128];
    snprintf(want, sizeof want, "hostfwd tcp:127.0.0.1:%u: port %u is already in use", port, port);
    assert_string_equal(err.message, want);
    assert_int_equal(err.code, VMLET_ERR_HOST);

    close(c);
    be->ops->free(be);
    /* Freed: the port is free again. */
    be2 = slirp_from(spec, &err);
    assert_non_null(be2);
    be2->ops->free(be2);
}

static void test_slirp_port_in_use(void **state)
{
    (void)state;
    uint16_t port;
    int srv = listen_tcp(&port);
    char spec[128], want[128];
    vmlet_error err;
    snprintf(spec, sizeof spec, "user,hostfwd=tcp::%u-:22", port);
    assert_null(slirp_from(spec, &err));
    snprintf(want, sizeof want, "hostfwd tcp:127.0.0.1:%u: port %u is already in use", port, port);
    assert_string_equal(err.message, want);
    close(srv);

    /* UDP: a socket another program holds. */
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    assert_int_equal(bind(u, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(u, (struct sockaddr *)&a, &l);
    port = ntohs(a.sin_port);
    snprintf(spec, sizeof spec, "user,hostfwd=udp::%u-:53", port);
    assert_null(slirp_from(spec, &err));
    snprintf(want, sizeof want, "hostfwd udp:127.0.0.1:%u: port %u is already in use", port, port);
    assert_string_equal(err.message, want);
    close(u);
    struct net_backend *be = slirp_from(spec, &err);
    assert_non_null(be);
    be->ops->free(be);

    /* An address that is not the host's. */
    port = free_port(SOCK_STREAM);
    snprintf(spec, sizeof spec, "user,hostfwd=tcp:192.0.2.1:%u-:22", port);
    assert_null(slirp_from(spec, &err));
    assert_non_null(strstr(err.message, "192.0.2.1 is not an address of this host"));
}

/* A guest that does not read: slirp's frames are dropped and counted once
 * the fixed queue is full; nothing grows. */
static void test_slirp_rx_bounded(void **state)
{
    (void)state;
    vmlet_error err;
    struct net_backend *be = slirp_from("user", &err);
    assert_non_null(be);
    uint8_t frame[60];
    size_t len = arp_request(frame, NET_USER_GATEWAY);
    unsigned sent = NET_SLIRP_RX_FRAMES + 100;
    for (unsigned i = 0; i < sent; i++)
        assert_int_equal(be_send(be, frame, len), NET_SEND_OK);

    uint64_t end = now_ms() + WAIT_MS;
    struct net_stats s;
    do {
        memset(&s, 0, sizeof s);
        net_stats_accumulate(&s, &be->stats);
        if (s.rx_dropped >= 100)
            break;
        sleep_ms(5);
    } while (now_ms() < end);
    assert_int_equal(s.rx_dropped, 100);

    static uint8_t buf[NET_BUF_MAX];
    unsigned got = 0;
    while (be->ops->recv(be, buf, NET_BUF_MAX) > 0) {
        const uint8_t *e = buf + VIRTIO_NET_HDR_LEN;
        assert_int_equal(get16(e + 12), 0x0806);
        assert_int_equal(get16(e + 14 + 6), 2); /* ARP reply */
        assert_memory_equal(e + 14 + 8, GW_MAC, 6);
        got++;
    }
    assert_int_equal(got, NET_SLIRP_RX_FRAMES);

    /* Larger than slirp's MTU: dropped and counted, not sent. */
    static uint8_t big[1600];
    memcpy(big, frame, 60);
    assert_int_equal(be_send(be, big, sizeof big), NET_SEND_DROPPED);
    memset(&s, 0, sizeof s);
    net_stats_accumulate(&s, &be->stats);
    assert_int_equal(s.tx_dropped, 1);
    /* An offload header (never offered) is refused too. */
    struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM };
    struct iovec iov[2] = { { &h, sizeof h }, { frame, 60 } };
    assert_int_equal(be->ops->send(be, iov, 2, 60), NET_SEND_DROPPED);
    be->ops->free(be);
}

static struct net_stats be_stats(struct net_backend *be)
{
    struct net_stats z = { 0 };
    net_stats_accumulate(&z, &be->stats);
    return z;
}

/* Connections waiting on srv within ms; each is accepted and closed. */
static unsigned accept_all(int srv, int ms)
{
    unsigned n = 0;
    struct pollfd p = { .fd = srv, .events = POLLIN };
    while (poll(&p, 1, ms) == 1) {
        int c = accept(srv, NULL, NULL);
        assert_true(c >= 0);
        close(c);
        n++;
    }
    return n;
}

/* Some rounds of slirp's own work (connects completing, answers). */
static void be_rounds(struct net_backend *be, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        be_wait(be, 10);
}

/* What the cap takes for a new flow (backend/flowcap.h), frame by frame. */
static void test_flow_frame(void **state)
{
    (void)state;
    uint8_t f[400];
    struct net_flow_frame r;
    size_t len = tcp_syn(f, 0xc0000201, 40000, 80);
    assert_true(net_flow_frame(f, len).may_open);
    f[14 + 20 + 13] = TCP_SYN | 0xc0; /* ECE, CWR: still a new connection */
    assert_true(net_flow_frame(f, len).may_open);
    f[14 + 20 + 13] = TCP_SYN | TCP_ACK;
    assert_false(net_flow_frame(f, len).may_open);
    len = tcp_seg(f, 0xc0000201, 40000, 80, 1001, TCP_ACK);
    assert_false(net_flow_frame(f, len).may_open);
    len = tcp_seg(f, 0xc0000201, 40000, 80, 1001, TCP_RST);
    assert_false(net_flow_frame(f, len).may_open);

    len = udp_dgram(f, NET_USER_DNS, 5353, 53);
    r = net_flow_frame(f, len);
    assert_true(r.may_open);
    assert_true(r.udp);
    assert_int_equal(r.src, NET_USER_GUEST);
    assert_int_equal(r.sport, 5353);
    len = dhcp_discover(f, 1);
    r = net_flow_frame(f, len);
    assert_false(r.may_open); /* slirp's own DHCP server */
    assert_true(r.udp);
    len = udp_dgram(f, 0xc0000201, 68, 67); /* "DHCP" elsewhere: a socket */
    assert_true(net_flow_frame(f, len).may_open);

    len = icmp_echo(f, 0xc0000201, 1);
    assert_true(net_flow_frame(f, len).may_open);
    len = icmp_echo(f, NET_USER_GATEWAY, 1);
    assert_false(net_flow_frame(f, len).may_open);
    len = icmp_echo(f, NET_USER_DNS, 1);
    assert_false(net_flow_frame(f, len).may_open);
    len = icmp_echo(f, 0xc0000201, 1);
    f[14 + 20] = 0; /* an echo reply opens nothing */
    assert_false(net_flow_frame(f, len).may_open);

    len = udp_dgram(f, 0xc0000201, 6000, 7);
    put16(f + 14 + 6, 0x0010); /* a later fragment */
    r = net_flow_frame(f, len);
    assert_true(r.may_open);
    assert_false(r.udp);
    len = tcp_seg(f, 0xc0000201, 40000, 80, 1001, TCP_ACK);
    f[14 + 9] = 47; /* GRE: slirp has no such thing */
    assert_false(net_flow_frame(f, len).may_open);
    len = arp_request(f, NET_USER_GATEWAY);
    assert_false(net_flow_frame(f, len).may_open);
    len = tcp_syn(f, 0xc0000201, 40000, 80);
    put16(f + 12, 0x86dd); /* IPv6: off in vmlet's slirp */
    assert_false(net_flow_frame(f, len).may_open);
    assert_false(net_flow_frame(f, 13).may_open);
    put16(f + 12, 0x0800);
    assert_true(net_flow_frame(f, 33).may_open); /* no room for an IPv4 header */
}

/* max-flows=8 and a guest opening 11 TCP connections: 8 reach the host,
 * the 3 SYNs over the cap are dropped and counted; at the cap, traffic
 * that opens nothing still passes; connections the guest resets free
 * their places for new ones. */
static void test_slirp_flow_cap_tcp(void **state)
{
    (void)state;
    enum { CAP = 8, EXTRA = 3 };
    int srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    assert_int_equal(bind(srv, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(srv, 64), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(srv, (struct sockaddr *)&a, &l), 0);
    uint16_t port = ntohs(a.sin_port);
    vmlet_error err;
    struct net_backend *be = slirp_from("user,max-flows=8", &err);
    assert_non_null(be);

    static uint8_t frame[600], buf[NET_BUF_MAX];
    for (unsigned i = 0; i < CAP + EXTRA; i++) {
        size_t len = tcp_syn(frame, NET_USER_GATEWAY, (uint16_t)(41000 + i), port);
        enum net_send_result r = be_send(be, frame, len);
        assert_int_equal(r, i < CAP ? NET_SEND_OK : NET_SEND_DROPPED);
    }
    be_rounds(be, 5);
    assert_int_equal(be_stats(be).flows_open, CAP);
    assert_int_equal(be_stats(be).flows_refused, EXTRA);
    assert_int_equal(accept_all(srv, 500), CAP); /* the host saw exactly CAP */

    /* At the cap: a SYN's retransmission and a new connection's SYN are
     * both dropped; a segment of a connection (no SYN) passes. */
    size_t len = tcp_syn(frame, NET_USER_GATEWAY, 41000, port);
    assert_int_equal(be_send(be, frame, len), NET_SEND_DROPPED);
    len = tcp_seg(frame, NET_USER_GATEWAY, 41000, port, 1001, TCP_ACK);
    assert_int_equal(be_send(be, frame, len), NET_SEND_OK);
    /* A fragment cannot be read, so it is dropped; DHCP and ARP pass, a
     * ping of the gateway passes (slirp answers it), one beyond does not. */
    len = udp_dgram(frame, NET_USER_GATEWAY, 5000, 7);
    put16(frame + 14 + 6, 0x2000); /* more fragments */
    assert_int_equal(be_send(be, frame, len), NET_SEND_DROPPED);
    len = icmp_echo(frame, 0xc0000201, 1); /* 192.0.2.1 */
    assert_int_equal(be_send(be, frame, len), NET_SEND_DROPPED);
    assert_int_equal(be_stats(be).flows_refused, EXTRA + 3);
    len = arp_request(frame, NET_USER_GATEWAY);
    assert_int_equal(be_send(be, frame, len), NET_SEND_OK);
    len = icmp_echo(frame, NET_USER_GATEWAY, 2);
    assert_int_equal(be_send(be, frame, len), NET_SEND_OK);
    len = dhcp_discover(frame, 0x77);
    assert_int_equal(be_send(be, frame, len), NET_SEND_OK);
    bool echo = false, offer = false;
    for (unsigned i = 0; i < 100 && !(echo && offer); i++) { /* after ARPs, SYN-ACKs */
        ssize_t n = be_recv(be, buf, 500);
        if (n <= 0)
            continue;
        const uint8_t *e = buf + VIRTIO_NET_HDR_LEN;
        if (get16(e + 12) != 0x0800)
            continue;
        echo |= e[23] == 1 && e[34] == 0 && get16(e + 38) == 2; /* echo reply, id 2 */
        offer |= e[23] == 17 && get16(e + 34) == 67;
    }
    assert_true(echo);
    assert_true(offer);
    assert_int_equal(be_stats(be).flows_refused, EXTRA + 3);

    /* The guest resets 3 connections: slirp closes their sockets, and 3
     * new connections get through. */
    for (unsigned i = 0; i < 3; i++) {
        len = tcp_seg(frame, NET_USER_GATEWAY, (uint16_t)(41000 + i), port, 1001, TCP_RST);
        assert_int_equal(be_send(be, frame, len), NET_SEND_OK);
    }
    be_rounds(be, 3);
    assert_int_equal(be_stats(be).flows_open, CAP - 3);
    for (unsigned i = 0; i < 4; i++) {
        len = tcp_syn(frame, NET_USER_GATEWAY, (uint16_t)(42000 + i), port);
        assert_int_equal(be_send(be, frame, len), i < 3 ? NET_SEND_OK : NET_SEND_DROPPED);
    }
    be_rounds(be, 5);
    assert_int_equal(accept_all(srv, 500), 3);
    assert_int_equal(be_stats(be).flows_open, CAP);
    assert_int_equal(be_stats(be).flows_refused, EXTRA + 4);
    close(srv);
    be->ops->free(be);
}

/* UDP: a socket per guest source port. At the cap a new source port is
 * dropped, one that has its socket still gets through. */
static void test_slirp_flow_cap_udp(void **state)
{
    (void)state;
    enum { CAP = 4 };
    int srv = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    assert_int_equal(bind(srv, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(srv, (struct sockaddr *)&a, &l), 0);
    uint16_t port = ntohs(a.sin_port);
    vmlet_error err;
    struct net_backend *be = slirp_from("user,max-flows=4", &err);
    assert_non_null(be);

    uint8_t frame[200], got[64];
    for (unsigned i = 0; i < CAP + 2; i++) {
        size_t len = udp_dgram(frame, NET_USER_GATEWAY, (uint16_t)(6000 + i), port);
        assert_int_equal(be_send(be, frame, len), i < CAP ? NET_SEND_OK : NET_SEND_DROPPED);
    }
    /* Again from the first source: its socket carries it. */
    size_t len = udp_dgram(frame, NET_USER_GATEWAY, 6000, port);
    assert_int_equal(be_send(be, frame, len), NET_SEND_OK);
    assert_int_equal(be_stats(be).flows_open, CAP);
    assert_int_equal(be_stats(be).flows_refused, 2);
    unsigned n = 0;
    struct pollfd p = { .fd = srv, .events = POLLIN };
    while (poll(&p, 1, 300) == 1) {
        assert_int_equal(recv(srv, got, sizeof got, 0), 4);
        assert_memory_equal(got, "flow", 4);
        n++;
    }
    assert_int_equal(n, CAP + 1);
    close(srv);
    be->ops->free(be);
}

/* Malformed and short IPv4 frames at the cap: refused without reading past
 * their end (ASan watches), never handed to slirp. Below the cap they go
 * to slirp, which drops them. */
static void test_slirp_flow_cap_malformed(void **state)
{
    (void)state;
    vmlet_error err;
    struct net_backend *be = slirp_from("user,max-flows=1", &err);
    assert_non_null(be);
    uint16_t port;
    int srv = listen_tcp(&port);
    uint8_t frame[100];
    size_t len = tcp_syn(frame, NET_USER_GATEWAY, 40000, port);
    assert_int_equal(be_send(be, frame, len), NET_SEND_OK);
    assert_int_equal(be_stats(be).flows_open, 1);
    uint64_t refused = 0;
    /* A SYN cut short at every length from the IP header on; an IHL of 4
     * and of 15 (options longer than the frame); IPv6 in the version. */
    for (size_t cut = 14; cut < len; cut++) {
        uint8_t *copy = malloc(cut); /* exactly cut bytes, so ASan sees overreads */
        memcpy(copy, frame, cut);
        enum net_send_result r = be_send(be, copy, cut);
        if (r == NET_SEND_DROPPED)
            refused++;
        free(copy);
    }
    assert_int_equal(refused, len - 14);
    static const uint8_t bad_first[] = { 0x44, 0x4f, 0x65 };
    for (unsigned i = 0; i < sizeof bad_first; i++) {
        len = tcp_syn(frame, NET_USER_GATEWAY, 40001, port);
        frame[14] = bad_first[i];
        assert_int_equal(be_send(be, frame, len), NET_SEND_DROPPED);
    }
    assert_int_equal(be_stats(be).flows_refused, refused + sizeof bad_first);
    assert_int_equal(be_stats(be).flows_open, 1);
    close(srv);
    be->ops->free(be);
}

static uint64_t thread_cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* What the child of test_slirp_hostfwd_emfile measured. */
struct emfile_result {
    int stage;       /* how far it got: 3 is all */
    uint64_t cpu_ms; /* the device thread's CPU over 1 s of EMFILE */
    unsigned rounds; /* and how often it woke up */
    uint64_t flows;  /* flows_open while out of descriptors */
    bool accepted;   /* slirp took the connection once fds were free */
};

/* In a child: a port forward, descriptors used up, a connection waiting. */
static void emfile_child(int to_parent, int from_parent)
{
    struct emfile_result r = { 0 };
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves nothing behind */
    char spec[128];
    uint16_t port = free_port(SOCK_STREAM);
    snprintf(spec, sizeof spec, "user,hostfwd=tcp:127.0.0.1:%u-:80", port);
    struct net_spec ns;
    vmlet_error err;
    struct net_backend *be = net_spec_parse(spec, &ns, &err) == 0 ? net_slirp_new(&ns, &err) : NULL;
    struct rlimit rl = { 256, 256 };
    int fillers[256], nfill = 0;
    if (!be || setrlimit(RLIMIT_NOFILE, &rl) < 0)
        goto out;
    r.stage = 1;
    while (nfill < 256 && (fillers[nfill] = dup(to_parent)) >= 0)
        nfill++;
    if (errno != EMFILE)
        goto out;
    r.stage = 2;
    /* The parent connects; the connection waits in the listen queue. */
    if (write(to_parent, &port, sizeof port) != sizeof port ||
        read(from_parent, &port, sizeof port) != sizeof port)
        goto out;
    uint64_t cpu0 = thread_cpu_ms(), end = now_ms() + 1000;
    for (; now_ms() < end; r.rounds++)
        be_wait(be, 100); /* what the device thread does */
    r.cpu_ms = thread_cpu_ms() - cpu0;
    r.flows = be_stats(be).flows_open;
    r.stage = 3;
    while (nfill)
        close(fillers[--nfill]);
    end = now_ms() + WAIT_MS;
    while (now_ms() < end && !r.accepted) {
        be_wait(be, 50);
        r.accepted = be_stats(be).flows_open == 1;
    }
out:
    if (write(to_parent, &r, sizeof r) != sizeof r)
        _exit(2);
    _exit(0);
}

/* A port forward when vmlet is out of descriptors: slirp cannot accept
 * the connection waiting on it, which leaves the listener readable. The
 * device thread must not spin on it (its CPU over 1 s stays small), and
 * the connection gets through once descriptors are free again. */
static void test_slirp_hostfwd_emfile(void **state)
{
    (void)state;
    int up[2], down[2];
    assert_int_equal(pipe2(up, O_CLOEXEC), 0);
    assert_int_equal(pipe2(down, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        emfile_child(up[1], down[0]);
    }
    close(up[1]);
    close(down[0]);
    uint16_t port = 0;
    struct pollfd p = { .fd = up[0], .events = POLLIN };
    int c = -1;
    if (poll(&p, 1, WAIT_MS) == 1 && read(up[0], &port, sizeof port) == sizeof port) {
        c = connect_local(port);
        assert_int_equal(write(down[1], &port, sizeof port), sizeof port);
    }
    struct emfile_result r = { 0 };
    p.fd = up[0];
    assert_int_equal(poll(&p, 1, 3 * WAIT_MS), 1);
    assert_int_equal(read(up[0], &r, sizeof r), sizeof r);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    print_message("# out of descriptors for 1 s: %llu ms of CPU, %u rounds of poll\n",
                  (unsigned long long)r.cpu_ms, r.rounds);
    assert_int_equal(r.stage, 3);
    assert_int_equal(r.flows, 0); /* slirp could not take it... */
    assert_true(r.rounds < 100);  /* ...and did not spin on it: 10 a second per pause, */
    assert_true(r.cpu_ms < 200);  /* thousands and most of a core if it spins */
    assert_true(r.accepted);      /* taken once descriptors were free */
    if (c >= 0)
        close(c);
    close(up[0]);
    close(down[1]);
}

/* Several user networks at once (one global lock around libslirp). */
static void test_slirp_many(void **state)
{
    (void)state;
    vmlet_error err;
    struct net_backend *be[4];
    for (unsigned i = 0; i < 4; i++) {
        be[i] = slirp_from("user", &err);
        assert_non_null(be[i]);
    }
    static uint8_t frame[400], buf[NET_BUF_MAX];
    for (unsigned round = 0; round < 20; round++)
        for (unsigned i = 0; i < 4; i++) {
            size_t len = arp_request(frame, NET_USER_DNS);
            assert_int_equal(be_send(be[i], frame, len), NET_SEND_OK);
            assert_true(be_recv(be[i], buf, WAIT_MS) > 0);
        }
    for (unsigned i = 0; i < 4; i++)
        be[i]->ops->free(be[i]);
}

/* ---- TAP --------------------------------------------------------------------- */

static void test_tap_messages(void **state)
{
    (void)state;
    char m[512];
    net_tap_error_text("tap0", EPERM, false, m, sizeof m);
    assert_string_equal(m, "tap 'tap0': no such device and no permission to create it (needs "
                           "CAP_NET_ADMIN); create it with: ip tuntap add dev tap0 mode tap user "
                           "$USER && ip link set tap0 up");
    net_tap_error_text("tap0", EPERM, true, m, sizeof m);
    assert_non_null(strstr(m, "tap 'tap0': permission denied (the device belongs to another "
                              "user or group)"));
    net_tap_error_text("tap0", EBUSY, true, m, sizeof m);
    assert_non_null(strstr(m, "tap 'tap0' is in use by another program"));
    net_tap_error_text("eth0", EINVAL, true, m, sizeof m);
    assert_non_null(strstr(m, "tap 'eth0' exists but is not a TAP device"));
    net_tap_error_text("x", EIO, false, m, sizeof m);
    assert_string_equal(m, "tap 'x': cannot attach to the device: Input/output error");

    vmlet_error err;
    assert_null(net_tap_open("", &err));
    assert_non_null(strstr(err.message, "not a valid interface name"));
    assert_null(net_tap_open("0123456789abcdef", &err));
    assert_null(net_tap_open("a/b", &err));
}

static bool tun_usable(void)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* Runs net_tap_open(name) in a child after setup(), and returns the
 * child's error message ("" if it opened), or NULL if setup() failed. */
static char *tap_open_in_child(const char *name, bool (*setup)(void), char *msg, size_t len)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        alarm(10);
        char out[600] = "";
        if (!setup()) {
            _exit(2);
        }
        vmlet_error err;
        struct net_backend *be = net_tap_open(name, &err);
        if (!be)
            snprintf(out, sizeof out, "%s", err.message);
        if (write(p[1], out, strlen(out)) < 0)
            _exit(3);
        _exit(0);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < len && (n = read(p[0], msg + got, len - 1 - got)) > 0)
        got += (size_t)n;
    msg[got] = '\0';
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 2)
        return NULL;
    assert_int_equal(WEXITSTATUS(status), 0);
    return msg;
}

/* A user namespace of our own: our uid is mapped (so /dev/net/tun opens
 * as before) but CAP_NET_ADMIN there does not count for the host's
 * network namespace, exactly like an unprivileged user. */
static bool enter_userns(void)
{
    uid_t uid = getuid();
    if (unshare(CLONE_NEWUSER) < 0)
        return false;
    char map[64];
    int fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
    bool ok = write(fd, map, strlen(map)) == (ssize_t)strlen(map);
    close(fd);
    return ok;
}

static bool become_nobody(void)
{
    if (getuid() != 0)
        return true; /* already unprivileged */
    return setgroups(0, NULL) == 0 && setresgid(65534, 65534, 65534) == 0 &&
           setresuid(65534, 65534, 65534) == 0;
}

static void test_tap_no_permission(void **state)
{
    (void)state;
    char name[IFNAMSIZ];
    snprintf(name, sizeof name, "vmlt%u", (unsigned)getpid() % 100000);
    assert_int_equal(if_nametoindex(name), 0);
    char msg[600], want[600];
    snprintf(want, sizeof want,
             "tap '%s': no such device and no permission to create it "
             "(needs CAP_NET_ADMIN); create it with: ip tuntap add dev %s mode tap user $USER "
             "&& ip link set %s up",
             name, name, name);

    bool tested = false;
    if (tun_usable() && tap_open_in_child(name, enter_userns, msg, sizeof msg)) {
        assert_string_equal(msg, want);
        tested = true;
    }
    /* As a user that cannot open /dev/net/tun at all (it is 0600 on some
     * hosts), or that can but may not create devices. */
    if (tap_open_in_child(name, become_nobody, msg, sizeof msg)) {
        if (strstr(msg, "/dev/net/tun"))
            assert_non_null(strstr(msg, "cannot open /dev/net/tun"));
        else if (strstr(msg, "does not exist"))
            assert_non_null(strstr(msg, "load the tun module"));
        else
            assert_string_equal(msg, want);
        tested = true;
    }
    assert_int_equal(if_nametoindex(name), 0); /* nothing was created */
    if (!tested)
        skip();
}

/* "lo" exists and is not a TAP device. */
static void test_tap_not_a_tap(void **state)
{
    (void)state;
    if (!tun_usable())
        skip();
    vmlet_error err;
    assert_null(net_tap_open("lo", &err));
    assert_string_equal(err.message,
                        "tap 'lo' exists but is not a TAP device (a TUN device or "
                        "another kind of interface); give a device made with: ip tuntap add "
                        "dev NAME mode tap user $USER");
}

/* With CAP_NET_ADMIN: vmlet creates the device, a second open finds it
 * busy, and frames cross both ways (the host side through a packet
 * socket). */
static void test_tap_real(void **state)
{
    (void)state;
    char name[IFNAMSIZ];
    snprintf(name, sizeof name, "vmlr%u", (unsigned)getpid() % 100000);
    vmlet_error err;
    struct net_backend *be = tun_usable() ? net_tap_open(name, &err) : NULL;
    if (!be) {
        skip(); /* no CAP_NET_ADMIN: nothing to see */
        return;
    }
    assert_non_null(strstr(be->warning, "did not exist: vmlet created it and brought it up"));
    assert_false(be->fd_is_wake);
    assert_true(be->offloads & NET_BIT(VIRTIO_NET_F_CSUM));
    assert_true(be->offloads & NET_BIT(VIRTIO_NET_F_HOST_TSO4));
    assert_true(be->offloads & NET_BIT(VIRTIO_NET_F_GUEST_CSUM));
    assert_int_equal(be->ops->set_guest_offloads(be, NET_BIT(VIRTIO_NET_F_GUEST_CSUM) |
                                                         NET_BIT(VIRTIO_NET_F_GUEST_TSO4)),
                     0);
    assert_int_equal(be->ops->set_guest_offloads(be, 0), 0);

    struct net_backend *again = net_tap_open(name, &err);
    assert_null(again);
    char want[200];
    snprintf(want, sizeof want, "tap '%s' is in use by another program", name);
    assert_non_null(strstr(err.message, want));

    int ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (ps < 0) {
        be->ops->free(be);
        skip();
    }
    struct sockaddr_ll sll = { .sll_family = AF_PACKET,
                               .sll_protocol = htons(ETH_P_ALL),
                               .sll_ifindex = (int)if_nametoindex(name) };
    assert_int_equal(bind(ps, (struct sockaddr *)&sll, sizeof sll), 0);

    /* Guest -> host. */
    uint8_t frame[60];
    arp_request(frame, 0x0a000299);
    frame[59] = 0x77;
    assert_int_equal(be_send(be, frame, 60), NET_SEND_OK);
    uint8_t got[2048];
    bool seen = false;
    uint64_t end = now_ms() + WAIT_MS;
    while (!seen && now_ms() < end) {
        struct pollfd p = { .fd = ps, .events = POLLIN };
        if (poll(&p, 1, 100) != 1)
            continue;
        ssize_t n = recv(ps, got, sizeof got, 0);
        seen = n == 60 && memcmp(got, frame, 60) == 0;
    }
    assert_true(seen);

    /* Host -> guest: a frame the host sends out of the TAP device. */
    uint8_t out[60];
    memcpy(out, GUEST_MAC, 6);
    memcpy(out + 6, GW_MAC, 6);
    put16(out + 12, 0x88b5); /* local experimental ethertype */
    memset(out + 14, 0x42, 46);
    assert_int_equal(send(ps, out, 60, 0), 60);
    static uint8_t buf[NET_BUF_MAX];
    seen = false;
    end = now_ms() + WAIT_MS;
    while (!seen && now_ms() < end) {
        ssize_t n = be_recv(be, buf, 200);
        if (n == VIRTIO_NET_HDR_LEN + 60 && memcmp(buf + VIRTIO_NET_HDR_LEN, out, 60) == 0)
            seen = true;
    }
    assert_true(seen);
    close(ps);
    be->ops->free(be);
    /* Created by us, gone with us. */
    end = now_ms() + WAIT_MS;
    while (if_nametoindex(name) != 0 && now_ms() < end)
        sleep_ms(10);
    assert_int_equal(if_nametoindex(name), 0);
}

/* A persistent TAP device, as `ip tuntap add dev NAME mode tap user UID`
 * makes it; false without the privileges. */
static bool tap_persist(const char *name, bool on, uid_t owner)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct ifreq ifr = { 0 };
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    bool ok = ioctl(fd, TUNSETIFF, &ifr) == 0 &&
              (!on || ioctl(fd, TUNSETOWNER, (unsigned long)owner) == 0) &&
              ioctl(fd, TUNSETPERSIST, on ? 1 : 0) == 0;
    close(fd);
    return ok;
}

/* The set-up docs/networking.md recommends: a device made once by root
 * for a user, which that user then opens with no privileges at all; and
 * the message for someone else's device. */
static void test_tap_owned(void **state)
{
    (void)state;
    char mine[IFNAMSIZ], theirs[IFNAMSIZ];
    snprintf(mine, sizeof mine, "vmlm%u", (unsigned)getpid() % 100000);
    snprintf(theirs, sizeof theirs, "vmlo%u", (unsigned)getpid() % 100000);
    if (!tap_persist(mine, true, getuid()))
        skip();
    assert_true(tap_persist(theirs, true, getuid() + 1));
    char msg[600], want[600];
    char *r = tap_open_in_child(mine, enter_userns, msg, sizeof msg);
    if (r) {
        /* Unprivileged, own device: opens (and says it is down). */
        assert_string_equal(msg, "");
        r = tap_open_in_child(theirs, enter_userns, msg, sizeof msg);
        assert_non_null(r);
        snprintf(want, sizeof want,
                 "tap '%s': permission denied (the device belongs to another "
                 "user or group); recreate it for you with: ip tuntap del dev %s mode tap && ip "
                 "tuntap add dev %s mode tap user $USER && ip link set %s up",
                 theirs, theirs, theirs, theirs);
        assert_string_equal(msg, want);
    }
    vmlet_error err;
    struct net_backend *be = net_tap_open(mine, &err);
    assert_non_null(be);
    snprintf(want, sizeof want,
             "tap '%s' is down: the guest's network will be silent until: "
             "ip link set %s up",
             mine, mine);
    assert_string_equal(be->warning, want);
    be->ops->free(be);
    assert_true(tap_persist(mine, false, 0));
    assert_true(tap_persist(theirs, false, 0));
    assert_int_equal(if_nametoindex(mine), 0);
    if (!r)
        skip();
}

/* ---- the device over the real backends ------------------------------------ */


#define G_RAM   (8u << 20)
#define G_QSIZE 256
#define G_BUF   2048

/* A minimal driver: one ring per queue at 64 KiB * (i + 1), one 2 KiB
 * buffer per descriptor from 1 MiB on (descriptor d of queue i owns
 * buffer i * 256 + d), single-descriptor chains. */
struct gring {
    struct virtq q;
    uint8_t *desc, *avail, *used;
    uint16_t avail_idx, last_used;
    int kick;
};

struct guest {
    struct guest_memory mem;
    struct virtio_transport t;
    struct gring r[2];
    struct virtio_net *net;
};

static uint64_t gbuf(unsigned q, unsigned d)
{
    return (1u << 20) + ((uint64_t)q * G_QSIZE + d) * G_BUF;
}

static void guest_start(struct guest *g, struct net_backend *be, uint64_t features)
{
    memset(g, 0, sizeof *g);
    g->mem.host = aligned_alloc(4096, G_RAM);
    assert_non_null(g->mem.host);
    memset(g->mem.host, 0, G_RAM);
    g->mem.size = g->mem.low_size = G_RAM;
    struct virtio_queues qs = { .transport = &g->t,
                                .count = 2,
                                .features = features | (1ULL << VIRTIO_F_VERSION_1) };
    for (unsigned i = 0; i < 2; i++) {
        struct gring *r = &g->r[i];
        uint64_t base = 0x10000ULL * (i + 1);
        r->q = (struct virtq){ .mem = &g->mem,
                               .size = G_QSIZE,
                               .desc_gpa = base,
                               .avail_gpa = base + 0x1000,
                               .used_gpa = base + 0x2000,
                               .ready = true };
        r->desc = g->mem.host + base;
        r->avail = r->desc + 0x1000;
        r->used = r->desc + 0x2000;
        r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        qs.q[i] = &r->q;
        qs.kick_fd[i] = r->kick;
    }
    vmlet_error err;
    g->net = virtio_net_new(be, GUEST_MAC, &err);
    assert_non_null(g->net);
    assert_int_equal(virtio_net_device(g->net)->ops.activate(g->net, &qs), 0);
}

static void guest_stop(struct guest *g)
{
    virtio_net_free(g->net);
    close(g->r[0].kick);
    close(g->r[1].kick);
    free(g->mem.host);
}

static void gpost(struct guest *g, unsigned qi, const void *data, uint32_t len, bool writable)
{
    struct gring *r = &g->r[qi];
    unsigned d = r->avail_idx % G_QSIZE;
    uint64_t a = gbuf(qi, d);
    if (data)
        memcpy(g->mem.host + a, data, len);
    uint16_t flags = writable ? 2 : 0;
    memcpy(r->desc + 16 * d, &a, 8);
    memcpy(r->desc + 16 * d + 8, &len, 4);
    memcpy(r->desc + 16 * d + 12, &flags, 2);
    ((uint16_t *)(r->avail + 4))[d] = (uint16_t)d;
    r->avail_idx++;
    __atomic_store_n((uint16_t *)(r->avail + 2), r->avail_idx, __ATOMIC_RELEASE);
    uint64_t one = 1;
    assert_int_equal(write(r->kick, &one, 8), 8);
}

/* The next used entry of queue qi: its buffer and length, or NULL. */
static uint8_t *gused(struct guest *g, unsigned qi, uint32_t *len, unsigned ms)
{
    struct gring *r = &g->r[qi];
    uint64_t end = now_ms() + ms;
    while (__atomic_load_n((uint16_t *)(r->used + 2), __ATOMIC_ACQUIRE) == r->last_used) {
        if (now_ms() > end)
            return NULL;
        sleep_ms(1);
    }
    const uint8_t *e = r->used + 4 + 8 * (r->last_used % G_QSIZE);
    uint32_t id;
    memcpy(&id, e, 4);
    memcpy(len, e + 4, 4);
    r->last_used++;
    return g->mem.host + gbuf(qi, id);
}

static void gsend(struct guest *g, const uint8_t *frame, size_t len)
{
    uint8_t b[G_BUF] = { 0 };
    memcpy(b + VIRTIO_NET_HDR_LEN, frame, len);
    gpost(g, 1, b, (uint32_t)(VIRTIO_NET_HDR_LEN + len), false);
    uint32_t l;
    assert_non_null(gused(g, 1, &l, WAIT_MS));
}

static void test_device_over_slirp(void **state)
{
    (void)state;
    vmlet_error err;
    struct net_backend *be = slirp_from("user", &err);
    assert_non_null(be);
    struct guest g;
    guest_start(&g, be, NET_BIT(VIRTIO_NET_F_MAC) | NET_BIT(VIRTIO_NET_F_MRG_RXBUF));

    /* DHCP through the queues. */
    for (unsigned i = 0; i < 8; i++)
        gpost(&g, 0, NULL, G_BUF, true);
    uint8_t frame[600];
    size_t len = dhcp_discover(frame, 0x55aa);
    gsend(&g, frame, len);
    bool offered = false;
    for (unsigned i = 0; i < 8 && !offered; i++) {
        uint32_t l;
        uint8_t *b = gused(&g, 0, &l, WAIT_MS);
        assert_non_null(b);
        assert_int_equal(b[10], 1); /* num_buffers */
        const uint8_t *e = b + VIRTIO_NET_HDR_LEN;
        if (get16(e + 12) == 0x0800 && e[23] == 17 && get16(e + 34) == 67)
            offered = get32(e + 42 + 4) == 0x55aa && get32(e + 42 + 16) == NET_USER_GUEST;
    }
    assert_true(offered);

    /* The guest stops reading: slirp's frames queue up to the bound, the
     * rest is dropped and counted, nothing spins. */
    unsigned posted = 8, used = 0;
    while (__atomic_load_n((uint16_t *)(g.r[0].used + 2), __ATOMIC_ACQUIRE) != g.r[0].last_used) {
        uint32_t l;
        gused(&g, 0, &l, 0);
    }
    used = g.r[0].last_used;
    unsigned left = posted - used; /* still posted: take them first */
    len = arp_request(frame, NET_USER_GATEWAY);
    unsigned sent = left + NET_SLIRP_RX_FRAMES + 50;
    for (unsigned i = 0; i < sent; i++)
        gsend(&g, frame, len);
    struct net_stats s;
    uint64_t end = now_ms() + WAIT_MS;
    do {
        virtio_net_get_stats(g.net, &s);
        if (s.rx_dropped >= 50)
            break;
        sleep_ms(5);
    } while (now_ms() < end);
    assert_int_equal(s.rx_dropped, 50);
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    sleep_ms(200);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    assert_true((c1.tv_sec - c0.tv_sec) * 1000 + (c1.tv_nsec - c0.tv_nsec) / 1000000 < 100);

    /* Reading again: exactly the queued replies arrive. */
    unsigned got = 0;
    for (unsigned round = 0; round < NET_SLIRP_RX_FRAMES / 64 + 1; round++) {
        for (unsigned i = 0; i < 64; i++)
            gpost(&g, 0, NULL, G_BUF, true);
        for (;;) {
            uint32_t l;
            uint8_t *b = gused(&g, 0, &l, 200);
            if (!b)
                break;
            assert_int_equal(get16(b + VIRTIO_NET_HDR_LEN + 12), 0x0806);
            got++;
        }
    }
    assert_int_equal(got, left + NET_SLIRP_RX_FRAMES);
    virtio_net_get_stats(g.net, &s);
    assert_int_equal(s.tx_packets, 1 + sent);
    assert_int_equal(s.tx_malformed, 0);
    assert_int_equal(atomic_load(&g.t.needs_reset), 0);
    guest_stop(&g);
}

/* slirp works on the device thread: a connection to a port forward, which
 * only slirp's listening socket sees, reaches the guest's receive queue
 * (slirp's ARP request for 10.0.2.15) with nobody but the device thread
 * polling slirp. */
static void test_device_polls_slirp(void **state)
{
    (void)state;
    char spec[128];
    uint16_t port;
    struct net_backend *be = slirp_forwarding(spec, &port);
    struct guest g;
    guest_start(&g, be, NET_BIT(VIRTIO_NET_F_MAC) | NET_BIT(VIRTIO_NET_F_MRG_RXBUF));
    for (unsigned i = 0; i < 8; i++)
        gpost(&g, 0, NULL, G_BUF, true);

    int c = connect_local(port);
    bool seen = false;
    for (unsigned i = 0; i < 8 && !seen; i++) {
        uint32_t l;
        uint8_t *b = gused(&g, 0, &l, WAIT_MS);
        assert_non_null(b);
        const uint8_t *e = b + VIRTIO_NET_HDR_LEN;
        seen = get16(e + 12) == 0x0806 && get16(e + 14 + 6) == 1 &&
               get32(e + 14 + 24) == NET_USER_GUEST;
    }
    assert_true(seen);
    close(c);
    guest_stop(&g);
}

/* With CAP_NET_ADMIN: the device over a TAP device, offloads negotiated:
 * a TSO frame from the guest leaves the TAP device as segments the host
 * stack made, and a frame the host sends arrives in the guest. */
static void test_device_over_tap(void **state)
{
    (void)state;
    char name[IFNAMSIZ];
    snprintf(name, sizeof name, "vmld%u", (unsigned)getpid() % 100000);
    vmlet_error err;
    struct net_backend *be = tun_usable() ? net_tap_open(name, &err) : NULL;
    if (!be) {
        skip();
        return;
    }
    int ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (ps < 0) {
        be->ops->free(be);
        skip();
        return;
    }
    struct sockaddr_ll sll = { .sll_family = AF_PACKET,
                               .sll_protocol = htons(ETH_P_ALL),
                               .sll_ifindex = (int)if_nametoindex(name) };
    assert_int_equal(bind(ps, (struct sockaddr *)&sll, sizeof sll), 0);
    struct guest g;
    guest_start(&g, be,
                NET_BIT(VIRTIO_NET_F_MAC) | NET_BIT(VIRTIO_NET_F_MRG_RXBUF) |
                    NET_BIT(VIRTIO_NET_F_GUEST_CSUM) | NET_BIT(VIRTIO_NET_F_CSUM));

    /* Guest -> host, with a partial checksum the host side completes. */
    uint8_t frame[200];
    size_t len = tcp_syn(frame, 0x0a000299, 1234, 80);
    uint8_t *tcp = frame + 34;
    uint16_t good = get16(tcp + 16);
    uint8_t b[G_BUF] = { 0 };
    struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                   .csum_start = htole16(34),
                                   .csum_offset = htole16(16) };
    /* The pseudo-header sum, as a driver leaves it. */
    uint8_t pseudo[12];
    put32(pseudo, NET_USER_GUEST);
    put32(pseudo + 4, 0x0a000299);
    pseudo[9] = 6;
    put16(pseudo + 10, 20);
    put16(tcp + 16, (uint16_t)~fold(sum16(pseudo, 12, 0)));
    memcpy(b, &h, sizeof h);
    memcpy(b + VIRTIO_NET_HDR_LEN, frame, len);
    gpost(&g, 1, b, (uint32_t)(VIRTIO_NET_HDR_LEN + len), false);
    uint32_t l;
    assert_non_null(gused(&g, 1, &l, WAIT_MS));
    uint8_t got[2048];
    bool seen = false;
    uint64_t end = now_ms() + WAIT_MS;
    while (!seen && now_ms() < end) {
        struct pollfd p = { .fd = ps, .events = POLLIN };
        if (poll(&p, 1, 100) != 1)
            continue;
        struct sockaddr_ll from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(ps, got, sizeof got, 0, (struct sockaddr *)&from, &fl);
        /* The packet socket sees it before checksumming when the stack
         * defers it; either way the frame is ours and whole. */
        if (n == (ssize_t)len && memcmp(got, frame, 34) == 0) {
            uint16_t c = get16(got + 34 + 16);
            seen = c == good || c == get16(tcp + 16);
        }
    }
    assert_true(seen);

    /* Host -> guest. */
    for (unsigned i = 0; i < 4; i++)
        gpost(&g, 0, NULL, G_BUF, true);
    uint8_t out[100];
    memcpy(out, GUEST_MAC, 6);
    memcpy(out + 6, GW_MAC, 6);
    put16(out + 12, 0x88b5);
    memset(out + 14, 0x24, sizeof out - 14);
    assert_int_equal(send(ps, out, sizeof out, 0), (ssize_t)sizeof out);
    seen = false;
    end = now_ms() + WAIT_MS;
    while (!seen && now_ms() < end) {
        uint8_t *r = gused(&g, 0, &l, 200);
        if (r && l == VIRTIO_NET_HDR_LEN + sizeof out &&
            memcmp(r + VIRTIO_NET_HDR_LEN, out, sizeof out) == 0)
            seen = true;
        else if (r)
            gpost(&g, 0, NULL, G_BUF, true); /* something else (IPv6 chatter): next */
    }
    assert_true(seen);
    close(ps);
    guest_stop(&g);
}

/* With CAP_NET_ADMIN: the host deletes the TAP device while the device
 * waits for frames for the guest. The device notices (poll reports the
 * error), takes the link down and tells the driver. */
static void test_device_tap_deleted(void **state)
{
    (void)state;
    char name[IFNAMSIZ], cmd[64];
    snprintf(name, sizeof name, "vmlx%u", (unsigned)getpid() % 100000);
    vmlet_error err;
    struct net_backend *be = tun_usable() ? net_tap_open(name, &err) : NULL;
    if (!be) {
        skip();
        return;
    }
    struct guest g;
    guest_start(&g, be, NET_BIT(VIRTIO_NET_F_MAC) | NET_BIT(VIRTIO_NET_F_STATUS));
    for (unsigned i = 0; i < 4; i++)
        gpost(&g, 0, NULL, G_BUF, true);
    const struct virtio_device_ops *ops = &virtio_net_device(g.net)->ops;
    uint8_t status[2];
    ops->config_read(g.net, 6, status, 2);
    assert_int_equal(status[0], 1); /* VIRTIO_NET_S_LINK_UP */

    snprintf(cmd, sizeof cmd, "ip link delete %s", name);
    assert_int_equal(system(cmd), 0);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&g.t.config) == 0 && now_ms() < end)
        sleep_ms(5);
    assert_int_equal(atomic_load(&g.t.config), 1);
    ops->config_read(g.net, 6, status, 2);
    assert_int_equal(status[0], 0);
    assert_true(atomic_load(&be->failed));
    guest_stop(&g);
}

int main(void)
{
    if (getenv("TEST_SLIRP_MISSING"))
        return slirp_missing_child();
    alarm(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_good),
        cmocka_unit_test(test_spec_bad),
        cmocka_unit_test(test_spec_macs),
        cmocka_unit_test(test_specs_across_nics),
        cmocka_unit_test(test_device_for_spec),
        cmocka_unit_test(test_slirp_missing),
        cmocka_unit_test(test_slirp_dhcp),
        cmocka_unit_test(test_slirp_gateway_is_host),
        cmocka_unit_test(test_slirp_host_loopback_off),
        cmocka_unit_test(test_slirp_hostfwd),
        cmocka_unit_test(test_slirp_port_in_use),
        cmocka_unit_test(test_slirp_rx_bounded),
        cmocka_unit_test(test_flow_frame),
        cmocka_unit_test(test_slirp_flow_cap_tcp),
        cmocka_unit_test(test_slirp_flow_cap_udp),
        cmocka_unit_test(test_slirp_flow_cap_malformed),
        cmocka_unit_test(test_slirp_hostfwd_emfile),
        cmocka_unit_test(test_slirp_many),
        cmocka_unit_test(test_tap_messages),
        cmocka_unit_test(test_tap_no_permission),
        cmocka_unit_test(test_tap_not_a_tap),
        cmocka_unit_test(test_tap_real),
        cmocka_unit_test(test_tap_owned),
        cmocka_unit_test(test_device_over_slirp),
        cmocka_unit_test(test_device_polls_slirp),
        cmocka_unit_test(test_device_over_tap),
        cmocka_unit_test(test_device_tap_deleted),
    };
    return cmocka_run_group_tests_name("net_backends", tests, NULL, NULL);
}
