/* `vmlet firecracker` (also vmlet run under the name `firecracker`):
 * Firecracker's command line over vmlet, so that orchestrators that drive
 * Firecracker (Kata Containers, firecracker-containerd, the
 * firecracker-go-sdk) can drive vmlet microVMs. The API itself is
 * cli/fc_vmm.c, served on the control socket of cli/api.c; this file is
 * the flags, the exit statuses and the process's poll loop.
 *
 * Exit statuses follow Firecracker's: 0 once the guest powered off or
 * rebooted (a Firecracker microVM ends on either), 1 for an error, 152 for
 * a --config-file that cannot be used, 153 for a bad command line, 148
 * for a system call the sandbox refused; a SIGTERM, SIGINT or SIGHUP
 * stops the microVM at once and ends with 128 + the signal, as the
 * signal's default action would. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "vmlet.h"
#include "api.h"
#include "fc_vmm.h"
#include "firecracker.h"

enum {
    FC_EXIT_OK = 0,
    FC_EXIT_ERROR = 1,
    FC_EXIT_BAD_SYSCALL = 148,
    FC_EXIT_BAD_CONFIGURATION = 152,
    FC_EXIT_ARG_PARSING = 153,
};

#define FC_DEFAULT_API_SOCK "/run/firecracker.socket"

static const char fc_usage[] =
    "Usage: vmlet firecracker [--api-sock PATH] [--config-file FILE] [--no-api] [--id ID]\n"
    "                         [--no-seccomp] [--kvm-device PATH]\n"
    "       vmlet firecracker --version | --help\n"
    "\n"
    "vmlet with Firecracker's command line and HTTP API (a subset; docs/firecracker.md),\n"
    "so that tools that drive Firecracker can drive vmlet. The same when vmlet is\n"
    "run under the name 'firecracker'. It is not Firecracker.\n"
    "\n"
    "  --api-sock PATH     serve the API on this Unix socket (default " FC_DEFAULT_API_SOCK ")\n"
    "  --config-file FILE  the microVM in Firecracker's JSON (boot-source, machine-config,\n"
    "                      drives, network-interfaces, vsock, logger, metrics, entropy,\n"
    "                      balloon); boot it at once\n"
    "  --no-api            no API socket (needs --config-file)\n"
    "  --id ID             the microVM's ID in GET / and the log (1 to 64 letters, digits\n"
    "                      and '-'; default " FC_DEFAULT_ID ")\n"
    "  --no-seccomp        no sandbox (debugging only)\n"
    "  --kvm-device PATH   the KVM device (default /dev/kvm; vmlet's, not Firecracker's)\n"
    "  --version           vmlet's version and the Firecracker API version implemented\n"
    "\n"
    "The guest's serial console (ttyS0) is on stdout; stdin goes to it.\n"
    "Exit status: 0 the guest powered off or rebooted; 1 an error; 152 a bad\n"
    "--config-file; 153 a bad command line; 148 the sandbox refused a system\n"
    "call; 128+N stopped by signal N.\n";

static int arg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int arg_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vmlet firecracker: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("; see 'vmlet firecracker --help'\n", stderr);
    va_end(ap);
    return FC_EXIT_ARG_PARSING;
}

/* Firecracker's instance IDs: letters, digits and '-', 1 to 64. */
static bool valid_instance_id(const char *id)
{
    return fc_valid_id(id, '-');
}

struct fc_options {
    const char *api_sock, *config_file, *id, *kvm_device;
    bool no_api, no_seccomp;
};

