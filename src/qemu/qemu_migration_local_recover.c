/*
 * qemu_migration_local_recover.c: recovering an interrupted local migration
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
#include "qemu_migration.h"
#include "qemu_process.h"
#include "datatypes.h"
#include "domain_cgroup.h"
#include "domain_driver.h"
#include "vircgroup.h"
#include "virerror.h"
#include "virfile.h"
#include "virlog.h"
#include "virnetdev.h"
#include "virpidfile.h"
#include "virprocess.h"
#include "viruuid.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_migration_local_recover");


/* Is the process recorded in @proc still that QEMU process? */
static bool
qemuMigrationLocalProcessIsAlive(qemuMigrationLocalProcess *proc)
{
    g_autofree char *cmdline = NULL;
    g_autofree char *path = NULL;
    int len;

    if (proc->pid <= 0 || !proc->libDir || virProcessKill(proc->pid, 0) < 0)
        return false;

    /* A recycled pid would not have the process's own lib dir (its master
     * key lives there) on its command line. The monitor socket path is
     * not enough: a QEMU that takes the socket as an fd never sees it. */
    path = g_strdup_printf("/proc/%lld/cmdline", (long long) proc->pid);
    if ((len = virFileReadAll(path, 1024 * 1024, &cmdline)) < 0)
        return false;

    return memmem(cmdline, len, proc->libDir, strlen(proc->libDir)) != NULL;
}


/* The pid of the new process that a daemon killed in phase LAUNCH never
 * recorded: the process wrote it to its pidfile when it was forked. */
static void
qemuMigrationLocalReadTargetPid(const char *stateDir,
                                const char *name,
                                qemuMigrationLocalProcess *proc)
{
    virDomainDef tmp = { .name = (char *) name, .id = proc->id };
    g_autofree char *path = qemuMigrationLocalPidfilePath(stateDir, &tmp);
    pid_t pid;

    if (!path || virPidFileReadPath(path, &pid) < 0)
        return;

    VIR_DEBUG("new process of the local migration of '%s': pid %lld from %s",
              name, (long long) pid, path);
    proc->pid = pid;
}


/* The cgroup of the process a restarted daemon discards, looked up while
 * the process still runs (its /proc entry says where it is). */
static virCgroup *
qemuMigrationLocalProcessCgroup(virQEMUDriver *driver,
                                virDomainObj *vm,
                                qemuMigrationLocalProcess *proc,
                                char **machineName)
{
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(driver);
    virCgroup *cgroup = NULL;

    *machineName = NULL;
    if (!driver->privileged || !virCgroupAvailable() || proc->pid <= 0 ||
        proc->id == vm->def->id)
        return NULL;

    *machineName = virDomainDriverGenerateMachineName("qemu",
                                                      driver->embeddedRoot,
                                                      proc->id, vm->def->name,
                                                      driver->privileged);
    if (virCgroupNewDetectMachine(vm->def->name, "qemu", proc->pid,
                                  cfg->cgroupControllers, *machineName,
                                  &cgroup) < 0) {
        VIR_WARN("cannot find the cgroup of process %lld: %s",
                 (long long) proc->pid, virGetLastErrorMessage());
        virResetLastError();
        return NULL;
    }

    return cgroup;
}


/* The process a restarted daemon adopts ran as the destination of a
 * hand-over, with the migration parameter on: as the source of the next
 * migration it would send TAPs that no destination waits for. The job
 * resets it once the process runs; the daemon that died could not. */
static void
qemuMigrationLocalRecoverParams(virDomainObj *vm,
                                qemuMigrationLocal *local)
{
    g_autoptr(qemuMigrationParams) params = NULL;
    const qemuMigrationLocalDialect *dialect;

    if (!(dialect = qemuMigrationLocalDialectGet(local->generation)))
        return;

    params = qemuMigrationParamsNew();
    if (qemuMigrationParamsSetBool(params, dialect->param, false) < 0 ||
        qemuMigrationParamsApply(vm, VIR_ASYNC_JOB_NONE, params, 0) < 0) {
        VIR_WARN("cannot reset the hand-over parameter of '%s': %s",
                 vm->def->name, virGetLastErrorMessage());
        virResetLastError();
    }
}


/* Give a discarded process's port back to its network, as its stop
 * would have. Failing leaves a stale port, not a broken domain. */
static void
qemuMigrationLocalReleasePort(qemuMigrationLocalPort *port)
{
    g_autoptr(virConnect) conn = NULL;
    g_autoptr(virDomainNetDef) iface = NULL;

    if (!port->network)
        return;

    /* the interface as far as its port is concerned (patch 0027) */
    iface = g_new0(virDomainNetDef, 1);
    iface->type = VIR_DOMAIN_NET_TYPE_NETWORK;
    iface->data.network.name = g_strdup(port->network);
    if (virUUIDParse(port->id, iface->data.network.portid) < 0 ||
        !(conn = virGetConnectNetwork()) ||
        virDomainNetReleaseActualDevice(conn, iface) < 0) {
        VIR_WARN("cannot release port %s of network %s: %s",
                 port->id, port->network, virGetLastErrorMessage());
        virResetLastError();
        return;
    }

    VIR_INFO("released port %s of network %s", port->id, port->network);
}


/**
 * qemuMigrationLocalRecover:
 *
 * Called when a restarted daemon finds @vm with the outgoing migration
 * @job. For a local migration it discards the process that is not the
 * domain's (the new one before switchover, the old one after) together
 * with its TAPs' <downscript> and its network ports.
 *
 * Returns 1 if the domain already runs on its new process and nothing is
 * left to recover, 0 if the usual recovery of an interrupted outgoing
 * migration (cancel and resume) must follow, -1 on error.
 */
