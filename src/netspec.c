/* Parsing the --net option (see netspec.h). Pure: no sockets, no devices,
 * no allocation; everything the user wrote is checked here so that the
 * backends only ever see well-formed values, and every error names the
 * piece that is wrong. */
#include "netspec.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "error.h"

#define RULE_SYNTAX "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"

/* One comma-separated item of the spec, not NUL-terminated in the input. */
struct item {
    const char *p;
    size_t len;
};

static int fail(vmlet_error *err, const char *text, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "net 'TEXT': " + the reason. */
static int fail(vmlet_error *err, const char *text, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return set_error(err, VMLET_ERR_INVALID, "net '%s': %s", text, why);
}

/* Copies an item into buf as a C string (truncated to fit). */
static const char *item_str(struct item it, char *buf, size_t len)
{
    size_t n = it.len < len - 1 ? it.len : len - 1;
    memcpy(buf, it.p, n);
    buf[n] = '\0';
    return buf;
}

static bool item_is(struct item it, const char *s)
{
    return it.len == strlen(s) && memcmp(it.p, s, it.len) == 0;
}

/* "key=value": true and the value if it starts with key=. */
static bool item_key(struct item it, const char *key, struct item *value)
{
    size_t k = strlen(key);
    if (it.len <= k || memcmp(it.p, key, k) != 0 || it.p[k] != '=')
        return false;
    value->p = it.p + k + 1;
    value->len = it.len - k - 1;
    return true;
}

/* 1..65535, decimal digits only. */
static bool parse_port(const char *s, uint16_t *port)
{
    if (!*s || strlen(s) > 5)
        return false;
    unsigned v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return false;
        v = v * 10 + (unsigned)(*c - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

bool net_max_flows_ok(uint64_t n)
{
    return n >= NET_MAX_FLOWS_MIN && n <= NET_MAX_FLOWS_MAX;
}

unsigned net_spec_max_flows(const struct net_spec *s)
{
    return s->max_flows ? s->max_flows : NET_MAX_FLOWS_DEFAULT;
}

/* max-flows=N: decimal digits only, in range. */
static bool parse_max_flows(struct item v, unsigned *out)
{
    uint64_t n = 0;
    if (v.len == 0 || v.len > 6)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(v.p[i] - '0');
    }
    if (!net_max_flows_ok(n))
        return false;
    *out = (unsigned)n;
    return true;
}

/* Dotted-quad IPv4 only (inet_pton is strict: no "10.2", no hex). */
static bool parse_ipv4(const char *s, uint32_t *addr)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return false;
    *addr = ntohl(a.s_addr);
    return true;
}

static void ipv4_text(uint32_t addr, char *buf, size_t len)
{
    struct in_addr a = { htonl(addr) };
    if (!inet_ntop(AF_INET, &a, buf, (socklen_t)len))
        snprintf(buf, len, "?");
}

void net_hostfwd_host_text(const struct net_hostfwd *f, char *buf, size_t len)
{
    char a[INET_ADDRSTRLEN];
    ipv4_text(f->host_addr, a, sizeof a);
    snprintf(buf, len, "%s:%s:%u", f->udp ? "udp" : "tcp", a, f->host_port);
}

void net_mac_text(const uint8_t mac[6], char *buf, size_t len)
{
    snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
             mac[5]);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum net_mac_error net_parse_mac(const char *s, size_t len, uint8_t mac[6])
{
    static const uint8_t zero[6];
    if (len != 17)
        return NET_MAC_SYNTAX;
    for (unsigned i = 0; i < 6; i++) {
        int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
            return NET_MAC_SYNTAX;
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    if (mac[0] & 1)
        return NET_MAC_MULTICAST;
    return memcmp(mac, zero, 6) ? NET_MAC_OK : NET_MAC_ZERO;
}

bool net_tap_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > NET_TAP_NAME_MAX || (len == 1 && s[0] == '.') ||
        (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == ',' || c == '=')
            return false;
    }
    return true;
}

bool net_hostfwd_clash(const struct net_hostfwd *a, const struct net_hostfwd *b)
{
    return a->udp == b->udp && a->host_port == b->host_port &&
           (a->host_addr == b->host_addr || a->host_addr == 0 || b->host_addr == 0);
}

const char *net_guest_addr_role(uint32_t g)
{
    return g == NET_USER_GATEWAY   ? "the gateway (the host)"
           : g == NET_USER_DNS     ? "the DNS server"
           : g == NET_USER_NETWORK ? "the network address"
                                   : "the broadcast address";
}

/* Copies the piece that is wrong for the caller's message. */
static enum net_fwd_error fwd_fail(enum net_fwd_error e, char *part, const char *piece)
{
    snprintf(part, NET_HOSTFWD_TEXT_MAX, "%s", piece);
    return e;
}

