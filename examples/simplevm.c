/* simplevm: the smallest complete program on libvmlet. It boots a Linux
 * kernel with an initrd and one disk, puts the guest's serial console on
 * this terminal, and waits until the guest powers off.
 *
 *   cc simplevm.c $(pkg-config --cflags --libs vmlet) -o simplevm
 *   ./simplevm vmlinuz initrd.img disk.img "console=ttyS0 root=/dev/vda"
 */
#include <stdio.h>
#include <unistd.h>
#include <vmlet.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s KERNEL INITRD DISK [CMDLINE]\n", argv[0]);
        return 2;
    }
    vmlet_config *c = vmlet_config_new();
    vmlet_config_set_cpus(c, 1);
    vmlet_config_set_memory(c, 256 << 20);
    vmlet_config_set_linux_boot(c, argv[1], argv[2], argc > 4 ? argv[4] : "console=ttyS0");
    vmlet_config_add_disk(c, argv[3], 0, NULL);
    vmlet_config_set_console(c, VMLET_CONSOLE_SERIAL, STDIN_FILENO, STDOUT_FILENO);

    vmlet_error err;
    vmlet_vm *vm = NULL;
    if (vmlet_vm_create(c, &vm, &err) < 0 || /* validates c first */
        vmlet_vm_start(vm, &err) < 0) {
        fprintf(stderr, "simplevm: %s\n", err.message);
        vmlet_vm_free(vm);
        vmlet_config_free(c);
        return 1;
    }
    vmlet_config_free(c); /* the VM keeps what it needs */

    vmlet_exit exit;
    vmlet_vm_wait(vm, &exit); /* or poll vmlet_vm_event_fd(vm) */
    vmlet_vm_free(vm);
    switch (exit.reason) {
    case VMLET_STOP_POWEROFF: fprintf(stderr, "simplevm: the guest powered off\n"); return 0;
    case VMLET_STOP_REBOOT: fprintf(stderr, "simplevm: the guest rebooted\n"); return 0;
    default: fprintf(stderr, "simplevm: the VM stopped: %s\n", exit.message); return 1;
    }
}
