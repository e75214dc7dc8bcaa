/* libFuzzer target for the --net option (net_spec_parse(), src/netspec.c,
 * and vmlet_config_add_net() / vmlet_check_net(), src/config.c). Build with
 * clang -fsanitize=fuzzer,address,undefined (docs/fuzzing.md), or with
 * -DVMLET_FUZZ_STANDALONE and any compiler to replay files.
 *
 * An input is up to MAX_SPECS --net values, one per line ('\n'); each is
 * copied into a heap buffer of exactly its length plus the NUL, so ASan
 * reports any read past it. Besides memory errors and leaks it checks:
 *   - the result is 0 or -1; -1 always comes with VMLET_ERR_INVALID and a
 *     non-empty one-line message starting "net '" (what the CLI prints),
 *     and vmlet_check_net() agrees;
 *   - an accepted spec holds what the rules allow: a TAP name Linux would
 *     take and no user-only options on a TAP, a unicast non-zero MAC, at
 *     most NET_SPEC_MAX_HOSTFWD forwards with ports 1..65535, guest
 *     addresses inside 10.0.2.0/24 and not reserved, no two clashing;
 *   - it round-trips: written back as canonical text (the forwards in full
 *     form) it parses to the same spec;
 *   - all the lines through vmlet_config_add_net() on one config: more than
 *     VMLET_MAX_NICS are flagged, the first bad one's message is kept, and
 *     net_specs_check() accepts or explains the rest. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TARGET "fuzz_net_spec"
#include "fuzz_util.h"
#include "config.h"
#include "netspec.h"

#define MAX_SPECS 12

static void check_error(const vmlet_error *err)
{
    check(err->code == VMLET_ERR_INVALID, "error without VMLET_ERR_INVALID");
    check(memchr(err->message, '\0', sizeof err->message) != NULL, "message not terminated");
    check(strncmp(err->message, "net", 3) == 0, "message does not name the option");
    check(!strchr(err->message, '\n'), "message is more than one line");
}

static void ipv4(char *buf, size_t len, uint32_t a)
{
    snprintf(buf, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

/* The spec as canonical --net text. */
static void spec_text(const struct net_spec *s, char *out, size_t cap)
{
    size_t n = 0;
#define ADD(...) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__)
    if (s->kind == NET_SPEC_TAP)
        ADD("tap=%s", s->tap_name);
    else
        ADD("user");
    if (s->has_mac) {
        char m[18];
        net_mac_text(s->mac, m, sizeof m);
        ADD(",mac=%s", m);
    }
    for (unsigned i = 0; i < s->nhostfwd; i++) {
        const struct net_hostfwd *f = &s->hostfwd[i];
        char h[16], g[16];
        ipv4(h, sizeof h, f->host_addr);
        ipv4(g, sizeof g, f->guest_addr);
        ADD(",hostfwd=%s:%s:%u-%s:%u", f->udp ? "udp" : "tcp", h, f->host_port, g, f->guest_port);
    }
    if (s->no_host_loopback)
        ADD(",host-loopback=off");
#undef ADD
    check(n < cap, "canonical text too long");
}

static void same_spec(const struct net_spec *a, const struct net_spec *b)
{
    check(a->kind == b->kind && strcmp(a->tap_name, b->tap_name) == 0 && a->has_mac == b->has_mac &&
              (!a->has_mac || memcmp(a->mac, b->mac, 6) == 0) && a->nhostfwd == b->nhostfwd &&
              a->no_host_loopback == b->no_host_loopback,
          "round trip changed the spec");
    for (unsigned i = 0; i < a->nhostfwd; i++) {
        const struct net_hostfwd *x = &a->hostfwd[i], *y = &b->hostfwd[i];
        check(x->udp == y->udp && x->host_addr == y->host_addr && x->host_port == y->host_port &&
                  x->guest_addr == y->guest_addr && x->guest_port == y->guest_port,
              "round trip changed a forward");
    }
}