enum net_fwd_error net_parse_hostfwd(const char *rule, size_t len, struct net_hostfwd *f,
                                     char *part)
{
    char r[NET_HOSTFWD_TEXT_MAX];
    memset(f, 0, sizeof *f);
    part[0] = '\0';
    if (len >= sizeof r)
        return NET_FWD_TOO_LONG;
    memcpy(r, rule, len);
    r[len] = '\0';
    memcpy(f->text, r, len + 1);

    /* protocol */
    char *colon = strchr(r, ':');
    if (!colon)
        return NET_FWD_NO_COLON;
    *colon = '\0';
    if (strcmp(r, "udp") == 0)
        f->udp = true;
    else if (*r && strcmp(r, "tcp") != 0)
        return fwd_fail(NET_FWD_PROTOCOL, part, r);

    /* host side, up to '-' (IPv4 addresses and ports contain none) */
    char *host = colon + 1;
    char *dash = strchr(host, '-');
    if (!dash)
        return NET_FWD_NO_DASH;
    if (strchr(dash + 1, '-'))
        return NET_FWD_TWO_DASHES;
    *dash = '\0';
    char *guest = dash + 1;

    char *hc = strrchr(host, ':');
    if (!hc)
        return fwd_fail(NET_FWD_HOST_SIDE, part, host);
    *hc = '\0';
    f->host_addr = NET_HOSTFWD_DEFAULT_HOST;
    if (*host && !parse_ipv4(host, &f->host_addr))
        return fwd_fail(NET_FWD_HOST_ADDR, part, host);
    if (!parse_port(hc + 1, &f->host_port))
        return fwd_fail(NET_FWD_HOST_PORT, part, hc + 1);

    /* guest side */
    char *gc = strrchr(guest, ':');
    if (!gc)
        return fwd_fail(NET_FWD_GUEST_SIDE, part, guest);
    *gc = '\0';
    f->guest_addr = NET_USER_GUEST;
    if (*guest) {
        if (!parse_ipv4(guest, &f->guest_addr))
            return fwd_fail(NET_FWD_GUEST_ADDR, part, guest);
        uint32_t g = f->guest_addr;
        if ((g & NET_USER_NETMASK) != NET_USER_NETWORK)
            return fwd_fail(NET_FWD_GUEST_NETWORK, part, guest);
        if (g == NET_USER_NETWORK || g == (NET_USER_NETWORK | ~NET_USER_NETMASK) ||
            g == NET_USER_GATEWAY || g == NET_USER_DNS)
            return fwd_fail(NET_FWD_GUEST_RESERVED, part, guest);
    }
    if (!parse_port(gc + 1, &f->guest_port))
        return fwd_fail(NET_FWD_GUEST_PORT, part, gc + 1);
    return NET_FWD_OK;
}

/* One hostfwd= value, with the --net wording of what is wrong. */
static int parse_hostfwd(const char *text, struct item rule, struct net_hostfwd *f,
                         vmlet_error *err)
{
    char part[NET_HOSTFWD_TEXT_MAX];
    const char *t = f->text;
    switch (net_parse_hostfwd(rule.p, rule.len, f, part)) {
    case NET_FWD_OK: return 0;
    case NET_FWD_TOO_LONG:
        return fail(err, text, "hostfwd '%.*s...': too long for a rule (%s)", 20, rule.p,
                    RULE_SYNTAX);
    case NET_FWD_NO_COLON: return fail(err, text, "hostfwd '%s': expected %s", t, RULE_SYNTAX);
    case NET_FWD_PROTOCOL:
        return fail(err, text, "hostfwd '%s': protocol '%s' is not tcp or udp", t, part);
    case NET_FWD_NO_DASH:
        return fail(err, text,
                    "hostfwd '%s': no '-' between the host and the guest side "
                    "(expected %s)",
                    t, RULE_SYNTAX);
    case NET_FWD_TWO_DASHES:
        return fail(err, text, "hostfwd '%s': more than one '-' (expected %s)", t, RULE_SYNTAX);
    case NET_FWD_HOST_SIDE:
        return fail(err, text, "hostfwd '%s': host side '%s' is not [HOSTADDR]:HOSTPORT", t, part);
    case NET_FWD_HOST_ADDR:
        return fail(err, text, "hostfwd '%s': host address '%s' is not an IPv4 address", t, part);
    case NET_FWD_HOST_PORT:
        return fail(err, text, "hostfwd '%s': host port '%s' is not a port number (1-65535)", t,
                    part);
    case NET_FWD_GUEST_SIDE:
        return fail(err, text, "hostfwd '%s': guest side '%s' is not [GUESTADDR]:GUESTPORT", t,
                    part);
    case NET_FWD_GUEST_ADDR:
        return fail(err, text, "hostfwd '%s': guest address '%s' is not an IPv4 address", t, part);
    case NET_FWD_GUEST_NETWORK:
        return fail(err, text,
                    "hostfwd '%s': guest address '%s' is not in the guest "
                    "network 10.0.2.0/24",
                    t, part);
    case NET_FWD_GUEST_RESERVED:
        return fail(err, text, "hostfwd '%s': guest address '%s' is %s, not a guest", t, part,
                    net_guest_addr_role(f->guest_addr));
    case NET_FWD_GUEST_PORT:
        return fail(err, text, "hostfwd '%s': guest port '%s' is not a port number (1-65535)", t,
                    part);
    }
    return fail(err, text, "hostfwd '%s': not a rule (%s)", t, RULE_SYNTAX);
}

