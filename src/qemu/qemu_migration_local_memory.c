/*
 * qemu_migration_local_memory.c: guest memory a local migration shares
 *                                with the new process instead of copying it
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Lesser General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 *
 * This library is distributed in the hope that it will be useful,
 * but WITHOUT ANY WARRANTY; without even the implied warranty of
 * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
 * Lesser General Public License for more details.
 *
 * You should have received a copy of the GNU Lesser General Public
 * License along with this library.  If not, see
 * <http://www.gnu.org/licenses/>.
 */

#include <config.h>

#include "qemu_migration_local.h"
#define LIBVIRT_QEMU_MIGRATION_LOCALPRIV_H_ALLOW
#include "qemu_migration_localpriv.h"
#include "qemu_domain.h"
#include "qemu_migration_params.h"
#include "virerror.h"
#include "virlog.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_migration_local_memory");


/* The access mode of NUMA cell @cell (-1: the domain's RAM without NUMA). */
static virDomainMemoryAccess
qemuMigrationLocalMemoryAccess(const virDomainDef *def,
                               ssize_t cell)
{
    virDomainMemoryAccess access = VIR_DOMAIN_MEMORY_ACCESS_DEFAULT;

    if (cell >= 0)
        access = virDomainNumaGetNodeMemoryAccessMode(def->numa, cell);
    if (access == VIR_DOMAIN_MEMORY_ACCESS_DEFAULT)
        access = def->mem.access;
    return access;
}


/**
 * qemuMigrationLocalMemoryOf:
 * @def: a domain definition
 * @why: set to why its memory cannot be shared, when it cannot
 *
 * How the new process of a local migration can have the RAM of a process
 * started from @def instead of a copy (docs/localmig-memory.rst):
 * - a shared RAM block backed by a named file is left out of the stream
 *   by x-ignore-shared; the new process maps that very file, which it
 *   does when it gets the running process's memory directory (libvirt
 *   names the file after the backend's alias there);
 * - a shared memfd has no name: cpr-transfer passes the fd itself, of
 *   hugepages or not.
 * Hugepages without a memfd are a file QEMU creates in a directory and
 * unlinks at once, which no other process can open. <discard/> makes the
 * old process free the pages when it exits, under the guest that runs on
 * in the new one.
 *
 * Returns the way, QEMU_MIGRATION_LOCAL_MEMORY_COPY with @why set when
 * there is none.
 */
qemuMigrationLocalMemory
qemuMigrationLocalMemoryOf(const virDomainDef *def,
                           const char **why)
{
    size_t ncells = virDomainNumaGetNodeCount(def->numa);
    size_t i;

    *why = NULL;
    if (def->mem.source != VIR_DOMAIN_MEMORY_SOURCE_FILE &&
        def->mem.source != VIR_DOMAIN_MEMORY_SOURCE_MEMFD)
        *why = _("its memory is not backed by a file or a memfd (<memoryBacking><source type='file'/> or <source type='memfd'/>)");
    else if (def->mem.nhugepages > 0 &&
             def->mem.source != VIR_DOMAIN_MEMORY_SOURCE_MEMFD)
        *why = _("hugepage-backed memory is a file no other process can open (a memfd can be passed: <source type='memfd'/>)");
    else if (def->nmems > 0)
        *why = _("memory devices are not supported");
    else if (def->mem.discard == VIR_TRISTATE_BOOL_YES)
        *why = _("<discard/> would free the guest's memory when the old process exits");
    else if (ncells == 0 &&
             qemuMigrationLocalMemoryAccess(def, -1) != VIR_DOMAIN_MEMORY_ACCESS_SHARED)
        *why = _("its memory is private (<access mode='shared'/>)");

    for (i = 0; !*why && i < ncells; i++) {
        if (qemuMigrationLocalMemoryAccess(def, i) != VIR_DOMAIN_MEMORY_ACCESS_SHARED)
            *why = _("the memory of a NUMA cell is private (<access mode='shared'/>)");
        else if (virDomainNumaGetNodeDiscard(def->numa, i) == VIR_TRISTATE_BOOL_YES)
            *why = _("<discard/> would free the guest's memory when the old process exits");
    }

    if (*why)
        return QEMU_MIGRATION_LOCAL_MEMORY_COPY;
    if (def->mem.source == VIR_DOMAIN_MEMORY_SOURCE_MEMFD)
        return QEMU_MIGRATION_LOCAL_MEMORY_MEMFD;
    return QEMU_MIGRATION_LOCAL_MEMORY_FILE;
}


/**
 * qemuMigrationLocalMachineParams:
 * @buf: the -machine argument being built
 * @def: the domain's definition
 * @caps: the capabilities of its binary
 *
 * A process whose guest RAM is a shared memfd, run by a binary with
 * cpr-transfer, starts so that a later local migration can pass all of
 * its RAM: cpr-transfer refuses a process with any RAM block that is not
 * a shared memfd, and aux-ram-share makes the blocks QEMU allocates for
 * itself (ROMs, video memory) one.
 */
