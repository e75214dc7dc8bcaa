/* vm.json: the configuration as a JSON file (docs/config.md), through
 * vmlet_config_from_json() and vmlet_config_load_json() (include/vmlet.h).
 *
 * Three passes:
 *   1. check_syntax(): our own strict RFC 8259 scan of the raw text. cJSON
 *      is lenient where a config file must not be (leading zeros, raw
 *      control characters and NUL bytes, "\u00zz" read as NUL, NUL bytes
 *      taken as whitespace, no UTF-8 check, 1000 levels of recursion), and
 *      reports errors only as a pointer. The scan is iterative, limits depth
 *      and the number of values, and gives every error a line and column.
 *   2. cJSON builds the tree from text the scan accepted; then read_doc()
 *      checks every key, type and value against the schema into a struct
 *      parsed_doc, naming the key path in errors. "network" entries become
 *      struct net_spec through src/netspec.c's pieces, as --net values do.
 *   3. apply() calls the setters. Nothing is applied before all is checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "config.h"
#include "error.h"
#include "json_strict.h"
#include "netspec.h"

#define PATH_MAX_BYTES 4095

/* ---- pass 2: schema ------------------------------------------------------ */

struct parsed_disk {
    const char *path, *serial;
    bool read_only;
};

struct parsed_share {
    const char *path, *tag;
    bool read_only, cache_always;
};

/* What the document sets; strings point into the cJSON tree. */
struct parsed_doc {
    bool has_cpus, has_memory, has_console, has_rng;
    unsigned cpus;
    uint64_t memory;
    vmlet_console_kind console;
    bool rng;
    const char *kernel, *initrd, *cmdline, *kvm_device; /* NULL: not set */
    struct parsed_disk disks[VMLET_MAX_DISKS];
    unsigned ndisks;
    struct net_spec nets[VMLET_MAX_NICS];
    unsigned nnets;
    bool has_shutdown_timeout;
    unsigned shutdown_timeout;
    bool has_seccomp;
    vmlet_seccomp_mode seccomp;
    uint64_t vsock_cid;
    const char *vsock_uds; /* NULL: no "vsock" */
    bool has_balloon;
    unsigned balloon_flags, balloon_stats_s;
    struct parsed_share shares[VMLET_MAX_SHARES];
    unsigned nshares;
};


