/* vm.json: a vmlet_config written as JSON (docs/config.md).
 *
 * config_from_json() applies a JSON object onto an existing config through
 * the public setters, so a caller can load a file first and then apply its
 * own settings on top (the CLI's flags override the file). Keys left out
 * leave the config as it was; "disks" and "network" are appended.
 *
 * The whole document is checked before anything is applied: on an error the
 * config is unchanged (only running out of memory while applying can leave
 * it half done). Errors are one line naming the key path or the line and
 * column, e.g. "disks[1].raed_only: unknown key; known keys are path,
 * read_only, serial".
 *
 * "network" entries are parsed by src/netspec.c's pieces, as --net values
 * are, and added to the config as struct net_spec. "shutdown_timeout", which
 * has no vmlet_config setter yet, is checked just as strictly and handed
 * back in a config_json_extra. Not thread-safe: cJSON keeps its last error
 * in a global. */
#ifndef VMLET_CONFIG_JSON_H
#define VMLET_CONFIG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmlet.h"

#define CONFIG_JSON_FILE_MAX      (1u << 20)   /* bytes; a vm.json is a few hundred */
#define CONFIG_JSON_MAX_SHUTDOWN_TIMEOUT 86400 /* seconds, as --shutdown-timeout */

/* What vm.json holds beyond vmlet_config. Plain data, nothing to free. */
struct config_json_extra {
    bool has_shutdown_timeout;
    unsigned shutdown_timeout;                       /* seconds */
};

/* Applies the JSON object in text[0..len) (no NUL needed) onto c; its
 * "network" entries are added after c's NICs. extra receives
 * "shutdown_timeout" (it is filled only on success, and only if the file
 * sets it; zero it first); NULL checks and drops it. Returns 0, or -1 with
 * err filled: VMLET_ERR_FILE for text that is not JSON ("line 3, column 7: ..."), VMLET_ERR_INVALID for a key or value
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
