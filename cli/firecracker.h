/* `vmlet firecracker`: Firecracker's command line (cli/firecracker.c). */
#ifndef VMLET_CLI_FIRECRACKER_H
#define VMLET_CLI_FIRECRACKER_H

/* argv[0] is the command's name; returns the exit status. */
int cmd_firecracker(int argc, char **argv);

#endif