static int read_memory(const cJSON *v, struct json_keypath *p, uint64_t *out, vmlet_error *err)
{
    char q[64];
    if (cJSON_IsString(v)) {
        if (vmlet_parse_size(v->valuestring, out) < 0)
            return json_key_error(err, p,
                                  "%s is not a size; give bytes or a number with K, "
                                  "M, G or T, e.g. \"512M\"",
                                  json_quote(q, sizeof q, v->valuestring, 40));
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return json_key_error(err, p,
                              "expected a size (a string such as \"512M\" or a whole "
                              "number of bytes), got %s",
                              json_type_name(v));
    if (v->valuedouble < 0)
        return json_key_error(err, p,
                              "a size cannot be negative; give bytes or a string such "
                              "as \"512M\"");
    if (json_get_uint(v, p, 0, (uint64_t)JSON_MAX_EXACT, out, err) < 0)
        return -1;
    /* "memory": 512 most likely meant MiB; validate would only say 0 MiB. */
    if (*out && *out < VMLET_MIN_MEMORY)
        return json_key_error(err, p,
                              "%llu byte%s is less than the 16 MiB minimum; a number "
                              "means bytes: write \"%lluM\" for MiB",
                              (unsigned long long)*out, *out == 1 ? "" : "s",
                              (unsigned long long)*out);
    return 0;
}

static int read_console(const cJSON *v, struct json_keypath *p, vmlet_console_kind *out,
                        vmlet_error *err)
{
    char q[64];
    if (!cJSON_IsString(v))
        return json_key_error(err, p, "expected a string (\"serial\" or \"virtio\"), got %s",
                              json_type_name(v));
    if (!strcmp(v->valuestring, "serial"))
        *out = VMLET_CONSOLE_SERIAL;
    else if (!strcmp(v->valuestring, "virtio"))
        *out = VMLET_CONSOLE_VIRTIO;
    else
        return json_key_error(err, p, "%s is not a console; give \"serial\" or \"virtio\"",
                              json_quote(q, sizeof q, v->valuestring, 40));
    return 0;
}

static int read_seccomp(const cJSON *v, struct json_keypath *p, vmlet_seccomp_mode *out,
                        vmlet_error *err)
{
    char q[64];
    if (!cJSON_IsString(v))
        return json_key_error(err, p, "expected a string (\"on\", \"off\" or \"log\"), got %s",
                              json_type_name(v));
    if (!strcmp(v->valuestring, "on"))
        *out = VMLET_SECCOMP_ON;
    else if (!strcmp(v->valuestring, "off"))
        *out = VMLET_SECCOMP_OFF;
    else if (!strcmp(v->valuestring, "log"))
        *out = VMLET_SECCOMP_LOG;
    else
        return json_key_error(err, p, "%s is not a sandbox mode; give \"on\", \"off\" or \"log\"",
                              json_quote(q, sizeof q, v->valuestring, 40));
    return 0;
}

static int read_disk(const cJSON *v, struct json_keypath *p, struct parsed_disk *d,
                     vmlet_error *err)
{
    static const char *const names[] = { "path", "read_only", "serial" };
    const cJSON *f[3];
    size_t old;
    if (!cJSON_IsObject(v))
        return json_key_error(err, p,
                              "expected an object such as {\"path\": \"root.img\"}, "
                              "got %s",
                              json_type_name(v));
    if (json_match_keys(v, names, 3, f, p, err) < 0)
        return -1;
    if (!f[0])
        return json_key_error(err, p, "no \"path\"; give the disk image or block device");
    memset(d, 0, sizeof *d);
    old = json_path_key(p, "path");
    if (json_get_string(f[0], p, true, PATH_MAX_BYTES, "an image file or block device", &d->path,
                        err) < 0)
        return -1;
    json_path_pop(p, old);
    if (f[1]) {
        old = json_path_key(p, "read_only");
        if (json_get_bool(f[1], p, &d->read_only, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (f[2]) {
        /* Its characters and length are vmlet_config_validate()'s to check. */
        old = json_path_key(p, "serial");
        if (json_get_string(f[2], p, false, SIZE_MAX, "up to 20 characters", &d->serial, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    return 0;
}

static int read_disk_at(const cJSON *v, struct json_keypath *p, void *items, unsigned i,
                        vmlet_error *err)
{
    return read_disk(v, p, &((struct parsed_disk *)items)[i], err);
}

/* {"path": "/home/me/project", "tag": "project", "read_only": false,
 * "cache": "auto"}; the tag's length and the directory are
 * vmlet_config_validate()'s to check. */
static int read_share_at(const cJSON *v, struct json_keypath *p, void *items, unsigned i,
                         vmlet_error *err)
{
    static const char *const names[] = { "path", "tag", "read_only", "cache" };
    struct parsed_share *sh = &((struct parsed_share *)items)[i];
    const cJSON *f[4];
    size_t old;
    if (!cJSON_IsObject(v))
        return json_key_error(
            err, p,
            "expected an object such as {\"path\": \"/home/me/project\", \"tag\": "
            "\"project\"}, got %s",
            json_type_name(v));
    if (json_match_keys(v, names, 4, f, p, err) < 0)
        return -1;
    if (!f[0])
        return json_key_error(err, p, "no \"path\"; give the host directory to share");
    if (!f[1])
        return json_key_error(err, p, "no \"tag\"; give the name the guest mounts the share by");
    memset(sh, 0, sizeof *sh);
    old = json_path_key(p, "path");
    if (json_get_string(f[0], p, true, PATH_MAX_BYTES, "a directory", &sh->path, err) < 0)
        return -1;
    json_path_pop(p, old);
    old = json_path_key(p, "tag");
    if (json_get_string(f[1], p, true, SIZE_MAX, "up to 36 bytes", &sh->tag, err) < 0)
        return -1;
    json_path_pop(p, old);
    if (f[2]) {
        old = json_path_key(p, "read_only");
        if (json_get_bool(f[2], p, &sh->read_only, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (f[3]) {
        old = json_path_key(p, "cache");
        const char *cache = "";
        if (json_get_string(f[3], p, true, SIZE_MAX, "\"auto\" or \"always\"", &cache, err) < 0)
            return -1;
        if (strcmp(cache, "auto") && strcmp(cache, "always"))
            return json_key_error(
                err, p, "expected \"auto\" (1 s) or \"always\" (a day), got \"%s\"", cache);
        sh->cache_always = !strcmp(cache, "always");
        json_path_pop(p, old);
    }
    return 0;
}

/* An array of at most max objects, each read by read_at into items[i];
 * example shows one, for the message. */
static int read_array(const cJSON *v, struct json_keypath *p, unsigned max, const char *what,
                      const char *example,
                      int (*read_at)(const cJSON *, struct json_keypath *, void *, unsigned,
                                     vmlet_error *),
                      void *items, unsigned *count, vmlet_error *err)
{
    if (!cJSON_IsArray(v))
        return json_key_error(err, p, "expected an array of objects such as [%s], got %s", example,
                              json_type_name(v));
    unsigned n = cJSON_GetArraySize(v), i = 0;
    if (n > max)
        return json_key_error(err, p, "%u %s; at most %u are allowed", n, what, max);
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        size_t old = json_path_index(p, i);
        if (read_at(e, p, items, i, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    *count = n;
    return 0;
}

/* "vsock": {"guest_cid": 3, "uds_path": "/run/vm1/vsock.sock"}, Firecracker's
 * names. The path's length is vmlet_config_validate()'s to check. */
static int read_vsock(const cJSON *v, struct json_keypath *p, struct parsed_doc *d,
                      vmlet_error *err)
{
    static const char *const names[] = { "guest_cid", "uds_path" };
    const cJSON *f[2];
    if (!cJSON_IsObject(v))
        return json_key_error(err, p,
                              "expected an object such as {\"guest_cid\": 3, \"uds_path\": "
                              "\"/run/vm1/vsock.sock\"}, got %s",
                              json_type_name(v));
    if (json_match_keys(v, names, 2, f, p, err) < 0)
        return -1;
    if (!f[0])
        return json_key_error(err, p, "no \"guest_cid\"; give the guest's address, 3 or more");
    if (!f[1])
        return json_key_error(err, p, "no \"uds_path\"; give the host's Unix socket path");
    size_t old = json_path_key(p, "guest_cid");
    if (json_get_uint(f[0], p, VMLET_VSOCK_MIN_CID, VMLET_VSOCK_MAX_CID, &d->vsock_cid, err) < 0)
        return -1;
    json_path_pop(p, old);
    old = json_path_key(p, "uds_path");
    if (json_get_string(f[1], p, true, PATH_MAX_BYTES, "the path of the Unix socket to create",
                        &d->vsock_uds, err) < 0)
        return -1;
    json_path_pop(p, old);
    return 0;
}

/* "balloon": {"deflate_on_oom": true, "free_page_reporting": true,
 * "stats_polling_interval_s": 5}, Firecracker's names (free page reporting
 * its newer one); every key may be left out, {} is a balloon with none. */
static int read_balloon(const cJSON *v, struct json_keypath *p, struct parsed_doc *d,
                        vmlet_error *err)
{
    static const char *const names[] = { "deflate_on_oom", "free_page_reporting",
                                         "stats_polling_interval_s" };
    static const unsigned flag[] = { VMLET_BALLOON_DEFLATE_ON_OOM,
                                     VMLET_BALLOON_FREE_PAGE_REPORTING };
    const cJSON *f[3];
    if (!cJSON_IsObject(v))
        return json_key_error(err, p,
                              "expected an object such as {\"free_page_reporting\": true, "
                              "\"stats_polling_interval_s\": 5}, got %s",
                              json_type_name(v));
    if (json_match_keys(v, names, 3, f, p, err) < 0)
        return -1;
    d->balloon_flags = 0;
    d->balloon_stats_s = 0;
    for (unsigned k = 0; k < 2; k++) {
        bool on = false;
        size_t old = json_path_key(p, names[k]);
        if (f[k] && json_get_bool(f[k], p, &on, err) < 0)
            return -1;
        json_path_pop(p, old);
        if (on)
            d->balloon_flags |= flag[k];
    }
    if (f[2]) {
        uint64_t u;
        size_t old = json_path_key(p, names[2]);
        if (json_get_uint(f[2], p, 0, VMLET_BALLOON_MAX_STATS_INTERVAL, &u, err) < 0)
            return -1;
        json_path_pop(p, old);
        d->balloon_stats_s = (unsigned)u;
    }
    d->has_balloon = true;
    return 0;
}

/* ---- network: parsed by src/netspec.c, as --net is ---------------------------- */

static int read_mac(const cJSON *v, struct json_keypath *p, struct net_spec *net, vmlet_error *err)
{
    char q[64];
    if (!cJSON_IsString(v))
        return json_key_error(err, p, "expected a string such as \"52:54:00:12:34:56\", got %s",
                              json_type_name(v));
    switch (net_parse_mac(v->valuestring, strlen(v->valuestring), net->mac)) {
    case NET_MAC_OK: break;
    case NET_MAC_SYNTAX:
        return json_key_error(err, p,
                              "%s is not a MAC address; write six hex pairs such as "
                              "\"52:54:00:12:34:56\"",
                              json_quote(q, sizeof q, v->valuestring, 40));
    case NET_MAC_MULTICAST:
        return json_key_error(err, p,
                              "%s is a multicast address; a NIC needs a unicast one "
                              "(even first byte), e.g. \"52:54:00:12:34:56\"",
                              v->valuestring);
    case NET_MAC_ZERO: return json_key_error(err, p, "00:00:00:00:00:00 is not a usable address");
    }
    net->has_mac = true;
    return 0;
}

/* What is wrong with a rule, in this file's words ("the host port ..."). */
static const char *hostfwd_why(enum net_fwd_error e, const struct net_hostfwd *f, char *buf,
                               size_t size)
{
    switch (e) {
    case NET_FWD_OK: return NULL;
    case NET_FWD_TOO_LONG: return "it is too long to be a forwarding rule";
    case NET_FWD_NO_COLON: return "it has no ':'";
    case NET_FWD_PROTOCOL: return "the protocol is not tcp or udp";
    case NET_FWD_NO_DASH: return "it has no '-' between the host and the guest side";
    case NET_FWD_TWO_DASHES: return "it has more than one '-'";
    case NET_FWD_HOST_SIDE: return "the host side has no ':PORT'";
    case NET_FWD_HOST_ADDR: return "the host address is not an IPv4 address such as 127.0.0.1";
    case NET_FWD_HOST_PORT: return "the host port is not a number from 1 to 65535";
    case NET_FWD_GUEST_SIDE: return "the guest side has no ':PORT'";
    case NET_FWD_GUEST_ADDR: return "the guest address is not an IPv4 address such as 10.0.2.15";
    case NET_FWD_GUEST_NETWORK: return "the guest address is not in the guest network 10.0.2.0/24";
    case NET_FWD_GUEST_RESERVED:
        snprintf(buf, size, "the guest address is %s, not a guest",
                 net_guest_addr_role(f->guest_addr));
        return buf;
    case NET_FWD_GUEST_PORT: return "the guest port is not a number from 1 to 65535";
    }
    return "it is not a forwarding rule";
}

static int read_hostfwds(const cJSON *v, struct json_keypath *p, struct net_spec *net,
                         vmlet_error *err)
{
    char q[80], part[NET_HOSTFWD_TEXT_MAX], why[96];
    if (!cJSON_IsArray(v))
        return json_key_error(err, p,
                              "expected an array of strings such as "
                              "[\"tcp:127.0.0.1:8080-:80\"], got %s",
                              json_type_name(v));
    unsigned n = cJSON_GetArraySize(v), i = 0;
    if (n > NET_SPEC_MAX_HOSTFWD)
        return json_key_error(err, p, "%u rules; at most %d are allowed", n, NET_SPEC_MAX_HOSTFWD);
    for (const cJSON *r = v->child; r; r = r->next, i++) {
        size_t old = json_path_index(p, i);
        if (!cJSON_IsString(r))
            return json_key_error(err, p,
                                  "expected a string such as \"tcp:127.0.0.1:8080-:80\", "
                                  "got %s",
                                  json_type_name(r));
        enum net_fwd_error e = net_parse_hostfwd(r->valuestring, strlen(r->valuestring),
                                                 &net->hostfwd[i], part);
        if (e != NET_FWD_OK)
            return json_key_error(err, p,
                                  "%s: %s; the form is "
                                  "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT",
                                  json_quote(q, sizeof q, r->valuestring, 64),
                                  hostfwd_why(e, &net->hostfwd[i], why, sizeof why));
        json_path_pop(p, old);
    }
    net->nhostfwd = n;
    return 0;
}

static int read_net(const cJSON *v, struct json_keypath *p, struct net_spec *net, vmlet_error *err)
{
    /* All keys first, so a misspelt "type" is reported as such. */
    static const char *const all[] = { "type", "hostfwd",       "name",
                                       "mac",  "host_loopback", "max_flows" };
    enum { TYPE, HOSTFWD, NAME, MAC, LOOPBACK, MAX_FLOWS, NKEYS };
    const cJSON *f[NKEYS];
    char q[64];
    size_t old;
    if (!cJSON_IsObject(v))
        return json_key_error(err, p, "expected an object such as {\"type\": \"user\"}, got %s",
                              json_type_name(v));
    if (json_match_keys(v, all, NKEYS, f, p, err) < 0)
        return -1;
    memset(net, 0, sizeof *net);
    if (!f[TYPE])
        return json_key_error(err, p, "no \"type\"; give \"type\": \"user\" or \"tap\"");
    old = json_path_key(p, "type");
    if (!cJSON_IsString(f[TYPE]))
        return json_key_error(err, p, "expected a string (\"user\" or \"tap\"), got %s",
                              json_type_name(f[TYPE]));
    if (!strcmp(f[TYPE]->valuestring, "user"))
        net->kind = NET_SPEC_USER;
    else if (!strcmp(f[TYPE]->valuestring, "tap"))
        net->kind = NET_SPEC_TAP;
    else
        return json_key_error(err, p, "%s is not a network type; give \"user\" or \"tap\"",
                              json_quote(q, sizeof q, f[TYPE]->valuestring, 40));
    json_path_pop(p, old);

    bool user = net->kind == NET_SPEC_USER;
    if ((user && f[NAME]) || (!user && (f[HOSTFWD] || f[LOOPBACK] || f[MAX_FLOWS]))) {
        json_path_key(p, user          ? "name"
                         : f[HOSTFWD]  ? "hostfwd"
                         : f[LOOPBACK] ? "host_loopback"
                                       : "max_flows");
        return json_key_error(
            err, p, "not a key of a %s network; its keys are %s", user ? "user" : "tap",
            user ? "type, hostfwd, mac, host_loopback, max_flows" : "type, name, mac");
    }
    /* In file order, as everywhere. */
    for (const cJSON *m = v->child; m; m = m->next) {
        int rc = 0;
        old = json_path_key(p, m->string);
        if (m == f[HOSTFWD]) {
            rc = read_hostfwds(m, p, net, err);
        } else if (m == f[NAME]) {
            const char *name = ""; /* set by json_get_string() when it returns 0 */
            rc = json_get_string(m, p, true, NET_TAP_NAME_MAX,
                                 "a host interface name such "
                                 "as \"tap0\"",
                                 &name, err);
            if (rc == 0 && !net_tap_name_ok(name, strlen(name)))
                rc = json_key_error(err, p,
                                    "%s is not an interface name; use printable "
                                    "characters other than spaces, '/', ':', ',' and '='",
                                    json_quote(q, sizeof q, name, 40));
            if (rc == 0)
                strcpy(net->tap_name, name);
        } else if (m == f[MAC]) {
            rc = read_mac(m, p, net, err);
        } else if (m == f[LOOPBACK]) {
            bool on = true;
            rc = json_get_bool(m, p, &on, err);
            net->no_host_loopback = !on; /* as --net's host-loopback=off */
        } else if (m == f[MAX_FLOWS]) {
            uint64_t n = 0; /* netspec.h's range, as --net's max-flows=N */
            rc = json_get_uint(m, p, NET_MAX_FLOWS_MIN, NET_MAX_FLOWS_MAX, &n, err);
            net->max_flows = (unsigned)n;
        }
        if (rc < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (!user && !f[NAME])
        return json_key_error(err, p,
                              "no \"name\"; a tap network needs the host interface, "
                              "e.g. \"name\": \"tap0\"");
    return 0;
}

/* What only shows across entries: one tap twice, one MAC twice, one host
 * port forwarded twice, named by key path. Validate checks again over all
 * NICs, the file's and those added otherwise. */
static int check_nets(const struct net_spec *nets, unsigned i, struct json_keypath *p,
                      vmlet_error *err)
{
    const struct net_spec *net = &nets[i];
    for (unsigned j = 0; j <= i; j++) {
        const struct net_spec *o = &nets[j];
        if (j < i && net->kind == NET_SPEC_TAP && o->kind == NET_SPEC_TAP &&
            !strcmp(o->tap_name, net->tap_name)) {
            json_path_key(p, "name");
            return json_key_error(err, p, "%s is also network[%u]'s interface", net->tap_name, j);
        }
        if (j < i && net->has_mac && o->has_mac && !memcmp(o->mac, net->mac, 6)) {
            json_path_key(p, "mac");
            return json_key_error(err, p, "network[%u] has this MAC address too", j);
        }
        for (unsigned a = 0; a < net->nhostfwd; a++) {
            unsigned bmax = j < i ? o->nhostfwd : a;
            for (unsigned b = 0; b < bmax; b++) {
                if (net_hostfwd_clash(&net->hostfwd[a], &o->hostfwd[b])) {
                    json_path_key(p, "hostfwd");
                    json_path_index(p, a);
                    return json_key_error(err, p,
                                          "%s port %u is already forwarded by "
                                          "network[%u].hostfwd[%u]",
                                          net->hostfwd[a].udp ? "udp" : "tcp",
                                          net->hostfwd[a].host_port, j, b);
                }
            }
        }
    }
    return 0;
}

static int read_network(const cJSON *v, struct json_keypath *p, struct parsed_doc *d,
                        vmlet_error *err)
{
    if (!cJSON_IsArray(v))
        return json_key_error(err, p,
                              "expected an array of objects such as "
                              "[{\"type\": \"user\"}], got %s",
                              json_type_name(v));
    unsigned n = cJSON_GetArraySize(v), i = 0;
    if (n > VMLET_MAX_NICS)
        return json_key_error(err, p, "%u interfaces; at most %d are allowed", n, VMLET_MAX_NICS);
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        size_t old = json_path_index(p, i);
        if (read_net(e, p, &d->nets[i], err) < 0 || check_nets(d->nets, i, p, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    d->nnets = n;
    return 0;
}

enum {
    K_CPUS,
    K_MEMORY,
    K_KERNEL,
    K_INITRD,
    K_CMDLINE,
    K_CONSOLE,
    K_RNG,
    K_DISKS,
    K_NETWORK,
    K_SHUTDOWN_TIMEOUT,
    K_KVM_DEVICE,
    K_SECCOMP,
    K_VSOCK,
    K_SHARES,
    K_BALLOON,
    K_COUNT
};

static int read_doc(const cJSON *root, struct parsed_doc *d, vmlet_error *err)
{
    static const char *const names[K_COUNT] = {
        [K_CPUS] = "cpus",
        [K_MEMORY] = "memory",
        [K_KERNEL] = "kernel",
        [K_INITRD] = "initrd",
        [K_CMDLINE] = "cmdline",
        [K_CONSOLE] = "console",
        [K_RNG] = "rng",
        [K_DISKS] = "disks",
        [K_NETWORK] = "network",
        [K_SHUTDOWN_TIMEOUT] = "shutdown_timeout",
        [K_KVM_DEVICE] = "kvm_device",
        [K_SECCOMP] = "seccomp",
        [K_VSOCK] = "vsock",
        [K_SHARES] = "shares",
        [K_BALLOON] = "balloon",
    };
    const cJSON *f[K_COUNT];
    struct json_keypath p = { .s = "", .len = 0 };
    uint64_t u = 0;
    int rc = 0;

    if (!cJSON_IsObject(root))
        return set_error(err, VMLET_ERR_INVALID,
                         "the top level is %s; it must be an "
                         "object such as {\"kernel\": \"bzImage\", \"memory\": \"512M\"}",
                         json_type_name(root));
    if (json_match_keys(root, names, K_COUNT, f, &p, err) < 0)
        return -1;
    /* In file order, so the first problem in the file is the one reported. */
    for (const cJSON *v = root->child; v && rc == 0; v = v->next) {
        int k = 0;
        while (f[k] != v)
            k++;
        json_path_key(&p, names[k]);
        switch (k) {
        case K_CPUS:
            rc = json_get_uint(v, &p, 1, VMLET_MAX_CPUS, &u, err);
            d->cpus = u;
            d->has_cpus = true;
            break;
        case K_MEMORY:
            rc = read_memory(v, &p, &d->memory, err);
            d->has_memory = true;
            break;
        case K_KERNEL:
            rc = json_get_string(v, &p, true, PATH_MAX_BYTES, "the path of an x86-64 bzImage",
                                 &d->kernel, err);
            break;
        case K_INITRD:
            rc = json_get_string(v, &p, true, PATH_MAX_BYTES,
                                 "the path of an initial ramdisk, "
                                 "or leave the key out",
                                 &d->initrd, err);
            break;
        case K_CMDLINE:
            /* Its length limit depends on the kernel; validate checks it. */
            rc = json_get_string(v, &p, false, SIZE_MAX, "the kernel command line", &d->cmdline,
                                 err);
            break;
        case K_CONSOLE:
            rc = read_console(v, &p, &d->console, err);
            d->has_console = true;
            break;
        case K_RNG:
            rc = json_get_bool(v, &p, &d->rng, err);
            d->has_rng = true;
            break;
        case K_DISKS:
            rc = read_array(v, &p, VMLET_MAX_DISKS, "disks", "{\"path\": \"root.img\"}",
                            read_disk_at, d->disks, &d->ndisks, err);
            break;
        case K_SHARES:
            rc = read_array(v, &p, VMLET_MAX_SHARES, "shares",
                            "{\"path\": \"/home/me/project\", \"tag\": \"project\"}", read_share_at,
                            d->shares, &d->nshares, err);
            break;
        case K_NETWORK: rc = read_network(v, &p, d, err); break;
        case K_SHUTDOWN_TIMEOUT:
            rc = json_get_uint(v, &p, 0, VMLET_MAX_SHUTDOWN_TIMEOUT, &u, err);
            d->shutdown_timeout = u;
            d->has_shutdown_timeout = true;
            break;
        case K_KVM_DEVICE:
            rc = json_get_string(v, &p, true, PATH_MAX_BYTES, "the path of the KVM device",
                                 &d->kvm_device, err);
            break;
        case K_SECCOMP:
            rc = read_seccomp(v, &p, &d->seccomp, err);
            d->has_seccomp = true;
            break;
        case K_VSOCK: rc = read_vsock(v, &p, d, err); break;
        case K_BALLOON: rc = read_balloon(v, &p, d, err); break;
        }
        if (rc == 0)
            json_path_pop(&p, 0);
    }
    return rc;
}

/* ---- pass 3: apply --------------------------------------------------------- */

static int apply(vmlet_config *c, const struct parsed_doc *d, vmlet_error *err)
{
    int rc = 0;
    if (d->has_cpus)
        rc |= vmlet_config_set_cpus(c, d->cpus);
    if (d->has_memory)
        rc |= vmlet_config_set_memory(c, d->memory);
    /* The setter copies before it frees, so passing c's own strings back is
     * safe. */
    if (d->kernel || d->initrd || d->cmdline)
        rc |= vmlet_config_set_linux_boot(c, d->kernel ? d->kernel : c->kernel,
                                          d->initrd ? d->initrd : c->initrd,
                                          d->cmdline ? d->cmdline : c->cmdline);
    if (d->has_console)
        rc |= vmlet_config_set_console(c, d->console, c->console_in, c->console_out);
    if (d->has_rng)
        rc |= vmlet_config_set_entropy(c, d->rng);
    for (unsigned i = 0; i < d->ndisks; i++)
        rc |= vmlet_config_add_disk(c, d->disks[i].path,
                                    d->disks[i].read_only ? VMLET_DISK_READONLY : 0,
                                    d->disks[i].serial);
    for (unsigned i = 0; i < d->nnets; i++)
        config_add_net_spec(c, &d->nets[i]);
    if (d->kvm_device)
        rc |= vmlet_config_set_kvm_device(c, d->kvm_device);
    if (d->has_shutdown_timeout)
        rc |= vmlet_config_set_shutdown_timeout(c, d->shutdown_timeout);
    if (d->has_seccomp)
        rc |= vmlet_config_set_seccomp(c, d->seccomp);
    if (d->vsock_uds)
        rc |= vmlet_config_set_vsock(c, d->vsock_cid, d->vsock_uds);
    if (d->has_balloon)
        rc |= vmlet_config_set_balloon(c, 1, d->balloon_flags, d->balloon_stats_s);
    for (unsigned i = 0; i < d->nshares; i++)
        rc |= vmlet_config_add_share(
            c, d->shares[i].path, d->shares[i].tag,
            (d->shares[i].read_only ? VMLET_SHARE_READONLY : 0) |
                (d->shares[i].cache_always ? VMLET_SHARE_CACHE_ALWAYS : 0));
    if (rc)
        return set_error(err, VMLET_ERR_NOMEM,
                         "out of memory while applying the "
                         "configuration");
    return 0;
}

VMLET_API int vmlet_config_from_json(vmlet_config *c, const char *text, size_t len,
                                     vmlet_error *err)
{
    static const struct json_doc vm_json = { "a vm.json", 4, "{\"kernel\": \"bzImage\"}" };
    cJSON *root;
    if (json_strict_parse(text, len, &vm_json, &root, err) < 0)
        return -1;

    struct parsed_doc *d = calloc(1, sizeof *d); /* ~11 KiB: keep it off the stack */
    if (!d) {
        cJSON_Delete(root);
        return set_error(err, VMLET_ERR_NOMEM, "out of memory reading the configuration");
    }
    int rc = read_doc(root, d, err);
    /* Networks are appended, like the disks; refused here rather than by
     * validate so that nothing is applied. */
    if (rc == 0 && c->nnets + d->nnets > VMLET_MAX_NICS)
        rc = set_error(err, VMLET_ERR_INVALID, "network: more than %d interfaces in all",
                       VMLET_MAX_NICS);
    if (rc == 0)
        rc = apply(c, d, err);
    free(d);
    cJSON_Delete(root);
    return rc;
}

/* Prefixes err's message with the file name. */
static int in_file(vmlet_error *err, const char *path)
{
    if (err) {
        char msg[sizeof err->message];
        memcpy(msg, err->message, sizeof msg);
        msg[sizeof msg - 1] = '\0';
        /* A long path is cut so the message itself still fits. */
        int n = snprintf(err->message, sizeof err->message, "%.200s: ", path);
        snprintf(err->message + n, sizeof err->message - n, "%s", msg);
    }
    return -1;
}

VMLET_API int vmlet_config_load_json(vmlet_config *c, const char *path, vmlet_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return set_error(err, VMLET_ERR_FILE, "%s: %s; check the path of the config file", path,
                         strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return set_error(err, VMLET_ERR_FILE,
                         "%s is a directory; the config must be a JSON "
                         "file",
                         path);
    }
    /* Read at most one byte past the cap: enough to know it is too big,
     * whatever the file (a pipe has no size to ask for). */
    size_t cap = VMLET_CONFIG_JSON_MAX + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return set_error(err, VMLET_ERR_NOMEM, "%s: out of memory", path);
    }
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return set_error(err, VMLET_ERR_FILE, "%s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        len += n;
    }
    close(fd);
    int rc;
    if (len > VMLET_CONFIG_JSON_MAX)
        rc = set_error(err, VMLET_ERR_FILE,
                       "%s: larger than %u MiB; a vm.json is a few "
                       "hundred bytes",
                       path, VMLET_CONFIG_JSON_MAX >> 20);
    else if (len == 0)
        rc = set_error(err, VMLET_ERR_FILE,
                       "%s: the file is empty; it needs a JSON "
                       "object such as {\"kernel\": \"bzImage\"}",
                       path);
    else if ((rc = vmlet_config_from_json(c, buf, len, err)) < 0)
        in_file(err, path);
    free(buf);
    return rc;
}