int net_spec_format(const struct net_spec *s, const uint8_t mac[6], char *buf, size_t len)
{
    size_t at = 0;
    int n = s->kind == NET_SPEC_TAP ? snprintf(buf, len, "tap=%s", s->tap_name)
                                    : snprintf(buf, len, "user");
#define APPEND(...) \
    do { \
        if (n < 0 || (size_t)n >= len - at) \
            return -1; \
        at += (size_t)n; \
        n = snprintf(buf + at, len - at, __VA_ARGS__); \
    } while (0)
    for (unsigned i = 0; i < s->nhostfwd && i < NET_SPEC_MAX_HOSTFWD; i++)
        APPEND(",hostfwd=%s", s->hostfwd[i].text);
    APPEND(",mac=%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    if (s->no_host_loopback)
        APPEND(",host-loopback=off");
    if (s->max_flows)
        APPEND(",max-flows=%u", s->max_flows);
    APPEND("%s", "");
#undef APPEND
    return 0;
}

int net_spec_parse(const char *text, struct net_spec *out, vmlet_error *err)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text)
        return fail(err, text ? text : "", "empty; give user[,hostfwd=...] or tap=NAME");

    /* Split on commas; every item must be non-empty. */
    struct item items[2 + NET_SPEC_MAX_HOSTFWD + 8];
    unsigned n = 0;
    for (const char *p = text;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0)
            return fail(err, text, "empty option (two commas in a row, or a comma at an end)");
        if (n == sizeof items / sizeof items[0])
            return fail(err, text, "too many options (at most %d hostfwd rules)",
                        NET_SPEC_MAX_HOSTFWD);
        items[n++] = (struct item){ p, len };
        if (!e)
            break;
        p = e + 1;
    }

    char buf[80];
    struct item v;
    bool loopback_given = false;
    if (item_is(items[0], "user")) {
        out->kind = NET_SPEC_USER;
    } else if (item_key(items[0], "tap", &v)) {
        out->kind = NET_SPEC_TAP;
        if (!net_tap_name_ok(v.p, v.len))
            return fail(err, text,
                        "tap name '%s' is not a valid interface name (1-%d "
                        "characters; no spaces, '/', ':', ',' or '=')",
                        item_str(v, buf, sizeof buf), NET_TAP_NAME_MAX);
        item_str(v, out->tap_name, sizeof out->tap_name);
    } else if (item_is(items[0], "tap")) {
        return fail(err, text, "tap needs a device name: tap=NAME");
    } else {
        return fail(err, text, "'%s' is not a network kind; give user or tap=NAME",
                    item_str(items[0], buf, sizeof buf));
    }

    for (unsigned i = 1; i < n; i++) {
        struct item it = items[i];
        if (item_key(it, "mac", &v)) {
            if (out->has_mac)
                return fail(err, text, "mac given twice");
            switch (net_parse_mac(v.p, v.len, out->mac)) {
            case NET_MAC_OK: break;
            case NET_MAC_SYNTAX:
                return fail(err, text,
                            "mac '%s' is not a MAC address (six hex bytes, e.g. "
                            "52:54:00:12:34:56)",
                            item_str(v, buf, sizeof buf));
            case NET_MAC_MULTICAST:
                return fail(err, text,
                            "mac '%s' is a multicast address (the first byte must "
                            "be even)",
                            item_str(v, buf, sizeof buf));
            case NET_MAC_ZERO:
                return fail(err, text, "mac '%s' is all zeros", item_str(v, buf, sizeof buf));
            }
            out->has_mac = true;
        } else if (item_key(it, "hostfwd", &v)) {
            if (out->kind != NET_SPEC_USER)
                return fail(err, text,
                            "hostfwd is for user networking only (a TAP device "
                            "is reached directly)");
            if (out->nhostfwd == NET_SPEC_MAX_HOSTFWD)
                return fail(err, text, "more than %d hostfwd rules", NET_SPEC_MAX_HOSTFWD);
            struct net_hostfwd *f = &out->hostfwd[out->nhostfwd];
            if (parse_hostfwd(text, v, f, err) < 0)
                return -1;
            for (unsigned j = 0; j < out->nhostfwd; j++)
                if (net_hostfwd_clash(&out->hostfwd[j], f))
                    return fail(err, text,
                                "hostfwd '%s': %s port %u is already forwarded by "
                                "'%s'",
                                f->text, f->udp ? "udp" : "tcp", f->host_port,
                                out->hostfwd[j].text);
            out->nhostfwd++;
        } else if (item_key(it, "host-loopback", &v)) {
            if (out->kind != NET_SPEC_USER)
                return fail(err, text,
                            "host-loopback is for user networking only (a TAP "
                            "device has no gateway of ours)");
            if (loopback_given)
                return fail(err, text, "host-loopback given twice");
            if (item_is(v, "off"))
                out->no_host_loopback = true;
            else if (!item_is(v, "on"))
                return fail(err, text, "host-loopback '%s' is not on or off",
                            item_str(v, buf, sizeof buf));
            loopback_given = true;
        } else if (item_key(it, "max-flows", &v)) {
            if (out->kind != NET_SPEC_USER)
                return fail(err, text,
                            "max-flows is for user networking only (a TAP device "
                            "opens no host sockets for the guest)");
            if (out->max_flows)
                return fail(err, text, "max-flows given twice");
            if (!parse_max_flows(v, &out->max_flows))
                return fail(err, text, "max-flows '%s' is not a number from %d to %d",
                            item_str(v, buf, sizeof buf), NET_MAX_FLOWS_MIN, NET_MAX_FLOWS_MAX);
        } else if (item_is(it, "user") || item_key(it, "tap", &v)) {
            return fail(err, text, "'%s' must come first, and only once",
                        item_str(it, buf, sizeof buf));
        } else {
            return fail(err, text, "unknown option '%s' (%s takes %s)",
                        item_str(it, buf, sizeof buf), out->kind == NET_SPEC_USER ? "user" : "tap",
                        out->kind == NET_SPEC_USER ? "hostfwd=, mac=, host-loopback= and max-flows="
                                                   : "mac=");
        }
    }
    return 0;
}