int
qemuMigrationLocalRecover(virQEMUDriver *driver,
                          virDomainObj *vm,
                          virDomainJobObj *job)
{
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(driver);
    qemuDomainJobPrivate *jobPriv = job->privateData;
    qemuMigrationLocal *local = jobPriv->local;
    qemuMigrationLocalProcess *other;
    g_autofree char *otherPidfile = NULL;
    g_autofree bool *created = NULL;
    g_autoptr(virCgroup) otherCgroup = NULL;
    g_autofree char *otherMachine = NULL;
    bool adopted;
    qemuMigrationLocalWhich which;
    size_t i;

    if (job->asyncJob != VIR_ASYNC_JOB_MIGRATION_OUT || !local)
        return 0;

    adopted = local->phase == QEMU_MIGRATION_LOCAL_PHASE_CLEANUP;
    other = adopted ? &local->source : &local->target;
    which = adopted ? QEMU_MIGRATION_LOCAL_PROCESS_OLD : QEMU_MIGRATION_LOCAL_PROCESS_NEW;

    /* killed while the new process started: its pid is in its pidfile */
    if (!adopted && other->pid <= 0)
        qemuMigrationLocalReadTargetPid(cfg->stateDir, vm->def->name, other);

    /* until LAUNCH ended, a TAP named in the state exists only if the new
     * process got as far as creating it (and running its <script>) */
    created = g_new0(bool, local->nnets);
    for (i = 0; i < local->nnets; i++) {
        const char *tap = adopted ? local->nets[i].ifname : local->nets[i].newIfname;

        created[i] = tap &&
            (local->phase > QEMU_MIGRATION_LOCAL_PHASE_LAUNCH ||
             virNetDevExists(tap) == 1);
    }

    VIR_INFO("interrupted local migration of '%s' in phase %s: discarding the %s process %lld",
             vm->def->name, qemuMigrationLocalPhaseTypeToString(local->phase),
             adopted ? "old" : "new", (long long) other->pid);

    if (qemuMigrationLocalProcessIsAlive(other)) {
        otherCgroup = qemuMigrationLocalProcessCgroup(driver, vm, other,
                                                      &otherMachine);
        if (virProcessKillPainfully(other->pid, true) < 0)
            VIR_WARN("cannot kill process %lld", (long long) other->pid);
    }

    /* what qemuProcessStop would have removed with the process */
    if (virDomainCgroupRemoveCgroup(vm, otherCgroup, otherMachine) < 0) {
        VIR_WARN("cannot remove the cgroup of process %lld: %s",
                 (long long) other->pid, virGetLastErrorMessage());
        virResetLastError();
    }

    if (other->monitor)
        unlink(other->monitor);
    if (other->libDir)
        virFileDeleteTree(other->libDir);
    if (other->channelTargetDir)
        virFileDeleteTree(other->channelTargetDir);
    if (qemuMigrationLocalMayRemoveMemory(other->memoryBackingDir,
                                          QEMU_DOMAIN_PRIVATE(vm)->memoryBackingDir))
        virFileDeleteTree(other->memoryBackingDir);

    /* its TAPs went away with it; what is left is the <downscript> */
    for (i = 0; i < local->nnets; i++) {
        const char *tap = adopted ? local->nets[i].ifname : local->nets[i].newIfname;
        size_t j;

        if (!created[i] || !qemuMigrationLocalMayTearDown(&local->nets[i], which))
            continue;

        for (j = 0; j < vm->def->nnets; j++) {
            virDomainNetDef *net = vm->def->nets[j];

            if (STREQ_NULLABLE(net->info.alias, local->nets[i].alias) &&
                net->downscript)
                ignore_value(virNetDevRunEthernetScript(tap, net->downscript));
        }
    }

    /* and its own network ports (a handed-over TAP keeps its one) */
    for (i = 0; i < local->nnets; i++) {
        if (qemuMigrationLocalMayTearDown(&local->nets[i], which))
            qemuMigrationLocalReleasePort(adopted ? &local->nets[i].port :
                                                    &local->nets[i].newPort);
    }

    if (adopted) {
        virDomainDef tmp = { .name = vm->def->name, .id = vm->def->id };

        otherPidfile = qemuMigrationLocalPidfilePath(cfg->stateDir, &tmp);
        if (otherPidfile && QEMU_DOMAIN_PRIVATE(vm)->pidfile &&
            rename(otherPidfile, QEMU_DOMAIN_PRIVATE(vm)->pidfile) < 0 &&
            errno != ENOENT)
            VIR_WARN("cannot rename %s: %s", otherPidfile, g_strerror(errno));
    } else {
        virDomainDef tmp = { .name = vm->def->name, .id = other->id };

        if ((otherPidfile = qemuMigrationLocalPidfilePath(cfg->stateDir, &tmp)))
            unlink(otherPidfile);
    }

    if (adopted)
        qemuMigrationLocalRecoverParams(vm, local);
    g_clear_pointer(&jobPriv->local, qemuMigrationLocalFree);

    if (!adopted) {
        const char *why;

        /* the old process keeps running: its later migrations copy */
        if (job->apiFlags & VIR_MIGRATE_LOCAL_SHARED_MEMORY &&
            qemuMigrationLocalMemoryOf(vm->def, &why) == QEMU_MIGRATION_LOCAL_MEMORY_MEMFD)
            qemuMigrationLocalCprReset(vm, VIR_ASYNC_JOB_NONE);
        return 0;
    }

    if (virDomainObjGetState(vm, NULL) == VIR_DOMAIN_PAUSED &&
        qemuProcessStartCPUs(driver, vm, VIR_DOMAIN_RUNNING_MIGRATED,
                             VIR_ASYNC_JOB_NONE) < 0)
        return -1;

    return 1;
}