/* -1 to go on, or an exit status. */
static int parse_fc_options(int argc, char **argv, struct fc_options *o)
{
    enum {
        OPT_API_SOCK = 256,
        OPT_CONFIG_FILE,
        OPT_NO_API,
        OPT_ID,
        OPT_VERSION,
        OPT_HELP,
        OPT_NO_SECCOMP,
        OPT_KVM_DEVICE,
        OPT_START_TIME, /* the jailer passes these; nothing here uses them */
    };
    static const struct option longopts[] = {
        { "api-sock", required_argument, NULL, OPT_API_SOCK },
        { "config-file", required_argument, NULL, OPT_CONFIG_FILE },
        { "no-api", no_argument, NULL, OPT_NO_API },
        { "id", required_argument, NULL, OPT_ID },
        { "version", no_argument, NULL, OPT_VERSION },
        { "help", no_argument, NULL, OPT_HELP },
        { "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
        { "kvm-device", required_argument, NULL, OPT_KVM_DEVICE },
        { "start-time-us", required_argument, NULL, OPT_START_TIME },
        { "start-time-cpu-us", required_argument, NULL, OPT_START_TIME },
        { "parent-cpu-time-us", required_argument, NULL, OPT_START_TIME },
        { 0 },
    };
    opterr = 0;
    optind = 1;
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, &idx)) != -1) {
        switch (c) {
        case OPT_API_SOCK:
            if (!*optarg)
                return arg_error("--api-sock needs a path");
            o->api_sock = optarg;
            break;
        case OPT_CONFIG_FILE:
            if (!*optarg)
                return arg_error("--config-file needs a path");
            o->config_file = optarg;
            break;
        case OPT_NO_API: o->no_api = true; break;
        case OPT_ID:
            if (!valid_instance_id(optarg))
                return arg_error("--id '%.80s' is not an ID: give 1 to %d letters, digits and '-'",
                                 optarg, FC_ID_MAX);
            o->id = optarg;
            break;
        case OPT_VERSION:
            /* Line 1 is what Kata Containers reads: its second word is the
             * version of the Firecracker API this speaks. */
            printf("Firecracker-API v%s (vmlet %s; a vmlet mode, not Firecracker: "
                   "docs/firecracker.md)\n",
                   FC_API_VERSION, vmlet_version());
            return FC_EXIT_OK;
        case OPT_HELP: fputs(fc_usage, stdout); return FC_EXIT_OK;
        case OPT_NO_SECCOMP: o->no_seccomp = true; break;
        case OPT_KVM_DEVICE: o->kvm_device = optarg; break;
        case OPT_START_TIME: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            (void)v;
            if (!*optarg || *end || errno || optarg[0] == '-')
                return arg_error("--%s '%.40s' is not a number of microseconds", longopts[idx].name,
                                 optarg);
            break;
        }
        case ':': return arg_error("%s needs a value", argv[optind - 1]);
        default:
            return arg_error("unknown option '%s' (vmlet's Firecracker mode takes --api-sock, "
                             "--config-file, --no-api, --id, --no-seccomp, --version)",
                             argv[optind - 1]);
        }
    }
    if (optind < argc)
        return arg_error("unexpected argument '%s'", argv[optind]);
    if (o->no_api && !o->config_file)
        return arg_error("--no-api needs --config-file (without either, nothing could start "
                         "the microVM)");
    if (!o->api_sock)
        o->api_sock = FC_DEFAULT_API_SOCK;
    return -1;
}

#define CONFIG_FILE_MAX (1u << 20)

