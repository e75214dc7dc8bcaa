/* vmlet: the command-line tool. It turns flags into a vmlet_config, runs
 * the VM, and connects it to the terminal: guest serial console on stdout,
 * stdin to the guest, signals to a clean guest shutdown. No VM logic here. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "vmlet.h" /* the library's public header: all the CLI uses of it */
#include "api.h"   /* --api-sock */
#include "firecracker.h"

/* Exit statuses, documented in the README and in --help. */
enum {
    EXIT_POWEROFF = 0, /* the guest powered off */
    EXIT_ERROR = 1,    /* vmlet or the VM failed */
    EXIT_USAGE = 2,    /* bad command line */
    EXIT_REBOOT = 3,   /* the guest rebooted; the VM ends */
    EXIT_FORCED = 4,   /* stopped by the host: shutdown timeout or Ctrl-A x */
};

#define ESCAPE_CHAR 0x01 /* Ctrl-A */

static const char usage_text[] =
    "Usage: vmlet run --kernel PATH [options]\n"
    "       vmlet run --config FILE [options]\n"
    "       vmlet run --restore DIR [--api-sock PATH] [--console serial] [...]\n"
    "       vmlet firecracker [--api-sock PATH] [--config-file FILE] [...]\n"
    "       vmlet --help | --version\n"
    "\n"
    "Boots a Linux guest on KVM. The guest's serial console (ttyS0) is on stdout\n"
    "and stdin goes to the guest.\n"
    "\n"
    "Options for 'run':\n"
    "  --config FILE            read the settings from a JSON file (docs/config.md);\n"
    "                           other options override it, --disk and --net add\n"
    "  --kernel PATH            x86-64 Linux bzImage or ELF vmlinux (required unless\n"
    "                           in --config)\n"
    "  --initrd PATH            initial ramdisk\n"
    "  --cmdline STRING         kernel command line, e.g. \"console=ttyS0\"\n"
    "  --cpus N                 number of vCPUs (default 1)\n"
    "  --memory SIZE            guest RAM, bytes or with K/M/G suffix (default 256M)\n"
    "  --shutdown-timeout SECS  after SIGTERM/SIGINT, how long the guest has to\n"
    "                           power off before it is stopped (default 10)\n"
    "  --disk PATH[,ro][,serial=ID]\n"
    "                           a virtio-blk disk: raw image file or block device;\n"
    "                           repeat for more (vda, vdb, ... in order); ro makes\n"
    "                           it read-only; serial is up to 20 characters\n"
    "  --console serial|virtio  where the console is: the serial port (ttyS0,\n"
    "                           default) or virtio-console (hvc0)\n"
    "  --rng                    a virtio-rng device (the guest's /dev/hwrng)\n"
    "  --net user[,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...\n"
    "  --net tap=NAME           a virtio-net NIC: user-mode NAT (DHCP gives the guest\n"
    "                           10.0.2.15; the host is 10.0.2.2; hostfwd forwards a\n"
    "                           host port, HOSTADDR default 127.0.0.1) or a TAP device;\n"
    "                           add ,mac=52:54:00:xx:xx:xx to either; repeat for more;\n"
    "                           user,host-loopback=off keeps the guest off the host's\n"
    "                           127.0.0.1; user,max-flows=N caps the guest's TCP\n"
    "                           connections, UDP ports and pings (host sockets;\n"
    "                           1-65536, default 512): over it new ones are dropped\n"
    "  --vsock cid=N,uds=PATH   a virtio-vsock device: the guest's AF_VSOCK sockets,\n"
    "                           its CID N (3 or more); host programs connect to the\n"
    "                           Unix socket PATH (made 0600) and write \"CONNECT PORT\\n\"\n"
    "                           to reach a guest port; the guest reaches CID 2 port P\n"
    "                           at the socket PATH_P (docs/vsock.md)\n"
    "  --share PATH,tag=TAG[,ro][,cache=always]\n"
    "                           a shared directory (virtio-fs, served by vmlet):\n"
    "                           in the guest, mount -t virtiofs TAG /mnt; ro refuses\n"
    "                           every change; cache=always keeps names and attributes\n"
    "                           a day in the guest, not 1 s (host changes unseen);\n"
    "                           repeat for more, up to 16\n"
    "                           (docs/shared-directories.md)\n"
    "  --balloon [deflate-on-oom][,free-page-reporting][,stats=SECONDS]\n"
    "                           a memory balloon (virtio-balloon): the guest gives\n"
    "                           memory back to the host; set its target with\n"
    "                           PATCH /balloon on --api-sock; free-page-reporting\n"
    "                           returns what the guest frees; stats=N asks for the\n"
    "                           guest's memory statistics every N s (docs/balloon.md)\n"
    "  --kvm-device PATH        KVM device (default /dev/kvm)\n"
    "  --seccomp on|off|log     the sandbox (default on): each vmlet thread may make\n"
    "                           only the system calls it needs, and one outside\n"
    "                           that list ends vmlet (status 159) naming it; off is\n"
    "                           for debugging, log allows and logs to dmesg\n"
    "  --api-sock PATH          serve the control API (HTTP/1.1 + JSON) on a Unix\n"
    "                           socket made with mode 0600: GET /, GET /metrics,\n"
    "                           PATCH /vm {\"state\": \"Paused\"|\"Resumed\"},\n"
    "                           PUT /actions {\"action_type\": \"RequestShutdown\"|\"Stop\"},\n"
    "                           PATCH /balloon {\"amount_mib\": N}, GET /balloon,\n"
    "                           GET /balloon/statistics, PUT /snapshot/create\n"
    "                           {\"snapshot_path\": DIR} (while paused)\n"
    "  --restore DIR            resume the VM saved in the snapshot DIR (PUT\n"
    "                           /snapshot/create); only --api-sock, --console serial,\n"
    "                           --shutdown-timeout, --kvm-device, --seccomp, --paused\n"
    "                           and, for a clone, --disk PATH (the disks' image copies,\n"
    "                           in order), --net (the NICs' networks and MACs, in\n"
    "                           order) and --vsock (another CID and socket) may be\n"
    "                           given with it (docs/snapshot.md)\n"
    "  --paused                 with --restore: start paused (PATCH /vm Resumed runs it)\n"
    "\n"
    "On a terminal, Ctrl-A x stops the VM at once, Ctrl-A p presses the power\n"
    "button, Ctrl-A a sends Ctrl-A, Ctrl-A h lists these keys.\n"
    "\n"
    "Exit status: 0 the guest powered off; 3 the guest rebooted; 4 the VM was\n"
    "stopped by the host (shutdown timeout, Ctrl-A x, API Stop); 1 an error; 2 a bad\n"
    "command line; 159 the sandbox stopped vmlet (a system call outside a list).\n";

