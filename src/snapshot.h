/* The snapshot thread of a running VM (snapshot.c): started with the VM,
 * before any caller enters its sandbox, so that saving can make files. */
#ifndef VMLET_SNAPSHOT_H
#define VMLET_SNAPSHOT_H

#include "vmlet.h"

struct vmlet_vm;
int snapshot_saver_start(struct vmlet_vm *vm, vmlet_error *err);
/* Ends the thread (after any save in progress). */
void snapshot_saver_stop(struct vmlet_vm *vm);

#endif