static void check_spec(const struct net_spec *s)
{
    static const uint8_t zero[6];
    check(s->kind == NET_SPEC_USER || s->kind == NET_SPEC_TAP, "bad kind");
    if (s->kind == NET_SPEC_TAP) {
        size_t len = strnlen(s->tap_name, sizeof s->tap_name);
        check(len < sizeof s->tap_name && net_tap_name_ok(s->tap_name, len), "bad tap name");
        check(s->nhostfwd == 0 && !s->no_host_loopback, "user option on a tap");
    } else {
        check(s->tap_name[0] == '\0', "tap name on user networking");
    }
    if (s->has_mac)
        check(!(s->mac[0] & 1) && memcmp(s->mac, zero, 6) != 0, "MAC multicast or zero");
    check(s->nhostfwd <= NET_SPEC_MAX_HOSTFWD, "too many forwards");
    for (unsigned i = 0; i < s->nhostfwd; i++) {
        const struct net_hostfwd *f = &s->hostfwd[i];
        uint32_t g = f->guest_addr;
        check(f->host_port != 0 && f->guest_port != 0, "port 0");
        check((g & NET_USER_NETMASK) == NET_USER_NETWORK, "guest address outside 10.0.2.0/24");
        check(g != NET_USER_NETWORK && g != (NET_USER_NETWORK | ~NET_USER_NETMASK) &&
                  g != NET_USER_GATEWAY && g != NET_USER_DNS,
              "reserved guest address");
        check(memchr(f->text, '\0', sizeof f->text) != NULL, "rule text not terminated");
        for (unsigned j = 0; j < i; j++)
            check(!net_hostfwd_clash(&s->hostfwd[j], f), "two forwards clash");
    }

    char text[2048];
    spec_text(s, text, sizeof text);
    struct net_spec again;
    vmlet_error err;
    check(net_spec_parse(text, &again, &err) == 0, err.message);
    same_spec(s, &again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vmlet_config *c = vmlet_config_new();
    if (!c)
        return 0;
    unsigned nspecs = 0, nbad = 0;
    char first_bad[sizeof c->net_error.message] = "";
    size_t pos = 0;
    while (pos <= size && nspecs < MAX_SPECS) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
        char *text = malloc(len + 1);
        check(text != NULL, "out of memory");
        memcpy(text, data + pos, len);
        text[len] = '\0';

        struct net_spec s;
        vmlet_error err = { .code = VMLET_OK };
        int rc = net_spec_parse(text, &s, &err);
        check(rc == 0 || rc == -1, "bad return value");
        vmlet_error err2 = { .code = VMLET_OK };
        check(vmlet_check_net(text, &err2) == rc, "vmlet_check_net disagrees");
        if (rc < 0) {
            check_error(&err);
            check(strcmp(err.message, err2.message) == 0, "two messages for one spec");
            if (nbad++ == 0 && nspecs < VMLET_MAX_NICS)
                snprintf(first_bad, sizeof first_bad, "%s", err.message);
        } else {
            check_spec(&s);
        }
        check(vmlet_config_add_net(c, text) == 0, "add_net failed");
        free(text);
        nspecs++;
        pos += len + 1;
    }

    /* What vmlet_config_validate() reports about the NICs (check_nets). */
    check(c->too_many_nets == (nspecs > VMLET_MAX_NICS), "NIC limit");
    check(c->nnets == (nspecs < VMLET_MAX_NICS ? nspecs : VMLET_MAX_NICS), "NIC count");
    check(c->bad_net == (first_bad[0] != '\0'), "bad spec not flagged");
    if (c->bad_net) {
        check(strcmp(c->net_error.message, first_bad) == 0, "not the first bad spec's message");
    } else {
        vmlet_error err = { .code = VMLET_OK };
        if (net_specs_check(c->nets, c->nnets, &err) < 0)
            check_error(&err);
    }
    vmlet_config_free(c);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
