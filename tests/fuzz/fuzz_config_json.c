/* libFuzzer target for vm.json (vmlet_config_from_json(), src/config_json.c):
 * any bytes as a config file. Build with clang -fsanitize=fuzzer,address,undefined (see
 * docs/fuzzing.md), or with -DVMLET_FUZZ_STANDALONE and any compiler to
 * replay files.
 *
 * Besides memory errors it checks what the rest of vmlet relies on:
 *   - our syntax check and cJSON agree: anything the check accepts, cJSON
 *     parses to the end (VMLET_ERR_INTERNAL means they disagreed);
 *   - an error is one line of valid UTF-8 without control characters, and
 *     leaves the config exactly as it was;
 *   - a success leaves values the setters could have been given: cpus in
 *     range, at most VMLET_MAX_DISKS disks with non-empty paths, valid
 *     UTF-8 strings, networks within their limits that net_specs_check()
 *     accepts (but for a given MAC equal to another NIC's default, which
 *     only validate sees). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TARGET "fuzz_config_json"
#include "fuzz_util.h"
#include "config.h"

static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, n = c < 0x80                ? 0
                             : c >= 0xc2 && c < 0xe0 ? 1
                             : c >= 0xe0 && c < 0xf0 ? 2
                             : c >= 0xf0 && c < 0xf5 ? 3
                                                     : 9;
        if (n == 9)
            return false;
        uint32_t cp = n ? c & (0x3f >> n) : c;
        for (unsigned k = 1; k <= n; k++) {
            if ((p[k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[k] & 0x3f);
        }
        static const uint32_t min[] = { 0, 0x80, 0x800, 0x10000 };
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vmlet_config *c = vmlet_config_new();
    vmlet_error err = { .code = VMLET_OK };
    if (!c)
        return 0;

    int rc = vmlet_config_from_json(c, (const char *)data, size, &err);
    if (rc < 0) {
        check(err.code != VMLET_ERR_INTERNAL, err.message);
        check(err.code == VMLET_ERR_FILE || err.code == VMLET_ERR_INVALID ||
                  err.code == VMLET_ERR_NOMEM,
              "unexpected error code");
        check(err.message[0] != '\0', "empty error message");
        check(valid_utf8(err.message), "error message is not UTF-8");
        for (const char *m = err.message; *m; m++)
            check((unsigned char)*m >= 0x20 && *m != 0x7f, "control byte in message");
        check(c->cpus == VMLET_DEFAULT_CPUS && c->memory == VMLET_DEFAULT_MEMORY && !c->kernel &&
                  !c->initrd && !c->cmdline && !c->kvm_device && c->ndisks == 0 && !c->entropy &&
                  c->console == VMLET_CONSOLE_SERIAL &&
                  c->shutdown_timeout == VMLET_DEFAULT_SHUTDOWN_TIMEOUT && c->nnets == 0,
              "failed load changed the config");
    } else {
        check(rc == 0, "unexpected return value");
        check(c->cpus >= 1 && c->cpus <= VMLET_MAX_CPUS, "cpus out of range");
        check(c->ndisks <= VMLET_MAX_DISKS && !c->too_many_disks, "too many disks");
        for (unsigned i = 0; i < c->ndisks; i++) {
            check(c->disks[i].path[0] && valid_utf8(c->disks[i].path), "bad disk path");
            check(!c->disks[i].serial || valid_utf8(c->disks[i].serial), "bad serial");
        }
        check(!c->kernel || (c->kernel[0] && valid_utf8(c->kernel)), "bad kernel");
        check(!c->initrd || (c->initrd[0] && valid_utf8(c->initrd)), "bad initrd");
        check(!c->cmdline || valid_utf8(c->cmdline), "bad cmdline");
        check(!c->kvm_device || (c->kvm_device[0] && valid_utf8(c->kvm_device)), "bad kvm_device");
        check(c->console == VMLET_CONSOLE_SERIAL || c->console == VMLET_CONSOLE_VIRTIO,
              "bad console");
        check(c->shutdown_timeout <= VMLET_MAX_SHUTDOWN_TIMEOUT, "bad timeout");
        check(c->nnets <= VMLET_MAX_NICS && !c->too_many_nets && !c->bad_net, "too many networks");
        for (unsigned i = 0; i < c->nnets; i++) {
            const struct net_spec *n = &c->nets[i];
            if (n->kind == NET_SPEC_TAP) {
                check(n->tap_name[0] && strlen(n->tap_name) <= NET_TAP_NAME_MAX, "bad name");
                check(n->nhostfwd == 0, "hostfwd on a tap");
            }
            check(!n->has_mac || !(n->mac[0] & 1), "multicast MAC");
            if (n->kind == NET_SPEC_TAP)
                continue;
            check(n->kind == NET_SPEC_USER, "bad type");
            check(n->nhostfwd <= NET_SPEC_MAX_HOSTFWD, "too many hostfwd");
            for (unsigned k = 0; k < n->nhostfwd; k++)
                check(n->hostfwd[k].host_port && n->hostfwd[k].guest_port &&
                          (n->hostfwd[k].guest_addr & 0xffffff00u) == 0x0a000200u &&
                          strlen(n->hostfwd[k].text) < sizeof n->hostfwd[k].text,
                      "bad hostfwd");
        }
        /* What the JSON reader accepted, the --net rules accept together. */
        vmlet_error verr;
        check(net_specs_check(c->nets, c->nnets, &verr) == 0 ||
                  strstr(verr.message, "both have MAC") != NULL,
              verr.message);
    }
    vmlet_config_free(c);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