void
qemuMigrationLocalMachineParams(virBuffer *buf,
                                const virDomainDef *def,
                                virQEMUCaps *caps)
{
    const char *why;

    if (caps && virQEMUCapsGet(caps, QEMU_CAPS_MIGRATION_MODE_CPR_TRANSFER) &&
        qemuMigrationLocalMemoryOf(def, &why) == QEMU_MIGRATION_LOCAL_MEMORY_MEMFD)
        virBufferAddLit(buf, ",aux-ram-share=on");
}


/* Whether the process of @vm (locked, running) can take part in sharing
 * memory of @kind, the error naming its binary if not. */
static int
qemuMigrationLocalCheckMemoryCap(virDomainObj *vm,
                                 qemuMigrationLocalMemory kind)
{
    qemuDomainObjPrivate *priv = vm->privateData;

    if (kind == QEMU_MIGRATION_LOCAL_MEMORY_FILE &&
        !qemuMigrationCapsGet(vm, QEMU_MIGRATION_CAP_X_IGNORE_SHARED)) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("QEMU binary '%1$s' cannot share the guest's memory in a local migration: it lacks the migration capability '%2$s'"),
                       vm->def->emulator,
                       qemuMigrationCapabilityTypeToString(QEMU_MIGRATION_CAP_X_IGNORE_SHARED));
        return -1;
    }

    if (kind == QEMU_MIGRATION_LOCAL_MEMORY_MEMFD &&
        !virQEMUCapsGet(priv->qemuCaps, QEMU_CAPS_MIGRATION_MODE_CPR_TRANSFER)) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("QEMU binary '%1$s' cannot pass the guest's memfd memory in a local migration: it lacks the migration mode 'cpr-transfer'"),
                       vm->def->emulator);
        return -1;
    }

    return 0;
}


/**
 * qemuMigrationLocalCheckMemory:
 *
 * For VIR_MIGRATE_LOCAL_SHARED_MEMORY: whether the running process of @vm
 * and the new one, started from @newDef, can share the guest's memory,
 * and how. The new binary is asked once it runs
 * (qemuMigrationLocalCheckMemoryTarget).
 *
 * Returns the way, or -1 with an error.
 */
int
qemuMigrationLocalCheckMemory(virDomainObj *vm,
                              const virDomainDef *newDef)
{
    qemuMigrationLocalMemory kind;
    const char *why;

    if ((kind = qemuMigrationLocalMemoryOf(vm->def, &why)) != QEMU_MIGRATION_LOCAL_MEMORY_COPY &&
        qemuMigrationLocalMemoryOf(newDef, &why) != kind &&
        !why)
        why = _("the new definition backs the memory differently");

    if (why) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("cannot share the memory of domain '%1$s' with its new process: %2$s"),
                       vm->def->name, why);
        return -1;
    }

    if (qemuMigrationLocalCheckMemoryCap(vm, kind) < 0)
        return -1;
    return kind;
}


/* The new process of @shadow maps the files of the running one of @vm. */
void
qemuMigrationLocalShareMemory(virDomainObj *vm,
                              virDomainObj *shadow)
{
    qemuDomainObjPrivate *procPriv = shadow->privateData;

    g_free(procPriv->memoryBackingDir);
    procPriv->memoryBackingDir = g_strdup(QEMU_DOMAIN_PRIVATE(vm)->memoryBackingDir);
    VIR_INFO("new process of '%s' shares the memory in %s",
             vm->def->name, NULLSTR(procPriv->memoryBackingDir));
}


/* Whether the new process of @shadow (locked, started) can take part. */
int
qemuMigrationLocalCheckMemoryTarget(virDomainObj *shadow)
{
    const char *why;

    return qemuMigrationLocalCheckMemoryCap(shadow,
                                            qemuMigrationLocalMemoryOf(shadow->def, &why));
}


/**
 * qemuMigrationLocalMayRemoveMemory:
 *
 * Whether the stop of the process a local migration discards may remove
 * its memory directory @dir, while the domain keeps the process whose
 * directory is @keptDir. Shared memory is in one directory both
 * processes use: it goes once, at the stop of the domain's last process.
 * A copy has a directory of its own, which goes with its process.
 */
bool
qemuMigrationLocalMayRemoveMemory(const char *dir,
                                  const char *keptDir)
{
    return dir && STRNEQ_NULLABLE(dir, keptDir);
}


/* Before the process of @discarded is stopped while @vm (locked) keeps
 * its own: take out the memory directory it may not remove. */
void
qemuMigrationLocalKeepMemoryOut(virDomainObj *vm,
                                virDomainObj *discarded)
{
    qemuDomainObjPrivate *priv = discarded->privateData;

    if (!priv->memoryBackingDir ||
        qemuMigrationLocalMayRemoveMemory(priv->memoryBackingDir,
                                          QEMU_DOMAIN_PRIVATE(vm)->memoryBackingDir))
        return;

    VIR_DEBUG("keeping memory directory %s of '%s' out of the stop",
              priv->memoryBackingDir, vm->def->name);
    g_clear_pointer(&priv->memoryBackingDir, g_free);
}
