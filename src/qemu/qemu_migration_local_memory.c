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
 * qemuMigrationLocalMemoryUnshareable:
 *
 * Why the new process of a local migration cannot map the RAM of a
 * process started from @def, or NULL when it can. x-ignore-shared leaves
 * out of the stream a RAM block that is shared and backed by a named
 * file; the new process must then map that very file, which it does when
 * it gets the running process's memory directory: libvirt names the file
 * after the backend's alias there. Hugepages are a file QEMU creates in a
 * directory and unlinks at once, which no other process can open.
 * <discard/> makes the old process free the pages when it exits, under
 * the guest that runs on in the new one.
 */
const char *
qemuMigrationLocalMemoryUnshareable(const virDomainDef *def)
{
    size_t ncells = virDomainNumaGetNodeCount(def->numa);
    size_t i;

    if (def->mem.source != VIR_DOMAIN_MEMORY_SOURCE_FILE)
        return _("its memory is not backed by a file (<memoryBacking><source type='file'/>)");

    if (def->mem.nhugepages > 0)
        return _("hugepage-backed memory is a file no other process can open");

    if (def->nmems > 0)
        return _("memory devices are not supported");

    if (def->mem.discard == VIR_TRISTATE_BOOL_YES)
        return _("<discard/> would free the guest's memory when the old process exits");

    if (ncells == 0 &&
        qemuMigrationLocalMemoryAccess(def, -1) != VIR_DOMAIN_MEMORY_ACCESS_SHARED)
        return _("its memory is private (<access mode='shared'/>)");

    for (i = 0; i < ncells; i++) {
        if (qemuMigrationLocalMemoryAccess(def, i) != VIR_DOMAIN_MEMORY_ACCESS_SHARED)
            return _("the memory of a NUMA cell is private (<access mode='shared'/>)");

        if (virDomainNumaGetNodeDiscard(def->numa, i) == VIR_TRISTATE_BOOL_YES)
            return _("<discard/> would free the guest's memory when the old process exits");
    }

    return NULL;
}


/* Whether the process of @vm (locked, running) can take part. */
static int
qemuMigrationLocalCheckMemoryCap(virDomainObj *vm)
{
    if (qemuMigrationCapsGet(vm, QEMU_MIGRATION_CAP_X_IGNORE_SHARED))
        return 0;

    virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                   _("QEMU binary '%1$s' cannot share the guest's memory in a local migration: it lacks the migration capability '%2$s'"),
                   vm->def->emulator,
                   qemuMigrationCapabilityTypeToString(QEMU_MIGRATION_CAP_X_IGNORE_SHARED));
    return -1;
}


/**
 * qemuMigrationLocalCheckMemory:
 *
 * For VIR_MIGRATE_LOCAL_SHARED_MEMORY: whether the running process of @vm
 * and the new one, started from @newDef, can share the guest's memory.
 * The new binary is asked once it runs (qemuMigrationLocalCheckMemoryTarget).
 */
int
qemuMigrationLocalCheckMemory(virDomainObj *vm,
                              const virDomainDef *newDef)
{
    const char *why;

    if ((why = qemuMigrationLocalMemoryUnshareable(vm->def)) ||
        (why = qemuMigrationLocalMemoryUnshareable(newDef))) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("cannot share the memory of domain '%1$s' with its new process: %2$s"),
                       vm->def->name, why);
        return -1;
    }

    return qemuMigrationLocalCheckMemoryCap(vm);
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
    return qemuMigrationLocalCheckMemoryCap(shadow);
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
