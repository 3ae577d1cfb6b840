/*
 * qemu_migration_local_cpr.c: a local migration in mode cpr-transfer
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

#include <sys/stat.h>

#include "qemu_migration_local.h"
#define LIBVIRT_QEMU_MIGRATION_LOCALPRIV_H_ALLOW
#include "qemu_migration_localpriv.h"
#include "qemu_domain.h"
#include "qemu_migration.h"
#include "virerror.h"
#include "virlog.h"
#include "virpidfile.h"
#include "virprocess.h"
#include "virtime.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_migration_local_cpr");

/* how long the new process may take to listen for the CPR state: as long
 * as libvirt waits for a monitor */
#define QEMU_MIGRATION_LOCAL_CPR_WAIT_MS (30 * 1000)


/* Whether the process @vm, being started for a local migration whose API
 * @flags are those of its job, takes the guest's memory from cpr-transfer. */
bool
qemuMigrationLocalIsCpr(virDomainObj *vm)
{
    const char *why;

    return QEMU_DOMAIN_PRIVATE(vm)->localShadow &&
        vm->job && vm->job->apiFlags & VIR_MIGRATE_LOCAL_SHARED_MEMORY &&
        qemuMigrationLocalMemoryOf(vm->def, &why) == QEMU_MIGRATION_LOCAL_MEMORY_MEMFD;
}


/* The UNIX socket the new process @vm listens on for the CPR state: its
 * own directory, which nothing else uses. */
char *
qemuMigrationLocalCprPath(virDomainObj *vm)
{
    return g_build_filename(QEMU_DOMAIN_PRIVATE(vm)->libDir, "cpr.sock", NULL);
}


/* The one it listens on for the stream, as "unix:PATH" with @uri. The
 * source connects to it outside any monitor command, once the new process
 * has the CPR state: an fd passed to it by getfd cannot be used there. */
char *
qemuMigrationLocalCprMainPath(virDomainObj *vm,
                              bool uri)
{
    g_autofree char *path = g_build_filename(QEMU_DOMAIN_PRIVATE(vm)->libDir,
                                             "migrate.sock", NULL);

    return uri ? g_strdup_printf("unix:%s", path) : g_steal_pointer(&path);
}


/**
 * qemuMigrationLocalBuildIncoming:
 * @cmd: the command line of @vm
 * @vm: a process being started
 *
 * A new process of a local migration in mode cpr-transfer gets a second
 * -incoming besides the main channel's: the CPR channel, on which it
 * reads the CPR state (the memory fds, and the TAP fds of taps with
 * cpr=on) before it creates its devices and its monitor.
 *
 * Returns 0 on success, -1 on error.
 */
int
qemuMigrationLocalBuildIncoming(virCommand *cmd,
                                virDomainObj *vm)
{
    g_autofree char *path = NULL;
    g_autoptr(virJSONValue) addr = NULL;
    g_autoptr(virJSONValue) channel = NULL;
    g_autofree char *arg = NULL;

    if (!qemuMigrationLocalIsCpr(vm))
        return 0;

    path = qemuMigrationLocalCprPath(vm);
    if (virJSONValueObjectAdd(&addr,
                              "s:transport", "socket",
                              "s:type", "unix",
                              "s:path", path,
                              NULL) < 0 ||
        virJSONValueObjectAdd(&channel,
                              "s:channel-type", "cpr",
                              "a:addr", &addr,
                              NULL) < 0 ||
        !(arg = virJSONValueToString(channel, false)))
        return -1;

    virCommandAddArgList(cmd, "-incoming", arg, NULL);
    return 0;
}


/* The source's side of a job in mode cpr-transfer, run in a thread of its
 * own: the job's thread is inside qemuProcessLaunch until the new process
 * has the CPR state, which the source sends. */
struct _qemuMigrationLocalCpr {
    virQEMUDriver *driver;
    virDomainObj *vm;
    char *mainPath;      /* the main channel */
    char *path;          /* the CPR channel */
    char *pidfile;       /* of the new process */
    unsigned int flags;
    unsigned long resource;
    qemuMigrationParams *migParams;

    virThread thread;
    bool sent;           /* the source's migrate was issued */
    int rc;
    virErrorPtr err;
};


/* Kills the new process: its launch, waiting for a monitor it never
 * creates without the CPR state, fails instead of waiting forever. */