/* The whole of --config-file, malloc'd; NULL with why set. */
static char *read_config_file(const char *path, size_t *len, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return NULL;
    }
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    size_t n = 0;
    while (buf && n <= CONFIG_FILE_MAX) {
        ssize_t r = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, whylen, "%s", strerror(errno));
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf) {
        if (!why[0])
            snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (n > CONFIG_FILE_MAX) {
        snprintf(why, whylen, "larger than %u MiB", CONFIG_FILE_MAX >> 20);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Once the VM runs, this thread only serves the API and signals: into the
 * sandbox with it (after giving back the heap building the VM left). */
static int sandbox_self(void *ctx, vmlet_vm *vm, vmlet_error *err)
{
    (void)ctx;
    malloc_trim(0);
    return vmlet_vm_sandbox_this_thread(vm, err);
}

static uint64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The poll timeout that meets both deadlines (-1: none). */
static int earlier(int a, int b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

int cmd_firecracker(int argc, char **argv)
{
    uint64_t start_us = clock_us(CLOCK_MONOTONIC);
    struct fc_options o = { 0 };
    int rc = parse_fc_options(argc, argv, &o);
    if (rc >= 0)
        return rc;

    sigset_t mask;
    sigemptyset(&mask);
    const int stop_signals[] = { SIGTERM, SIGINT, SIGHUP };
    for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) {
        signal(stop_signals[i], SIG_DFL); /* a shell's background job ignores SIGINT */
        sigaddset(&mask, stop_signals[i]);
    }
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);

    vmlet_set_sandbox_exit_status(FC_EXIT_BAD_SYSCALL);
    struct api_server *api = NULL;
    if (!o.no_api) {
        char why[512];
        api = api_server_open(o.api_sock, why, sizeof why);
        if (!api) {
            fprintf(stderr, "vmlet firecracker: %s\n", why);
            return FC_EXIT_ERROR;
        }
    }
    struct fc_host host = { .id = o.id,
                            .console_in = STDIN_FILENO,
                            .console_out = STDOUT_FILENO,
                            .kvm_device = o.kvm_device,
                            .seccomp_off = o.no_seccomp,
                            .started = sandbox_self };
    struct fc_vmm *fc = fc_vmm_new(&host);
    if (!fc) {
        fprintf(stderr, "vmlet firecracker: out of memory\n");
        api_server_close(api);
        return FC_EXIT_ERROR;
    }
    /* Firecracker's api_server startup gauges: until the API listens. */
    fc_vmm_set_startup(fc, clock_us(CLOCK_MONOTONIC) - start_us,
                       clock_us(CLOCK_PROCESS_CPUTIME_ID));
    if (o.config_file) {
        char why[256] = "";
        size_t len;
        char *text = read_config_file(o.config_file, &len, why, sizeof why);
        vmlet_error err = { 0 };
        if (!text || fc_vmm_boot_from_json(fc, text, len, &err) < 0) {
            fprintf(stderr, "vmlet firecracker: --config-file %s: %s\n", o.config_file,
                    text ? err.message : why);
            free(text);
            fc_vmm_free(fc);
            api_server_close(api);
            return FC_EXIT_BAD_CONFIGURATION;
        }
        free(text);
    }

    int signo = 0;
    for (;;) {
        vmlet_vm *vm = fc_vmm_vm(fc);
        if (vm && vmlet_vm_wait_timeout(vm, NULL, 0) == 1)
            break;
        struct pollfd fds[2 + API_POLLFDS];
        int n = 0;
        fds[n++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
        fds[n++] = (struct pollfd){ .fd = vm ? vmlet_vm_event_fd(vm) : -1, .events = POLLIN };
        int api_n = api ? api_server_pollfds(api, fds + n) : 0;
        /* The periodic metrics line is written here when due. */
        int timeout = fc_vmm_periodic_metrics(fc, clock_us(CLOCK_MONOTONIC) / 1000);
        if (api)
            timeout = earlier(timeout, api_server_timeout(api));
        int ready = poll(fds, (nfds_t)(n + api_n), timeout);
        if (ready < 0 && errno != EINTR)
            break;
        if (api)
            api_server_serve(api, fds + n, ready > 0 ? api_n : 0, fc_vmm_dispatch, fc);
        if (ready > 0 && fds[0].revents) {
            struct signalfd_siginfo si;
            if (read(sig_fd, &si, sizeof si) == sizeof si) {
                signo = (int)si.ssi_signo;
                break;
            }
        }
        if (ready > 0 && fds[1].revents && vm)
            vmlet_vm_state(vm); /* drains the event counter */
    }

    vmlet_vm *vm = fc_vmm_vm(fc);
    rc = signo ? 128 + signo : FC_EXIT_OK;
    if (vm) {
        vmlet_exit ex = { 0 };
        if (signo)
            vmlet_vm_stop(vm);
        vmlet_vm_wait(vm, &ex);
        if (ex.reason == VMLET_STOP_ERROR) {
            fprintf(stderr, "vmlet firecracker: the microVM failed: %s\n", ex.message);
            fc_vmm_log(fc, "Error", "the microVM failed: %s", ex.message);
            rc = FC_EXIT_ERROR;
        } else {
            fc_vmm_log(fc, "Info", "the microVM stopped (%s)",
                       signo                              ? "signal"
                       : ex.reason == VMLET_STOP_POWEROFF ? "guest power off"
                       : ex.reason == VMLET_STOP_REBOOT   ? "guest reboot"
                                                          : "stopped by the host");
        }
        fc_vmm_flush_metrics(fc); /* the last numbers, as Firecracker writes at exit */
    }
    api_server_close(api);
    fc_vmm_free(fc);
    return rc;
}
