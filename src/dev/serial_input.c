/* The serial console's input pump (serial_input.h). */
#include "dev/serial_input.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "sandbox.h"
#include "thread.h"

struct serial_input {
    struct serial *serial;
    int in_fd;
    int stop_fd; /* eventfd: tells the thread to end */
    pthread_t thread;
};

static void *serial_input_thread(void *arg)
{
    struct serial_input *in = arg;
    uint8_t buf[64];
    size_t len = 0, off = 0;
    pthread_setname_np(pthread_self(), "console-in");

    while (serial_wait_rx_space(in->serial)) {
        if (off < len) {
            off += serial_push_rx(in->serial, buf + off, len - off);
            continue;
        }
        struct pollfd fds[2] = {
            { .fd = in->in_fd, .events = POLLIN },
            { .fd = in->stop_fd, .events = POLLIN },
        };
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents)
            break;
        ssize_t n = read(in->in_fd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break; /* end of input: the guest just sees no more bytes */
        len = n;
        off = 0;
    }
    return NULL;
}

/* The console-in thread: reads its input, waits in poll; nothing else. */
static const int console_in_syscalls[] = { __NR_read };
static const struct sandbox_rules console_in_rules = {
    .kind = "console-in",
    .syscalls = console_in_syscalls,
    .nsyscalls = sizeof console_in_syscalls / sizeof console_in_syscalls[0],
};

struct serial_input *serial_input_start(struct serial *s, int in_fd, vmlet_seccomp_mode mode)
{
    struct serial_input *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->serial = s;
    in->in_fd = in_fd;
    in->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (in->stop_fd < 0) {
        free(in);
        return NULL;
    }
    if (sandbox_thread_start(&in->thread, serial_input_thread, in, &console_in_rules, mode, true,
                             NULL) != 0) {
        close(in->stop_fd);
        free(in);
        return NULL;
    }
    return in;
}

void serial_input_stop(struct serial_input *in)
{
    if (!in)
        return;
    /* The thread waits either in poll (the eventfd wakes it) or for FIFO
     * room (the shutdown wakes it). */
    eventfd_kick(in->stop_fd);
    serial_shutdown(in->serial);
    pthread_join(in->thread, NULL);
    close(in->stop_fd);
    free(in);
}