static void
qemuMigrationLocalCprKillTarget(qemuMigrationLocalCpr *cpr)
{
    pid_t pid = 0;

    if (virPidFileReadPath(cpr->pidfile, &pid) < 0 || pid <= 0)
        return;
    VIR_DEBUG("killing new process %lld", (long long) pid);
    ignore_value(virProcessKill(pid, SIGKILL));
}


/* Waits, with @vm unlocked, until the new process listens on the CPR
 * channel. */
static int
qemuMigrationLocalCprWaitListen(qemuMigrationLocalCpr *cpr)
{
    virTimeBackOffVar timebackoff;
    struct stat sb;
    pid_t pid = 0;

    if (virTimeBackOffStart(&timebackoff, 1, QEMU_MIGRATION_LOCAL_CPR_WAIT_MS) < 0)
        return -1;

    while (virTimeBackOffWait(&timebackoff)) {
        if (stat(cpr->path, &sb) == 0 && S_ISSOCK(sb.st_mode))
            return 0;
        if (virPidFileReadPath(cpr->pidfile, &pid) == 0 && pid > 0 &&
            virProcessKill(pid, 0) < 0) {
            virReportError(VIR_ERR_OPERATION_FAILED, "%s",
                           _("the new process of the local migration exited before it listened for the CPR state"));
            return -1;
        }
    }

    virReportError(VIR_ERR_OPERATION_TIMEOUT,
                   _("the new process of the local migration did not listen for the CPR state on %1$s"),
                   cpr->path);
    return -1;
}


/* Sets the migration mode of the process of @vm (locked, in @asyncJob). */
static int
qemuMigrationLocalCprSetMode(virDomainObj *vm,
                             virDomainAsyncJob asyncJob,
                             const char *mode)
{
    g_autoptr(virJSONValue) params = NULL;
    int rc;

    if (virJSONValueObjectAdd(&params, "s:mode", mode, NULL) < 0 ||
        qemuDomainObjEnterMonitorAsync(vm, asyncJob) < 0)
        return -1;
    rc = qemuMonitorSetMigrationParams(QEMU_DOMAIN_PRIVATE(vm)->mon, &params);
    qemuDomainObjExitMonitor(vm);
    return rc;
}


static void
qemuMigrationLocalCprThread(void *opaque)
{
    qemuMigrationLocalCpr *cpr = opaque;
    virDomainObj *vm = cpr->vm;

    cpr->rc = -1;
    if (qemuMigrationLocalCprWaitListen(cpr) < 0)
        goto done;

    virObjectLock(vm);
    qemuDomainObjStartJobPhase(vm, QEMU_MIGRATION_PHASE_PERFORM3);
    if (virDomainObjIsActive(vm) &&
        qemuMigrationLocalCprSetMode(vm, VIR_ASYNC_JOB_MIGRATION_OUT,
                                     "cpr-transfer") == 0) {
        cpr->sent = true;
        cpr->rc = qemuMigrationSrcRunLocal(cpr->driver, vm, -1,
                                           cpr->mainPath, cpr->path,
                                           cpr->flags, cpr->resource,
                                           cpr->migParams);
    } else if (!virDomainObjIsActive(vm)) {
        virReportError(VIR_ERR_OPERATION_FAILED, "%s",
                       _("domain is not running"));
    }
    qemuDomainObjReleaseAsyncJob(vm);
    virObjectUnlock(vm);

 done:
    if (cpr->rc < 0) {
        cpr->err = virSaveLastError();
        /* whatever the new process got, it will not get the rest */
        qemuMigrationLocalCprKillTarget(cpr);
    }
    VIR_DEBUG("source side of the cpr-transfer of '%s' ended: %d (migrate %s)",
              vm->def->name, cpr->rc, cpr->sent ? "sent" : "not sent");
}


/**
 * qemuMigrationLocalCprStart:
 *
 * Starts the source's side of a job in mode cpr-transfer from @vm
 * (locked, its async job this thread's) into the channels of @shadow,
 * whose launch the caller then runs: the thread takes the async job over.
 * qemuMigrationLocalCprJoin must follow.
 *
 * Returns the thread's state, or NULL with an error.
 */