struct disk_option {
    const char *arg;          /* the --disk value as given */
    char spec[PATH_MAX + 64]; /* a copy of the --disk value, cut up in place */
    char *path, *serial;
    bool read_only;
};

struct share_option {
    char spec[PATH_MAX + 64]; /* a copy of the --share value, cut up in place */
    char *path, *tag;
    bool read_only, cache_always;
};

struct options {
    const char *config;
    const char *kernel, *initrd, *cmdline, *kvm_device; /* NULL: not given */
    const char *api_sock;
    const char *restore; /* --restore DIR, or NULL */
    bool start_paused;   /* --paused (with --restore) */
    bool cpus_given, memory_given, console_given, shutdown_timeout_given, seccomp_given;
    vmlet_seccomp_mode seccomp;
    unsigned cpus;
    uint64_t memory;
    unsigned shutdown_timeout;
    vmlet_console_kind console;
    bool rng;
    bool balloon;
    unsigned balloon_flags, balloon_stats_s;
    char vsock_spec[PATH_MAX + 32]; /* a copy of --vsock, cut up in place */
    const char *vsock_uds;          /* NULL: no --vsock */
    unsigned vsock_cid;
    const char *nets[VMLET_MAX_NICS + 1]; /* one extra: the library says "too many" */
    unsigned nnets;
    struct disk_option disks[VMLET_MAX_DISKS + 1]; /* one extra: the library says "too many" */
    unsigned ndisks;
    struct share_option shares[VMLET_MAX_SHARES + 1]; /* one extra, as disks */
    unsigned nshares;
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vmlet: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("; see 'vmlet --help'\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static bool parse_uint(const char *s, unsigned long max, unsigned *out)
{
    char *end;
    if (!s[0] || s[0] == '-' || s[0] == '+')
        return false;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

/* PATH[,ro][,serial=ID]; modifies spec in place. Returns false on a
 * malformed one, with *why set. */
static bool parse_disk(char *spec, struct disk_option *d, const char **why)
{
    d->path = d->serial = NULL;
    d->read_only = false;
    char *save, *part = strtok_r(spec, ",", &save);
    if (!part || !*part || spec[0] == ',') {
        *why = "no path";
        return false;
    }
    d->path = part;
    while ((part = strtok_r(NULL, ",", &save))) {
        if (!strcmp(part, "ro"))
            d->read_only = true;
        else if (!strcmp(part, "rw"))
            d->read_only = false;
        else if (!strncmp(part, "serial=", 7))
            d->serial = part + 7;
        else {
            *why = "unknown disk option (use ro or serial=ID)";
            return false;
        }
    }
    return true;
}

/* PATH,tag=TAG[,ro][,cache=always|auto]; modifies spec in place. The tag's length and the
 * directory are the library's to check. */
static bool parse_share(char *spec, struct share_option *sh, const char **why)
{
    sh->path = sh->tag = NULL;
    sh->read_only = false;
    sh->cache_always = false;
    char *save, *part = strtok_r(spec, ",", &save);
    if (!part || !*part || spec[0] == ',') {
        *why = "no directory";
        return false;
    }
    sh->path = part;
    while ((part = strtok_r(NULL, ",", &save))) {
        if (!strcmp(part, "ro"))
            sh->read_only = true;
        else if (!strcmp(part, "rw"))
            sh->read_only = false;
        else if (!strncmp(part, "tag=", 4))
            sh->tag = part + 4;
        else if (!strcmp(part, "cache=always"))
            sh->cache_always = true;
        else if (!strcmp(part, "cache=auto"))
            sh->cache_always = false;
        else {
            *why = "unknown share option (use tag=TAG, ro or cache=always)";
            return false;
        }
    }
    if (!sh->tag) {
        *why = "no tag (add ,tag=NAME: the guest mounts the share by it)";
        return false;
    }
    return true;
}

/* cid=N,uds=PATH; modifies spec in place. The range of N and the length
 * of PATH are the library's to check. */
static bool parse_vsock(char *spec, struct options *o, const char **why)
{
    bool have_cid = false;
    o->vsock_uds = NULL;
    char *save;
    for (char *part = strtok_r(spec, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        if (!strncmp(part, "cid=", 4)) {
            if (!parse_uint(part + 4, UINT_MAX, &o->vsock_cid)) {
                *why = "cid= is not a number";
                return false;
            }
            have_cid = true;
        } else if (!strncmp(part, "uds=", 4) && part[4]) {
            o->vsock_uds = part + 4;
        } else {
            *why = "unknown part (give cid=N,uds=PATH)";
            return false;
        }
    }
    if (!have_cid || !o->vsock_uds) {
        *why = "give both cid=N and uds=PATH";
        return false;
    }
    return true;
}

/* Returns -1 on success (keep going), or an exit status. */
static int parse_run_options(int argc, char **argv, struct options *o)
{
    enum {
        OPT_KERNEL = 256,
        OPT_INITRD,
        OPT_CMDLINE,
        OPT_CPUS,
        OPT_MEMORY,
        OPT_SHUTDOWN_TIMEOUT,
        OPT_KVM_DEVICE,
        OPT_DISK,
        OPT_CONSOLE,
        OPT_RNG,
        OPT_NET,
        OPT_HELP,
        OPT_CONFIG,
        OPT_API_SOCK,
        OPT_SECCOMP,
        OPT_VSOCK,
        OPT_SHARE,
        OPT_BALLOON,
        OPT_RESTORE,
        OPT_PAUSED
    };
    static const struct option longopts[] = {
        { "kernel", required_argument, NULL, OPT_KERNEL },
        { "initrd", required_argument, NULL, OPT_INITRD },
        { "cmdline", required_argument, NULL, OPT_CMDLINE },
        { "cpus", required_argument, NULL, OPT_CPUS },
        { "memory", required_argument, NULL, OPT_MEMORY },
        { "shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT },
        { "kvm-device", required_argument, NULL, OPT_KVM_DEVICE },
        { "disk", required_argument, NULL, OPT_DISK },
        { "console", required_argument, NULL, OPT_CONSOLE },
        { "rng", no_argument, NULL, OPT_RNG },
        { "net", required_argument, NULL, OPT_NET },
        { "help", no_argument, NULL, OPT_HELP },
        { "config", required_argument, NULL, OPT_CONFIG },
        { "api-sock", required_argument, NULL, OPT_API_SOCK },
        { "seccomp", required_argument, NULL, OPT_SECCOMP },
        { "vsock", required_argument, NULL, OPT_VSOCK },
        { "share", required_argument, NULL, OPT_SHARE },
        { "balloon", optional_argument, NULL, OPT_BALLOON },
        { "restore", required_argument, NULL, OPT_RESTORE },
        { "paused", no_argument, NULL, OPT_PAUSED },
        { 0 },
    };
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        /* getopt gives every option but these its value (or returns ':'):
         * said here, so that no case below has to. */
        if (!optarg && c != OPT_BALLOON && c != OPT_RNG && c != OPT_HELP && c != OPT_PAUSED &&
            c != ':' && c != '?')
            return usage_error("%s needs a value", argv[optind - 1]);
        switch (c) {
        case OPT_CONFIG: o->config = optarg; break;
        case OPT_KERNEL: o->kernel = optarg; break;
        case OPT_INITRD: o->initrd = optarg; break;
        case OPT_CMDLINE: o->cmdline = optarg; break;
        case OPT_KVM_DEVICE: o->kvm_device = optarg; break;
        case OPT_RESTORE:
            if (!*optarg)
                return usage_error("--restore needs a snapshot directory");
            o->restore = optarg;
            break;
        case OPT_PAUSED: o->start_paused = true; break;
        case OPT_API_SOCK:
            if (!*optarg)
                return usage_error("--api-sock needs a path");
            o->api_sock = optarg;
            break;
        case OPT_CPUS:
            if (!parse_uint(optarg, UINT_MAX, &o->cpus))
                return usage_error("--cpus '%s' is not a number of vCPUs", optarg);
            o->cpus_given = true;
            break;
        case OPT_MEMORY:
            if (vmlet_parse_size(optarg, &o->memory) < 0)
                return usage_error("--memory '%s' is not a size; give bytes or a number "
                                   "with K, M or G, e.g. 512M",
                                   optarg);
            o->memory_given = true;
            break;
        case OPT_SHUTDOWN_TIMEOUT:
            if (!parse_uint(optarg, VMLET_MAX_SHUTDOWN_TIMEOUT, &o->shutdown_timeout))
                return usage_error("--shutdown-timeout '%s' is not a number of seconds "
                                   "(0 to 86400)",
                                   optarg);
            o->shutdown_timeout_given = true;
            break;
        case OPT_DISK: {
            const char *why = "malformed";
            if (o->ndisks > VMLET_MAX_DISKS)
                break; /* already one too many: validation reports it */
            struct disk_option *d = &o->disks[o->ndisks];
            if (strlen(optarg) >= sizeof d->spec)
                return usage_error("--disk: the value is longer than %zu characters",
                                   sizeof d->spec - 1);
            strcpy(d->spec, optarg);
            d->arg = optarg;
            if (!parse_disk(d->spec, d, &why))
                return usage_error("--disk '%s': %s", optarg, why);
            o->ndisks++;
            break;
        }
        case OPT_SHARE: {
            const char *why = "malformed";
            if (o->nshares > VMLET_MAX_SHARES)
                break; /* already one too many: validation reports it */
            struct share_option *sh = &o->shares[o->nshares];
            if (strlen(optarg) >= sizeof sh->spec)
                return usage_error("--share: the value is longer than %zu characters",
                                   sizeof sh->spec - 1);
            strcpy(sh->spec, optarg);
            if (!parse_share(sh->spec, sh, &why))
                return usage_error("--share '%s': %s", optarg, why);
            o->nshares++;
            break;
        }
        case OPT_VSOCK: {
            const char *why = "malformed";
            if (strlen(optarg) >= sizeof o->vsock_spec)
                return usage_error("--vsock: the value is longer than %zu characters",
                                   sizeof o->vsock_spec - 1);
            strcpy(o->vsock_spec, optarg);
            if (!parse_vsock(o->vsock_spec, o, &why))
                return usage_error("--vsock '%s': %s", optarg, why);
            break;
        }
        case OPT_CONSOLE:
            if (!strcmp(optarg, "serial"))
                o->console = VMLET_CONSOLE_SERIAL;
            else if (!strcmp(optarg, "virtio"))
                o->console = VMLET_CONSOLE_VIRTIO;
            else
                return usage_error("--console '%s': give serial or virtio", optarg);
            o->console_given = true;
            break;
        case OPT_SECCOMP:
            if (!strcmp(optarg, "on"))
                o->seccomp = VMLET_SECCOMP_ON;
            else if (!strcmp(optarg, "off"))
                o->seccomp = VMLET_SECCOMP_OFF;
            else if (!strcmp(optarg, "log"))
                o->seccomp = VMLET_SECCOMP_LOG;
            else
                return usage_error("--seccomp '%s': give on, off or log", optarg);
            o->seccomp_given = true;
            break;
        case OPT_RNG: o->rng = true; break;
        case OPT_BALLOON: {
            /* Its value is optional: "--balloon" alone, "--balloon=SPEC" or
             * "--balloon SPEC" (the next word, unless it is an option). */
            const char *spec = optarg;
            if (!spec && optind < argc && argv[optind][0] != '-')
                spec = argv[optind++];
            vmlet_error err;
            if (vmlet_parse_balloon(spec, &o->balloon_flags, &o->balloon_stats_s, &err) < 0)
                return usage_error("%s", err.message);
            o->balloon = true;
            break;
        }
        case OPT_NET: {
            vmlet_error err;
            if (vmlet_check_net(optarg, &err) < 0)
                return usage_error("%s", err.message);
            if (o->nnets <= VMLET_MAX_NICS)
                o->nets[o->nnets++] = optarg;
            break;
        }
        case OPT_HELP: fputs(usage_text, stdout); return EXIT_SUCCESS;
        case ':': return usage_error("%s needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (o->restore) {
        /* The snapshot is the VM: what would describe another one is refused. */
        bool disk_flags = false;
        for (unsigned i = 0; i < o->ndisks; i++)
            disk_flags |= o->disks[i].read_only || o->disks[i].serial;
        const char *clash = o->config         ? "--config"
                            : o->kernel       ? "--kernel"
                            : o->initrd       ? "--initrd"
                            : o->cmdline      ? "--cmdline"
                            : o->cpus_given   ? "--cpus"
                            : o->memory_given ? "--memory"
                            : disk_flags
                                ? "--disk with ro or serial= (a restored disk keeps the saved ones)"
                            : o->nshares ? "--share"
                            : o->rng     ? "--rng"
                            : o->balloon ? "--balloon"
                            : o->console_given && o->console != VMLET_CONSOLE_SERIAL
                                ? "--console virtio"
                                : NULL;
        if (clash)
            return usage_error("--restore takes the VM from the snapshot; %s cannot be given "
                               "with it",
                               clash);
        if (o->start_paused && !o->api_sock)
            return usage_error("--paused needs --api-sock: PATCH /vm {\"state\": \"Resumed\"} "
                               "runs the VM");
        return -1;
    }
    if (o->start_paused)
        return usage_error("--paused goes with --restore (a new VM starts running)");
    if (!o->kernel && !o->config)
        return usage_error("--kernel is required (an x86-64 bzImage)");
    return -1;
}

/* ---- terminal -------------------------------------------------------- */

struct terminal {
    bool raw;
    struct termios saved;
};

static void terminal_raw(struct terminal *t)
{
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &t->saved) < 0)
        return;
    struct termios raw = t->saved;
    cfmakeraw(&raw);
    raw.c_oflag |= OPOST | ONLCR; /* our own messages still get \r\n */
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
        t->raw = true;
}

static void terminal_restore(struct terminal *t)
{
    if (t->raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
    t->raw = false;
}

/* ---- running --------------------------------------------------------- */

struct session {
    vmlet_vm *vm;
    struct terminal term;
    int sig_fd;
    int to_guest; /* write end of the console input pipe */
    bool stdin_open;
    bool escape_pending;
    uint8_t pending[4096]; /* stdin bytes the pipe has not taken yet */
    size_t pending_len;
    unsigned shutdown_timeout;
    struct timespec deadline; /* for the shutdown timeout */
    bool shutting_down, forced;
    struct api_server *api; /* --api-sock, or NULL */
    struct api_target api_target;
};

static long ms_until(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : ms;
}

static void request_shutdown(struct session *s)
{
    if (s->shutting_down) {
        /* Asked twice: do not make the user wait for the timeout. */
        s->forced = true;
        vmlet_vm_stop(s->vm);
        return;
    }
    s->shutting_down = true;
    clock_gettime(CLOCK_MONOTONIC, &s->deadline);
    s->deadline.tv_sec += s->shutdown_timeout;
    vmlet_vm_request_stop(s->vm);
}

/* What the control socket's actions do: the same as the keys and signals. */
static void api_request_shutdown(void *ctx)
{
    request_shutdown(ctx);
}

static void api_stop(void *ctx)
{
    struct session *s = ctx;
    s->forced = true;
    vmlet_vm_stop(s->vm);
}

static void say(struct session *s, const char *msg)
{
    fprintf(stderr, "\r\nvmlet: %s\r\n", msg);
    (void)s;
}

/* Moves stdin bytes into s->pending, handling Ctrl-A escapes on a TTY. */
static void read_stdin(struct session *s)
{
    uint8_t buf[sizeof s->pending];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf - s->pending_len - 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        s->stdin_open = false;
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        uint8_t c = buf[i];
        if (!s->term.raw) {
            s->pending[s->pending_len++] = c;
            continue;
        }
        if (!s->escape_pending && c == ESCAPE_CHAR) {
            s->escape_pending = true;
            continue;
        }
        if (!s->escape_pending) {
            s->pending[s->pending_len++] = c;
            continue;
        }
        s->escape_pending = false;
        switch (c) {
        case 'x':
        case 'X':
            say(s, "Ctrl-A x: stopping the VM");
            s->forced = true;
            vmlet_vm_stop(s->vm);
            break;
        case 'p':
        case 'P':
            say(s, "Ctrl-A p: pressing the power button");
            request_shutdown(s);
            break;
        case 'h':
        case 'H':
        case '?':
            say(s, "Ctrl-A x: stop the VM now   Ctrl-A p: power button   "
                   "Ctrl-A a: send Ctrl-A");
            break;
        case 'a':
        case ESCAPE_CHAR: s->pending[s->pending_len++] = ESCAPE_CHAR; break;
        default: s->pending[s->pending_len++] = ESCAPE_CHAR; s->pending[s->pending_len++] = c;
        }
    }
}

static void flush_pending(struct session *s)
{
    ssize_t n = write(s->to_guest, s->pending, s->pending_len);
    if (n > 0) {
        memmove(s->pending, s->pending + n, s->pending_len - n);
        s->pending_len -= n;
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        s->pending_len = 0; /* the VM stopped reading for good */
        s->stdin_open = false;
    }
}

/* Runs until the VM stops; returns the exit status. */
static int supervise(struct session *s)
{
    for (;;) {
        if (vmlet_vm_wait_timeout(s->vm, NULL, 0) == 1)
            break;
        struct pollfd fds[4 + API_POLLFDS];
        int n = 0;
        fds[n++] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
        fds[n++] = (struct pollfd){ .fd = vmlet_vm_event_fd(s->vm), .events = POLLIN };
        int stdin_slot = -1, pipe_slot = -1;
        if (s->pending_len) {
            pipe_slot = n;
            fds[n++] = (struct pollfd){ .fd = s->to_guest, .events = POLLOUT };
        } else if (s->stdin_open) {
            stdin_slot = n;
            fds[n++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
        }
        int api_slot = -1, api_n = 0;
        if (s->api) {
            api_slot = n;
            api_n = api_server_pollfds(s->api, fds + n);
            n += api_n;
        }
        int timeout = s->shutting_down ? (int)ms_until(&s->deadline) : -1;
        int api_timeout = s->api ? api_server_timeout(s->api) : -1;
        if (api_timeout >= 0 && (timeout < 0 || api_timeout < timeout))
            timeout = api_timeout;
        int rc = poll(fds, n, timeout);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc == 0 && s->shutting_down && !s->forced && ms_until(&s->deadline) == 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "the guest did not power off within %u s; stopping it",
                     s->shutdown_timeout);
            say(s, msg);
            s->forced = true;
            vmlet_vm_stop(s->vm);
            continue;
        }
        if (s->api)
            api_server_handle(s->api, fds + api_slot, rc > 0 ? api_n : 0, &s->api_target);
        if (rc <= 0)
            continue;
        if (fds[0].revents) {
            struct signalfd_siginfo si;
            if (read(s->sig_fd, &si, sizeof si) == sizeof si)
                request_shutdown(s);
        }
        if (fds[1].revents)
            vmlet_vm_state(s->vm); /* drains the event counter */
        if (stdin_slot >= 0 && fds[stdin_slot].revents)
            read_stdin(s);
        if (pipe_slot >= 0 && fds[pipe_slot].revents)
            flush_pending(s);
    }

    vmlet_exit ex;
    vmlet_vm_wait(s->vm, &ex);
    switch (ex.reason) {
    case VMLET_STOP_POWEROFF: return EXIT_POWEROFF;
    case VMLET_STOP_REBOOT: return EXIT_REBOOT;
    case VMLET_STOP_HOST: return EXIT_FORCED;
    default:
        terminal_restore(&s->term);
        fprintf(stderr, "vmlet: the VM failed: %s\n", ex.message);
        return EXIT_ERROR;
    }
}

/* What cmd_run needs of the command line besides the config: all of it
 * argv's strings, so it outlives the parsed options. */
struct run_args {
    const char *api_sock;
    const char *restore; /* --restore DIR, or NULL */
    bool start_paused;
    /* --restore's replacements: disks and NICs in order, the vsock device. */
    const char *disks[VMLET_MAX_DISKS + 1];
    unsigned ndisks;
    const char *nets[VMLET_MAX_NICS + 1];
    unsigned nnets;
    unsigned vsock_cid;
    char vsock_uds[PATH_MAX + 32]; /* empty: no --vsock */
    const char *kvm_device;
    bool seccomp_given;
    vmlet_seccomp_mode seccomp;
};

/* --restore: the VM from the snapshot, with this process's console. */
static int restore_vm(const struct run_args *a, int console_in, vmlet_vm **vm, vmlet_error *err)
{
    vmlet_restore_options *ro = vmlet_restore_options_new();
    if (!ro)
        return snprintf(err->message, sizeof err->message, "out of memory"), -1;
    vmlet_restore_options_set_console(ro, console_in, STDOUT_FILENO);
    if (a->kvm_device && vmlet_restore_options_set_kvm_device(ro, a->kvm_device) < 0) {
        vmlet_restore_options_free(ro);
        return snprintf(err->message, sizeof err->message, "out of memory"), -1;
    }
    if (a->seccomp_given)
        vmlet_restore_options_set_seccomp(ro, a->seccomp);
    vmlet_restore_options_set_start_paused(ro, a->start_paused);
    int rc = 0;
    if (a->nnets > VMLET_MAX_NICS)
        rc = snprintf(err->message, sizeof err->message,
                      "--net: at most %d NICs; a restored VM has the snapshot's", VMLET_MAX_NICS);
    if (a->ndisks > VMLET_MAX_DISKS)
        rc = snprintf(err->message, sizeof err->message,
                      "--disk: at most %d disks; a restored VM has the snapshot's",
                      VMLET_MAX_DISKS);
    for (unsigned i = 0; i < a->nnets && rc == 0; i++)
        if (vmlet_restore_options_set_net(ro, i, a->nets[i]) < 0)
            rc = snprintf(err->message, sizeof err->message, "out of memory");
    for (unsigned i = 0; i < a->ndisks && rc == 0; i++)
        if (vmlet_restore_options_set_disk(ro, i, a->disks[i]) < 0)
            rc = snprintf(err->message, sizeof err->message, "out of memory");
    if (rc == 0 && a->vsock_uds[0] &&
        vmlet_restore_options_set_vsock(ro, a->vsock_cid, a->vsock_uds) < 0)
        rc = snprintf(err->message, sizeof err->message, "out of memory");
    if (rc) {
        vmlet_restore_options_free(ro);
        err->code = VMLET_ERR_INVALID;
        return -1;
    }
    rc = vmlet_vm_restore(a->restore, ro, vm, err);
    vmlet_restore_options_free(ro);
    return rc;
}

/* VMLET_TIMING=1: one stderr line at exit with when main() began, the
 * guest's first instruction, its stop and the VM's release, in
 * CLOCK_BOOTTIME seconds (what /proc/uptime counts), so bench/boot can
 * split set-up and teardown from the guest's own boot. */
static uint64_t main_ns;

static uint64_t boottime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct vm_times {
    uint64_t first_run, stop, kernel_load;
    bool host_decompressed, kaslr;
};

static void take_vm_time(void *opaque, const char *group, const char *name, uint64_t value)
{
    struct vm_times *t = opaque;
    if (strcmp(group, "vm") != 0)
        return;
    if (!strcmp(name, "first_run_boottime_ns"))
        t->first_run = value;
    else if (!strcmp(name, "stop_boottime_ns"))
        t->stop = value;
    else if (!strcmp(name, "kernel_load_ns"))
        t->kernel_load = value;
    else if (!strcmp(name, "kernel_host_decompressed"))
        t->host_decompressed = value;
    else if (!strcmp(name, "kernel_kaslr"))
        t->kaslr = value;
}

static void print_timing(const struct vm_times *t, uint64_t freed)
{
    const double s = 1e-9, ms = 1e-6;
    fprintf(stderr,
            "vmlet: timing: main=%.6f first-run=%.6f stop=%.6f freed=%.6f; "
            "main to first guest instruction %.1f ms, guest stop to VM freed %.1f ms; "
            "kernel loaded in %.1f ms (%s, KASLR %s)\n",
            main_ns * s, t->first_run * s, t->stop * s, freed * s,
            t->first_run ? (double)(t->first_run - main_ns) * ms : 0.0,
            t->stop ? (double)(freed - t->stop) * ms : 0.0, t->kernel_load * ms,
            t->host_decompressed ? "decompressed by vmlet" : "bzImage decompresses itself",
            t->kaslr               ? "by vmlet"
            : t->host_decompressed ? "off"
                                   : "the kernel's");
}

/* Returns -1 with *out and console_pipe set, or an exit status. */
static int config_from_options(const struct options *o, vmlet_config **out, int console_pipe[2])
{
    /* Console input goes through a pipe so the CLI can take its escape keys
     * out; the VM reads the other end. */
    if (pipe2(console_pipe, O_CLOEXEC) < 0) {
        fprintf(stderr, "vmlet: pipe: %s\n", strerror(errno));
        return EXIT_ERROR;
    }
    fcntl(console_pipe[1], F_SETFL, O_NONBLOCK);

    vmlet_config *c = vmlet_config_new();
    if (!c) {
        fprintf(stderr, "vmlet: out of memory\n");
        close(console_pipe[0]);
        close(console_pipe[1]);
        return EXIT_ERROR;
    }
    vmlet_error err;
    if (o->restore) {
        /* The VM is the snapshot's; of the flags, only these apply. */
        if (o->shutdown_timeout_given)
            vmlet_config_set_shutdown_timeout(c, o->shutdown_timeout);
        *out = c;
        return -1;
    }
    /* The file first, then only the flags that were given on top of it. */
    if (o->config && vmlet_config_load_json(c, o->config, &err) < 0) {
        fprintf(stderr, "vmlet: %s\n", err.message);
        vmlet_config_free(c);
        close(console_pipe[0]);
        close(console_pipe[1]);
        return EXIT_ERROR;
    }
    if (o->cpus_given)
        vmlet_config_set_cpus(c, o->cpus);
    if (o->memory_given)
        vmlet_config_set_memory(c, o->memory);
    /* A flag replaces one of the three and keeps the file's others. */
    if (o->kernel || o->initrd || o->cmdline)
        vmlet_config_set_linux_boot(c, o->kernel ? o->kernel : vmlet_config_get_kernel(c),
                                    o->initrd ? o->initrd : vmlet_config_get_initrd(c),
                                    o->cmdline ? o->cmdline : vmlet_config_get_cmdline(c));
    vmlet_config_set_console(c, o->console_given ? o->console : vmlet_config_get_console(c),
                             console_pipe[0], STDOUT_FILENO);
    for (unsigned i = 0; i < o->ndisks; i++)
        vmlet_config_add_disk(c, o->disks[i].path, o->disks[i].read_only ? VMLET_DISK_READONLY : 0,
                              o->disks[i].serial);
    for (unsigned i = 0; i < o->nshares; i++)
        if (vmlet_config_add_share(c, o->shares[i].path, o->shares[i].tag,
                                   (o->shares[i].read_only ? VMLET_SHARE_READONLY : 0) |
                                       (o->shares[i].cache_always ? VMLET_SHARE_CACHE_ALWAYS : 0)) <
            0) {
            fprintf(stderr, "vmlet: out of memory\n");
            vmlet_config_free(c);
            close(console_pipe[0]);
            close(console_pipe[1]);
            return EXIT_ERROR;
        }
    if (o->rng)
        vmlet_config_set_entropy(c, 1);
    if (o->balloon)
        vmlet_config_set_balloon(c, 1, o->balloon_flags, o->balloon_stats_s);
    if (o->vsock_uds && vmlet_config_set_vsock(c, o->vsock_cid, o->vsock_uds) < 0) {
        fprintf(stderr, "vmlet: out of memory\n");
        vmlet_config_free(c);
        close(console_pipe[0]);
        close(console_pipe[1]);
        return EXIT_ERROR;
    }
    /* After the file's NICs, which the file added. */
    for (unsigned i = 0; i < o->nnets; i++)
        vmlet_config_add_net(c, o->nets[i]);
    if (o->kvm_device)
        vmlet_config_set_kvm_device(c, o->kvm_device);
    if (o->shutdown_timeout_given)
        vmlet_config_set_shutdown_timeout(c, o->shutdown_timeout);
    if (o->seccomp_given)
        vmlet_config_set_seccomp(c, o->seccomp);
    *out = c;
    return -1;
}

/* The command line as a config, and the console's pipe. The options
 * (copies of --disk and --share values: some 150 KiB) are on the heap for
 * this alone: zeroed on the main thread's stack they stayed resident for
 * the VM's whole life. Returns -1 with *out, console_pipe and *args set,
 * or an exit status. */
static int run_config(int argc, char **argv, vmlet_config **out, int console_pipe[2],
                      struct run_args *args)
{
    struct options *o = calloc(1, sizeof *o);
    if (!o) {
        fprintf(stderr, "vmlet: out of memory\n");
        return EXIT_ERROR;
    }
    o->cpus = VMLET_DEFAULT_CPUS;
    o->memory = VMLET_DEFAULT_MEMORY;
    int rc = parse_run_options(argc, argv, o);
    if (rc < 0)
        rc = config_from_options(o, out, console_pipe);
    *args = (struct run_args){ .api_sock = o->api_sock,
                               .restore = o->restore,
                               .start_paused = o->start_paused,
                               .nnets = o->nnets,
                               .ndisks = o->ndisks,
                               .vsock_cid = o->vsock_cid,
                               .kvm_device = o->kvm_device,
                               .seccomp_given = o->seccomp_given,
                               .seccomp = o->seccomp };
    memcpy(args->nets, o->nets, sizeof args->nets);
    for (unsigned i = 0; i < o->ndisks; i++)
        args->disks[i] = o->disks[i].arg; /* a path alone (parse_run_options) */
    if (o->vsock_uds)
        snprintf(args->vsock_uds, sizeof args->vsock_uds, "%s", o->vsock_uds);
    free(o);
    return rc;
}

static int cmd_run(int argc, char **argv)
{
    vmlet_config *c = NULL;
    int console_pipe[2];
    struct run_args args;
    int rc = run_config(argc, argv, &c, console_pipe, &args);
    if (rc >= 0)
        return rc;
    vmlet_error err;

    /* No vmlet_config_validate() here: vmlet_vm_create() checks the config
     * (once) before it takes anything, and its error is the same line. */
    /* Signals become events in our poll loop; blocked before the VM's
     * threads exist so none of them receives these. */
    sigset_t mask;
    sigemptyset(&mask);
    const int stop_signals[] = { SIGTERM, SIGINT, SIGHUP };
    for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) {
        /* A shell starts background jobs with SIGINT ignored, and an
         * ignored signal never reaches the signalfd: take it back. */
        signal(stop_signals[i], SIG_DFL);
        sigaddset(&mask, stop_signals[i]);
    }
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout must not kill us mid-guest */

    struct session s = { .stdin_open = true,
                         .to_guest = console_pipe[1],
                         .shutdown_timeout = vmlet_config_get_shutdown_timeout(c) };
    s.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
    /* The socket before the VM: a bad path costs nothing to report. */
    if (args.api_sock) {
        char why[512];
        s.api = api_server_open(args.api_sock, why, sizeof why);
        if (!s.api) {
            fprintf(stderr, "vmlet: %s\n", why);
            vmlet_config_free(c);
            return EXIT_ERROR;
        }
    }
    if ((args.restore ? restore_vm(&args, console_pipe[0], &s.vm, &err)
                      : vmlet_vm_create(c, &s.vm, &err)) < 0) {
        fprintf(stderr, "vmlet: %s\n", err.message);
        api_server_close(s.api);
        vmlet_config_free(c);
        return EXIT_ERROR;
    }
    vmlet_config_free(c);
    s.api_target = (struct api_target){ .vm = s.vm,
                                        .cpus = vmlet_vm_cpus(s.vm),
                                        .memory = vmlet_vm_memory(s.vm),
                                        .request_shutdown = api_request_shutdown,
                                        .stop = api_stop,
                                        .ctx = &s };
    /* Only worth saying once KVM opened: then it is the KVM we run on. */
    const char *warning = vmlet_host_warning();
    if (warning)
        fprintf(stderr, "vmlet: warning: %s\n", warning);
    for (unsigned i = 0; i < VMLET_MAX_NICS; i++) /* NULL past the last NIC */
        if ((warning = vmlet_vm_net_warning(s.vm, i)))
            fprintf(stderr, "vmlet: warning: %s\n", warning);

    terminal_raw(&s.term);
    /* Then this thread enters the sandbox too: from here on it only serves
     * the API, signals and the console, and stops and frees the VM. */
    int started = vmlet_vm_start(s.vm, &err);
    /* Building the VM and each thread's seccomp filter left freed memory
     * in the heap, which vmlet never shrinks by itself (sandbox.c): give
     * those pages back now that every thread is up. */
    malloc_trim(0);
    if (started < 0 || vmlet_vm_sandbox_this_thread(s.vm, &err) < 0) {
        terminal_restore(&s.term);
        fprintf(stderr, "vmlet: %s\n", err.message);
        api_server_close(s.api);
        vmlet_vm_free(s.vm);
        return EXIT_ERROR;
    }
    if (args.restore)
        fprintf(stderr,
                "\r\nvmlet: restored %s in %.1f ms (from vmlet's start to the vCPUs "
                "running)\r\n",
                args.restore, (double)(boottime_ns() - main_ns) / 1e6);
    rc = supervise(&s);
    terminal_restore(&s.term);
    api_server_close(s.api);
    struct vm_times times = { 0 };
    const char *timing = getenv("VMLET_TIMING");
    bool want_timing = timing && !strcmp(timing, "1");
    if (want_timing)
        vmlet_vm_metrics(s.vm, take_vm_time, &times);
    vmlet_vm_free(s.vm);
    if (want_timing)
        print_timing(&times, boottime_ns());
    close(console_pipe[0]);
    close(console_pipe[1]);
    return rc;
}

int main(int argc, char **argv)
{
    main_ns = boottime_ns();
    /* One malloc arena for every thread, not one each: each arena kept
     * its own pages (a thread's filter building alone left 50-60 KiB),
     * and vmlet's threads allocate mostly while the VM is built (small
     * blocks come from each thread's cache, without the arena's lock). */
    mallopt(M_ARENA_MAX, 1);
    /* Under Firecracker's name (an orchestrator's configured path pointing
     * at vmlet), Firecracker's command line. */
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (!strcmp(base, "firecracker"))
        return cmd_firecracker(argc, argv);
    if (argc < 2)
        return usage_error("no command given");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage_text, stdout);
        return EXIT_SUCCESS;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("vmlet %s\n", vmlet_version());
        return EXIT_SUCCESS;
    }
    if (!strcmp(argv[1], "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "firecracker"))
        return cmd_firecracker(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", argv[1]);
}
