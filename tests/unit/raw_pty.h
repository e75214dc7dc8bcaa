/* A terminal for the tests to stall: a pty in raw mode whose master the
 * test reads (or leaves alone, like a terminal stopped with Ctrl-S).
 * Include after cmocka.h. */
#ifndef VMLET_TEST_RAW_PTY_H
#define VMLET_TEST_RAW_PTY_H

#include <fcntl.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

/* Opens a pty pair, the slave blocking and raw (bytes arrive as written).
 * Returns the slave and sets *master, or -1 when this host has no ptys
 * (the caller skips); anything failing after that fails the test. */
static inline int raw_pty_open(int *master)
{
    *master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*master < 0 || grantpt(*master) < 0 || unlockpt(*master) < 0) {
        if (*master >= 0)
            close(*master);
        return -1;
    }
    int slave = open(ptsname(*master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    assert_true(slave >= 0);
    struct termios tio;
    assert_int_equal(tcgetattr(slave, &tio), 0);
    cfmakeraw(&tio);
    assert_int_equal(tcsetattr(slave, TCSANOW, &tio), 0);
    return slave;
}

#endif