qemuMigrationLocalCpr *
qemuMigrationLocalCprStart(virQEMUDriver *driver,
                           virDomainObj *vm,
                           virDomainObj *shadow,
                           unsigned int flags,
                           unsigned long resource,
                           qemuMigrationParams *migParams)
{
    g_autofree qemuMigrationLocalCpr *cpr = g_new0(qemuMigrationLocalCpr, 1);
    g_autofree char *name = g_strdup_printf("cpr-%s", vm->def->name);

    cpr->driver = driver;
    cpr->vm = vm;
    cpr->mainPath = qemuMigrationLocalCprMainPath(shadow, false);
    cpr->path = qemuMigrationLocalCprPath(shadow);
    cpr->pidfile = g_strdup(QEMU_DOMAIN_PRIVATE(shadow)->pidfile);
    cpr->flags = flags;
    cpr->resource = resource;
    cpr->migParams = migParams;

    qemuDomainObjReleaseAsyncJob(vm);
    if (virThreadCreateFull(&cpr->thread, true, qemuMigrationLocalCprThread,
                            name, false, cpr) < 0) {
        virReportSystemError(errno, "%s",
                             _("cannot start the source's side of a cpr-transfer"));
        qemuDomainObjStartJobPhase(vm, QEMU_MIGRATION_PHASE_PERFORM3);
        g_free(cpr->mainPath);
        g_free(cpr->path);
        g_free(cpr->pidfile);
        return NULL;
    }
    return g_steal_pointer(&cpr);
}


/**
 * qemuMigrationLocalCprJoin:
 *
 * Waits for the source's side of a cpr-transfer to end, with @vm and the
 * new process unlocked (the thread locks @vm), then locks @vm and takes
 * its async job back. With @kill, the new process is killed first, which
 * ends a source still waiting for it. The thread's error becomes the last
 * error when none is set, or with @cause when the source's migrate was
 * issued: then it says why the new process went away.
 *
 * Returns the source's result: 0 when its migration completed.
 */
int
qemuMigrationLocalCprJoin(qemuMigrationLocalCpr **cprp,
                          bool kill,
                          bool cause)
{
    qemuMigrationLocalCpr *cpr = *cprp;
    int rc;

    if (!cpr)
        return -1;

    if (kill)
        qemuMigrationLocalCprKillTarget(cpr);
    virThreadJoin(&cpr->thread);

    virObjectLock(cpr->vm);
    qemuDomainObjStartJobPhase(cpr->vm, QEMU_MIGRATION_PHASE_PERFORM3);
    rc = cpr->rc;
    if (cpr->err &&
        (virGetLastErrorCode() == VIR_ERR_OK || (cause && cpr->sent)))
        virSetError(cpr->err);

    virFreeError(cpr->err);
    g_free(cpr->mainPath);
    g_free(cpr->path);
    g_free(cpr->pidfile);
    g_clear_pointer(cprp, g_free);
    return rc;
}


/* After a failed cpr-transfer from the process of @vm (locked, in
 * @asyncJob), which keeps running the guest: its later migrations copy,
 * and QEMU refuses a migrate without a CPR channel in that mode. */
void
qemuMigrationLocalCprReset(virDomainObj *vm,
                           virDomainAsyncJob asyncJob)
{
    virErrorPtr orig_err;

    virErrorPreserveLast(&orig_err);
    if (virDomainObjIsActive(vm) &&
        qemuMigrationLocalCprSetMode(vm, asyncJob, "normal") < 0)
        VIR_WARN("cannot reset the migration mode of '%s'", vm->def->name);
    virErrorRestore(&orig_err);
}


/**
 * qemuMigrationLocalCheckCprNets:
 *
 * In mode cpr-transfer a tap netdev with cpr=on puts its TAP into the
 * CPR state whatever the job asked for; a new process that does not take
 * it fails to load the stream. So a job without backend transfer is
 * refused for a process of @vm whose interfaces have such taps.
 *
 * Returns 0 if the job may run, -1 with an error naming the interface.
 */
int
qemuMigrationLocalCheckCprNets(virDomainObj *vm,
                               bool backendTransfer)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    size_t i;

    if (backendTransfer)
        return 0;

    /* a tap has cpr=on when its process started it so, or took it so */
    if (priv->localGeneration != QEMU_MIGRATION_LOCAL_GENERATION_CPR &&
        (priv->localGeneration != QEMU_MIGRATION_LOCAL_GENERATION_NONE ||
         !virQEMUCapsGet(priv->qemuCaps, QEMU_CAPS_NETDEV_TAP_CPR)))
        return 0;

    for (i = 0; i < vm->def->nnets; i++) {
        virDomainNetDef *net = vm->def->nets[i];

        if (qemuMigrationLocalNetIsHandedOver(net)) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("interface '%1$s' of domain '%2$s' has a tap with cpr=on, which cpr-transfer hands over: sharing memfd memory (--local-shared-memory) needs --local-backend-transfer"),
                           NULLSTR(net->info.alias), vm->def->name);
            return -1;
        }
    }
    return 0;
}