/* FNV-1a: a fixed, well-spread hash, so a name always gives one MAC. */
static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

void net_spec_mac(const struct net_spec *s, unsigned index, uint8_t mac[6])
{
    if (s->has_mac) {
        memcpy(mac, s->mac, 6);
        return;
    }
    /* 52:54:00 is the prefix QEMU and libvirt use; it is locally
     * administered, so it never clashes with real hardware. */
    mac[0] = 0x52;
    mac[1] = 0x54;
    mac[2] = 0x00;
    if (s->kind == NET_SPEC_TAP) {
        uint32_t h = fnv1a(s->tap_name);
        mac[3] = (uint8_t)(h >> 16);
        mac[4] = (uint8_t)(h >> 8);
        mac[5] = (uint8_t)h;
    } else {
        mac[3] = 0x12;
        mac[4] = 0x34;
        mac[5] = (uint8_t)(0x56 + index);
    }
}

int net_specs_check(const struct net_spec *specs, unsigned n, vmlet_error *err)
{
    for (unsigned i = 0; i < n; i++) {
        uint8_t mi[6];
        net_spec_mac(&specs[i], i, mi);
        for (unsigned j = i + 1; j < n; j++) {
            const struct net_spec *a = &specs[i], *b = &specs[j];
            if (a->kind == NET_SPEC_TAP && b->kind == NET_SPEC_TAP &&
                strcmp(a->tap_name, b->tap_name) == 0)
                return set_error(err, VMLET_ERR_INVALID,
                                 "net: tap '%s' is given twice "
                                 "(NICs %u and %u); a TAP device serves one NIC",
                                 a->tap_name, i + 1, j + 1);
            for (unsigned x = 0; x < a->nhostfwd; x++)
                for (unsigned y = 0; y < b->nhostfwd; y++)
                    if (net_hostfwd_clash(&a->hostfwd[x], &b->hostfwd[y]))
                        return set_error(err, VMLET_ERR_INVALID,
                                         "net: hostfwd '%s' (NIC %u) "
                                         "and '%s' (NIC %u) forward the same %s port %u",
                                         a->hostfwd[x].text, i + 1, b->hostfwd[y].text, j + 1,
                                         a->hostfwd[x].udp ? "udp" : "tcp",
                                         a->hostfwd[x].host_port);
            uint8_t mj[6];
            net_spec_mac(b, j, mj);
            if (memcmp(mi, mj, 6) == 0) {
                char t[18];
                net_mac_text(mi, t, sizeof t);
                return set_error(err, VMLET_ERR_INVALID,
                                 "net: NICs %u and %u both have MAC "
                                 "%s; give one of them another mac=",
                                 i + 1, j + 1, t);
            }
        }
    }
    return 0;
}
