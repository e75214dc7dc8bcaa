/* vm.json: a vmlet_config written as JSON (docs/config.md).
 *
 * config_from_json() applies a JSON object onto an existing config through
 * the public setters, so a caller can load a file first and then apply its
 * own settings on top (the CLI's flags override the file). Keys left out
 * leave the config as it was; "disks" are appended.
 *
 * The whole document is checked before anything is applied: on an error the
 * config is unchanged (only running out of memory while applying can leave
 * it half done). Errors are one line naming the key path or the line and
 * column, e.g. "disks[1].raed_only: unknown key; known keys are path,
 * read_only, serial".
 *
 * Keys that have no vmlet_config setter yet ("network", "shutdown_timeout")
 * are checked just as strictly and handed back in a config_json_extra for
 * the caller to wire up. Not thread-safe: cJSON keeps its last error in a
 * global. */
#ifndef VMLET_CONFIG_JSON_H
#define VMLET_CONFIG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmlet.h"

#define CONFIG_JSON_FILE_MAX      (1u << 20)   /* bytes; a vm.json is a few hundred */
#define CONFIG_JSON_MAX_NETS      8
/* The network limits and defaults follow --net (src/netspec.h), so a
 * config_net maps field for field onto a struct net_spec. */
#define CONFIG_JSON_MAX_HOSTFWD   16           /* per user network */
#define CONFIG_JSON_IFNAME_MAX    15           /* bytes; IFNAMSIZ - 1 */
#define CONFIG_JSON_HOSTFWD_HOST  0x7f000001u  /* empty HOSTADDR: 127.0.0.1 */
#define CONFIG_JSON_HOSTFWD_GUEST 0x0a00020fu  /* empty GUESTADDR: 10.0.2.15 */
#define CONFIG_JSON_MAX_SHUTDOWN_TIMEOUT 86400 /* seconds, as --shutdown-timeout */

enum config_net_type {
    CONFIG_NET_USER,          /* user-mode networking (NAT, no privileges) */
    CONFIG_NET_TAP,           /* an existing host tap interface */
};

/* One "hostfwd" rule: [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT. */
struct config_hostfwd {
    bool udp;                 /* false: tcp */
    uint32_t host_addr;       /* host byte order; 0: all interfaces */
    uint16_t host_port;       /* 1..65535 */
    uint32_t guest_addr;      /* host byte order, a guest in 10.0.2.0/24 */
    uint16_t guest_port;      /* 1..65535 */
    char text[64];            /* the rule as written */
};

struct config_net {
    enum config_net_type type;
    char tap_name[CONFIG_JSON_IFNAME_MAX + 1];   /* CONFIG_NET_TAP */
    bool has_mac;
    uint8_t mac[6];           /* unicast, not all zero */
    unsigned nhostfwd;        /* CONFIG_NET_USER */
    struct config_hostfwd hostfwd[CONFIG_JSON_MAX_HOSTFWD];
};

/* What vm.json holds beyond vmlet_config. Plain data, nothing to free. */
struct config_json_extra {
    bool has_shutdown_timeout;
    unsigned shutdown_timeout;                       /* seconds */
    struct config_net nets[CONFIG_JSON_MAX_NETS];    /* in file order */
    unsigned nnets;
};

/* Applies the JSON object in text[0..len) (no NUL needed) onto c. extra
 * receives "network" and "shutdown_timeout" (it is filled only on success,
 * and only the fields the file sets; zero it first); NULL checks and drops
 * them. Returns 0, or -1 with err filled: VMLET_ERR_FILE for text that is
 * not JSON ("line 3, column 7: ..."), VMLET_ERR_INVALID for a key or value
 * ("cpus: ..."), VMLET_ERR_NOMEM. */
int config_from_json(vmlet_config *c, const char *text, size_t len,
                     struct config_json_extra *extra, vmlet_error *err);

/* The same for a file of at most CONFIG_JSON_FILE_MAX bytes (a regular
 * file, pipe or /dev/stdin); messages start with the path. */
int config_from_json_file(vmlet_config *c, const char *path,
                          struct config_json_extra *extra, vmlet_error *err);

/* Setters for one field that keep the others, so that a later layer (the
 * CLI's flags) can override just what it was given:
 * vmlet_config_set_linux_boot() and vmlet_config_set_console() set several
 * fields at once. Return 0, or -1 when out of memory. */
int config_set_kernel(vmlet_config *c, const char *path);
int config_set_initrd(vmlet_config *c, const char *path);
int config_set_cmdline(vmlet_config *c, const char *cmdline);
int config_set_console_kind(vmlet_config *c, vmlet_console_kind kind);
int config_set_console_fds(vmlet_config *c, int in_fd, int out_fd);

#endif
