/*
 * qemu_migration_local.c: same-host live migration into a new QEMU process
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

/*
 * A local migration replaces the QEMU process of a running domain with a
 * new one on the same host, typically running a newer QEMU binary. It is
 * one asynchronous job on one virDomainObj: there is never a second domain
 * object and never a Begin/Prepare/Perform/Finish/Confirm exchange of the
 * daemon with itself. The phases, and who owns what in each:
 *
 *  PREPARE     The request is checked (flags, same host, interfaces, the
 *              capabilities of both binaries) and the new process gets its
 *              own identity: domain id, monitor socket, lib and channel
 *              dirs. Nothing exists yet; a failure simply ends the job.
 *
 *  LAUNCH      The new process gets its identity (id, paths, pidfile,
 *              ports, the names of its new TAPs) with the domain locked,
 *              and the status XML records it; then it starts paused with
 *              "-incoming defer". An interface that is handed over gets a
 *              netdev that waits for the TAP to arrive in the stream
 *              (owner: SOURCE); any other interface gets a new TAP on the
 *              same bridge, which belongs to the new process (newIfname).
 *              Security labels and locks are the domain's: they are
 *              neither applied nor restored. Failure: kill the new
 *              process, release only what it created (its TAPs), end the
 *              job. A daemon restarted in this phase finds the process by
 *              its pidfile and a TAP by its recorded name.
 *
 *  MIGRATE     The two processes are joined by a socketpair(): the new
 *              process inherits one end at exec ("-incoming defer", then
 *              migrate-incoming "fd:N"), the old one gets the other with
 *              getfd; the old process streams its state,
 *              handed-over TAPs included (owner: HANDOVER, both hold the
 *              fd; no teardown may touch it). Progress and abort work as
 *              for any outgoing migration. Failure: as in ROLLBACK.
 *
 *  SWITCHOVER  The old process completed and is paused. The domain adopts
 *              the new process: pid, definition, private data and paths
 *              are swapped with the holder object, the domain's monitor
 *              connects to the new process and the status XML is saved
 *              with it (phase CLEANUP, the old process recorded as
 *              <source>); then the new process is resumed. Handed-over
 *              TAPs become TARGET. Until the status is saved a restarted
 *              daemon finds the old process and rolls back. The guest is
 *              stopped throughout, so only this is done here; what
 *              libvirt reads back from the new process (devices, disks,
 *              rx filters) and its migration parameters wait until it
 *              runs.
 *
 *  CLEANUP     The old process is killed and its private files removed.
 *              Host-side teardown is limited to what only the old process
 *              used: its classic TAPs. What the new process uses (handed-
 *              over TAPs, bridge ports, filters, QoS, labels, locks) stays.
 *
 *  ROLLBACK    A failure before SWITCHOVER: the new process is killed
 *              without any network or label teardown except of its own
 *              classic TAPs, migration parameters are reset and the old
 *              process is resumed if it was running. Handed-over TAPs go
 *              back to SOURCE; the guest never stops for good.
 *
 * The phase, the new process's identity and every interface's hand-over
 * and owner are kept in the job's part of the status XML
 * (<localMigration>), so that a daemon restarted in the middle can tell
 * which process to keep and what each one may release: the stop of either
 * process runs the teardown of a TAP only where the table of
 * qemu_migration_local_handover.c lets it (qemuMigrationLocalMayTearDown).
 */

#include <config.h>

#include "qemu_migration_local.h"
#define LIBVIRT_QEMU_MIGRATION_LOCALPRIV_H_ALLOW
#include "qemu_migration_localpriv.h"
#include "qemu_alias.h"
#include "qemu_domain.h"
#include "qemu_migration.h"
#include "qemu_process.h"
#include "datatypes.h"
#include "domain_cgroup.h"
#include "domain_driver.h"
#include "viralloc.h"
#include "vircgroup.h"
#include "virerror.h"
#include "virfile.h"
#include "virlog.h"
#include "virnetdev.h"
#include "virpidfile.h"
#include "virsocketaddr.h"
#include "virprocess.h"
#include "virutil.h"
#include "virtime.h"
#include "viruri.h"
#include "viruuid.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_migration_local");

/* ------------------------------------------------------------------------
 * Test stop points
 *
 * The fault tests must hit the phase they name every time. With
 * LIBVIRT_LOCALMIG_TEST_STOP_DIR in the daemon's environment (the tests
 * set it; nothing else does), a job that reaches point P while the file
 * DIR/P exists creates DIR/P.reached and waits, with the locks it holds
 * there, until DIR/P is removed (at most two minutes). Without the
 * variable a point costs one getenv().
 */

#define QEMU_MIGRATION_LOCAL_TEST_STOP_ENV "LIBVIRT_LOCALMIG_TEST_STOP_DIR"
#define QEMU_MIGRATION_LOCAL_TEST_STOP_MAX_MS (120 * 1000)

static void
qemuMigrationLocalTestStop(const char *point)
{
    const char *dir = getenv(QEMU_MIGRATION_LOCAL_TEST_STOP_ENV);
    g_autofree char *armed = NULL;
    g_autofree char *reached = NULL;
    unsigned int waited = 0;

    if (!dir)
        return;

    armed = g_build_filename(dir, point, NULL);
    if (!virFileExists(armed))
        return;

    reached = g_strdup_printf("%s.reached", armed);
    if (virFileTouch(reached, 0600) < 0)
        return;

    VIR_WARN("local migration held at test point '%s'", point);
    while (virFileExists(armed) &&
           waited < QEMU_MIGRATION_LOCAL_TEST_STOP_MAX_MS) {
        g_usleep(10 * 1000);
        waited += 10;
    }
    VIR_WARN("local migration released from test point '%s'", point);
}


/* PREPARE for --local-backend-transfer: both binaries must speak a
 * generation of the interface, which is chosen here for the whole job;
 * its parameter is set on both sides. */
static int
qemuMigrationLocalSetupBackendTransfer(virDomainObj *vm,
                                       virDomainDef *newDef,
                                       virQEMUCaps *dstCaps,
                                       qemuMigrationParams *dstParams,
                                       qemuMigrationParams *srcParams,
                                       bool cpr,
                                       qemuMigrationLocalGeneration *generation)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    const qemuMigrationLocalDialect *dialect;

    if (qemuMigrationLocalCheckHandover(vm->def) < 0)
        return -1;

    if (!(dialect = qemuMigrationLocalDialectSelect(priv->qemuCaps,
                                                    vm->def->emulator,
                                                    priv->localGeneration,
                                                    dstCaps,
                                                    newDef->emulator,
                                                    cpr)))
        return -1;

    if (dialect->param != QEMU_MIGRATION_PARAM_LAST &&
        (qemuMigrationParamsSetBool(dstParams, dialect->param, true) < 0 ||
         qemuMigrationParamsSetBool(srcParams, dialect->param, true) < 0))
        return -1;

    *generation = dialect->generation;
    return 0;
}


/* The capabilities of the binary the new process runs. A job looks them
 * up once: each lookup checks the cached probe and may probe the binary
 * again, which takes seconds. A failure names the binary and what the
 * probe said (patch 0022 keeps that error; a cache may still fail
 * without one). */
virQEMUCaps *
qemuMigrationLocalLookupCaps(virQEMUDriver *driver,
                             const char *emulator)
{
    virQEMUCaps *caps;
    virErrorPtr err;

    virResetLastError();
    if ((caps = virQEMUCapsCacheLookup(driver->qemuCapsCache, emulator)))
        return caps;

    if ((err = virGetLastError()) && err->message) {
        g_autofree char *cause = g_strdup(err->message);

        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("cannot probe the capabilities of QEMU binary '%1$s' for a local migration: %2$s"),
                       emulator, cause);
    } else {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("cannot probe the capabilities of QEMU binary '%1$s' for a local migration; the daemon's log has the probe's messages"),
                       emulator);
    }
    return NULL;
}


/* The <emulator> of the new definition before it is parsed, so that the
 * parser works with the capabilities the job looked up. NULL when @xml
 * leaves the choice to the default binary. */
static char *
qemuMigrationLocalNewEmulator(const char *xml)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctxt = NULL;

    if (!(doc = virXMLParseStringCtxt(xml, _("(domain_definition)"), &ctxt)))
        return NULL;

    return virXPathString("string(/domain/devices/emulator[1])", ctxt);
}


/**
 * qemuMigrationLocalKeepSeclabels:
 *
 * Give @newDef the security labels of the running @oldDef, whatever the
 * new definition said: the new process runs with the domain's identity
 * (DAC user, SELinux context, AppArmor profile), which every file the
 * guest uses is labelled for and which stays reserved for the domain.
 * Its start neither generates nor applies labels, and the stop of
 * whichever process is discarded neither restores nor releases them
 * (localShadow in qemu_process.c).
 */
void
qemuMigrationLocalKeepSeclabels(const virDomainDef *oldDef,
                                virDomainDef *newDef)
{
    size_t i;

    for (i = 0; i < newDef->nseclabels; i++)
        virSecurityLabelDefFree(newDef->seclabels[i]);
    g_free(newDef->seclabels);

    newDef->nseclabels = oldDef->nseclabels;
    newDef->seclabels = g_new0(virSecurityLabelDef *, oldDef->nseclabels);
    for (i = 0; i < oldDef->nseclabels; i++) {
        const virSecurityLabelDef *src = oldDef->seclabels[i];
        virSecurityLabelDef *dst = virSecurityLabelDefNew(src->model);

        dst->label = g_strdup(src->label);
        dst->imagelabel = g_strdup(src->imagelabel);
        dst->baselabel = g_strdup(src->baselabel);
        dst->type = src->type;
        dst->relabel = src->relabel;
        dst->implicit = src->implicit;
        newDef->seclabels[i] = dst;
    }
}


/* The definition the new process starts with: @xmlin if given (another
 * <emulator> typically), which must keep the guest ABI, or else the
 * running definition as it would be migrated. @caps is set to the
 * capabilities of its binary. */
static virDomainDef *
qemuMigrationLocalNewDef(virQEMUDriver *driver,
                         virDomainObj *vm,
                         const char *xmlin,
                         virQEMUCaps **caps)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    g_autofree char *xml = NULL;
    g_autofree char *emulator = NULL;
    g_autoptr(virQEMUCaps) newCaps = NULL;
    g_autoptr(virDomainDef) def = NULL;

    if (!xmlin) {
        if (!(xml = qemuDomainDefFormatLive(driver, priv->qemuCaps, vm->def,
                                            priv->origCPU, false, true)))
            return NULL;
        xmlin = xml;
        emulator = g_strdup(vm->def->emulator);
    } else {
        /* no stale error may pass for a parse failure below */
        virResetLastError();
        if (!(emulator = qemuMigrationLocalNewEmulator(xmlin)) &&
            virGetLastError())
            return NULL;
    }

    /* without an <emulator>, post-parse picks the default one first */
    if (emulator && !(newCaps = qemuMigrationLocalLookupCaps(driver, emulator)))
        return NULL;

    if (!(def = qemuMigrationAnyPrepareDef(driver, newCaps, xmlin, NULL, NULL)))
        return NULL;

    if (!newCaps && !(newCaps = qemuMigrationLocalLookupCaps(driver, def->emulator)))
        return NULL;

    if (STRNEQ(def->name, vm->def->name) ||
        memcmp(def->uuid, vm->def->uuid, VIR_UUID_BUFLEN) != 0) {
        virReportError(VIR_ERR_INVALID_ARG,
                       _("the destination XML of a local migration must describe domain '%1$s' itself"),
                       vm->def->name);
        return NULL;
    }

    /* another binary may run the domain, but not other devices */
    if (!qemuDomainCheckABIStability(driver, vm, def))
        return NULL;

    *caps = g_steal_pointer(&newCaps);
    return g_steal_pointer(&def);
}


static void
qemuMigrationLocalProcessRecord(qemuMigrationLocalProcess *proc,
                                virDomainObj *obj)
{
    qemuDomainObjPrivate *priv = obj->privateData;

    qemuMigrationLocalProcessClear(proc);
    memset(proc, 0, sizeof(*proc));
    proc->pid = obj->pid;
    proc->id = obj->def->id;
    if (priv->monConfig && priv->monConfig->type == VIR_DOMAIN_CHR_TYPE_UNIX)
        proc->monitor = g_strdup(priv->monConfig->data.nix.path);
    proc->libDir = g_strdup(priv->libDir);
    proc->channelTargetDir = g_strdup(priv->channelTargetDir);
    proc->memoryBackingDir = g_strdup(priv->memoryBackingDir);
    proc->emulator = g_strdup(obj->def->emulator);
}


/* The object that holds the new process until the domain adopts it (and
 * the old one afterwards). It is never in the domain list. */
static virDomainObj *
qemuMigrationLocalShadowNew(virQEMUDriver *driver,
                            virDomainDef **def,
                            virQEMUCaps *caps,
                            qemuMigrationLocalGeneration generation)
{
    virDomainObj *shadow;

    if (!(shadow = virDomainObjNew(driver->xmlopt)))
        return NULL;

    QEMU_DOMAIN_PRIVATE(shadow)->localShadow = true;
    /* the process starts with these instead of looking them up again */
    QEMU_DOMAIN_PRIVATE(shadow)->qemuCaps = virQEMUCapsNewCopy(caps);
    QEMU_DOMAIN_PRIVATE(shadow)->localGeneration = generation;
    shadow->def = g_steal_pointer(def);
    return shadow;
}


static void
qemuMigrationLocalShadowFree(virDomainObj **shadow)
{
    if (!*shadow)
        return;

    if ((*shadow)->job->asyncJob != VIR_ASYNC_JOB_NONE)
        virDomainObjEndAsyncJob(*shadow);
    virObjectUnlock(*shadow);
    g_clear_pointer(shadow, virObjectUnref);
}


char *
qemuMigrationLocalPidfilePath(const char *stateDir,
                              const virDomainDef *def)
{
    g_autofree char *name = g_strdup_printf("%s.local-%d", def->name, def->id);

    return virPidFileBuildPath(stateDir, name);
}


void
qemuMigrationLocalShadowEvent(virDomainObj *vm,
                              int eventType)
{
    if (eventType == QEMU_PROCESS_EVENT_MONITOR_EOF) {
        /* the job waiting on this object stops at once */
        VIR_DEBUG("new process of local migration of '%s' went away",
                  vm->def->name);
        QEMU_DOMAIN_PRIVATE(vm)->beingDestroyed = true;
        virDomainObjBroadcast(vm);
    }
}


/**
 * qemuMigrationLocalSavesStop:
 *
 * Whether the status XML of @vm (locked) must be written when its process
 * stops. Not while a local migration moves it to a new process: the
 * migration saves the status once the new process is the domain's, and a
 * daemon restarted before reads the paused state from QEMU. A synced write
 * in the STOP handler would hold back the old process's completion event,
 * which the guest waits for (30-110 ms in some benchmark runs).
 */
bool
qemuMigrationLocalSavesStop(virDomainObj *vm)
{
    qemuDomainJobPrivate *jobPriv = vm->job->privateData;

    return !(vm->job->asyncJob == VIR_ASYNC_JOB_MIGRATION_OUT &&
             jobPriv && jobPriv->local);
}


/* Classic TAPs of the new process are named before it starts, so that the
 * status XML of phase LAUNCH can name them: a daemon restarted while the
 * process starts then knows which TAPs it may have created. */
static int
qemuMigrationLocalNameTaps(qemuMigrationLocal *local,
                           virDomainDef *def)
{
    size_t i;

    for (i = 0; i < def->nnets; i++) {
        virDomainNetDef *net = def->nets[i];
        virDomainNetType type = virDomainNetGetActualType(net);
        qemuMigrationLocalNet *lnet = qemuMigrationLocalFindNet(local, net->info.alias);

        if ((lnet && lnet->handover) ||
            (type != VIR_DOMAIN_NET_TYPE_BRIDGE &&
             type != VIR_DOMAIN_NET_TYPE_ETHERNET) ||
            net->ifname)
            continue;

        if (virNetDevGenerateName(&net->ifname, VIR_NET_DEV_GEN_NAME_VNET) < 0)
            return -1;
    }

    return 0;
}


/* LAUNCH, first half, with the domain locked: everything that gives the
 * new process its identity (id, paths, pidfile, network ports and TAP
 * names), so that it is in the status XML before the process exists. */
static int
qemuMigrationLocalLaunchPrepare(virQEMUDriver *driver,
                                virDomainObj *vm,
                                virDomainObj *shadow,
                                qemuMigrationLocal *local,
                                qemuMigrationLocalMemory memory,
                                unsigned int flags)
{
    if (qemuMigrationJobStart(shadow, VIR_ASYNC_JOB_MIGRATION_IN, flags) < 0)
        return -1;

    /* before qemuProcessInit gives the process a directory of its own;
     * a memfd is in none */
    if (memory == QEMU_MIGRATION_LOCAL_MEMORY_FILE)
        qemuMigrationLocalShareMemory(vm, shadow);

    if (qemuProcessInit(driver, shadow, NULL, VIR_ASYNC_JOB_MIGRATION_IN,
                        true, 0) < 0 ||
        qemuProcessPrepareDomain(driver, shadow, 0) < 0 ||
        qemuProcessPrepareHost(driver, shadow, 0) < 0 ||
        qemuMigrationLocalNameTaps(local, shadow->def) < 0)
        return -1;

    return 0;
}


/**
 * qemuMigrationLocalMonitorEOFIsStale:
 *
 * Whether an EOF on @mon, seen on @vm (locked), is not the domain's own.
 * A local migration replaces the domain's monitor: the EOF of a monitor
 * the domain no longer uses, or of the new process's while the domain
 * adopts it (the job sees that failure itself and takes the old process
 * back), must not stop the guest: the handler runs once the domain holds
 * the old process again, and would kill it.
 */
bool
qemuMigrationLocalMonitorEOFIsStale(virDomainObj *vm,
                                    qemuMonitor *mon)
{
    qemuDomainJobPrivate *jobPriv = vm->job->privateData;

    if (vm->job->asyncJob != VIR_ASYNC_JOB_MIGRATION_OUT ||
        !jobPriv || !jobPriv->local)
        return false;

    return jobPriv->local->adopting || QEMU_DOMAIN_PRIVATE(vm)->mon != mon;
}


/* LAUNCH, second half, with only @shadow locked: start the new process
 * paused, reading the stream from @fd, or in mode cpr-transfer from the
 * socket it listens on. */
static int
qemuMigrationLocalLaunch(virQEMUDriver *driver,
                         virDomainObj *shadow,
                         int fd,
                         qemuMigrationParams *dstParams,
                         unsigned int flags)
{
    qemuProcessIncomingDef *incoming = NULL;
    g_autoptr(virBitmap) noCaps = virBitmapNew(QEMU_MIGRATION_CAP_LAST);
    g_autofree char *from = NULL;
    int ret = -1;

    if (qemuMigrationLocalIsCpr(shadow)) {
        from = qemuMigrationLocalCprMainPath(shadow, true);
        fd = -1;
    }

    if (!(incoming = qemuProcessIncomingDefNew(driver, shadow, NULL,
                                               from ? from : "stdio",
                                               &fd, NULL, NULL, NULL)))
        goto cleanup;

    if (qemuProcessLaunch(NULL, driver, shadow, VIR_ASYNC_JOB_MIGRATION_IN,
                          incoming, NULL,
                          VIR_NETDEV_VPORT_PROFILE_OP_MIGRATE_IN_START,
                          0) < 0)
        goto cleanup;

    qemuMigrationLocalTestStop("launch");

    if (flags & VIR_MIGRATE_LOCAL_SHARED_MEMORY &&
        qemuMigrationLocalCheckMemoryTarget(shadow) < 0)
        goto cleanup;

    /* the source enables no capability that needs this side's consent */
    if (qemuMigrationParamsCheck(shadow, VIR_ASYNC_JOB_MIGRATION_IN,
                                 dstParams, noCaps, noCaps) < 0 ||
        qemuMigrationLocalDstRun(shadow, incoming->uri,
                                 VIR_ASYNC_JOB_MIGRATION_IN, dstParams,
                                 flags) < 0)
        goto cleanup;

    ret = 0;

 cleanup:
    qemuProcessIncomingDefFree(incoming);
    return ret;
}


#define QEMU_MIGRATION_LOCAL_SWAP(a, b) \
    G_STMT_START { \
        __typeof__(a) _tmp = (a); \
        (a) = (b); \
        (b) = _tmp; \
    } G_STMT_END

#define QEMU_MIGRATION_LOCAL_PRIV(field, kind) \
    { #field, offsetof(qemuDomainObjPrivate, field), \
      sizeof(((qemuDomainObjPrivate *) NULL)->field), \
      QEMU_MIGRATION_LOCAL_PRIV_ ## kind }

/* Every field of qemuDomainObjPrivate, and whom it belongs to. A process
 * field is what a QEMU process was started with or opened, so the domain
 * takes the new process's. A domain field is the domain's whatever runs
 * it, and stays. Block jobs and a backup are the process's: a migration
 * is refused while any runs (qemuMigrationSrcIsAllowed, one async job).
 * qemumigrationlocaltest fails when qemu_domain.h has a field this table
 * does not name. */
const qemuMigrationLocalPrivField qemuMigrationLocalPrivFields[] = {
    QEMU_MIGRATION_LOCAL_PRIV(driver, DOMAIN),
    QEMU_MIGRATION_LOCAL_PRIV(namespaces, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(eventThread, PROCESS),
    /* monitors and agents call back into the object they were opened
     * for: closed by the swap, reconnected by the domain */
    QEMU_MIGRATION_LOCAL_PRIV(mon, SPECIAL),
    QEMU_MIGRATION_LOCAL_PRIV(monConfig, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(monError, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(monStart, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(agentTimeout, DOMAIN),
    QEMU_MIGRATION_LOCAL_PRIV(agent, SPECIAL),
    QEMU_MIGRATION_LOCAL_PRIV(agentError, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(beingDestroyed, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(pidfile, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(pidMonitored, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(pciaddrs, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(usbaddrs, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(qemuCaps, PROCESS),
    /* the state of the leases the old process released at its stop is
     * for the new one to take them with when it resumes, as a migration
     * cookie carries it to another host */
    QEMU_MIGRATION_LOCAL_PRIV(lockState, DOMAIN),
    QEMU_MIGRATION_LOCAL_PRIV(fakeReboot, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(pausedShutdown, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(allowReboot, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(migMaxBandwidth, DOMAIN),
    QEMU_MIGRATION_LOCAL_PRIV(origname, DOMAIN),
    QEMU_MIGRATION_LOCAL_PRIV(nbdPort, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(migrationPort, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(preMigrationState, DOMAIN),
    QEMU_MIGRATION_LOCAL_PRIV(preMigrationMemlock, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(devs, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(cleanupCallbacks, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(ncleanupCallbacks, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(ncleanupCallbacks_max, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(cgroup, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(perf, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(unplug, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(qemuDevices, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(hookRun, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(autoNodeset, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(autoCpuset, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(signalIOError, DOMAIN),
    QEMU_MIGRATION_LOCAL_PRIV(signalStop, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(machineName, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(libDir, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(channelTargetDir, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(masterKey, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(masterKeyLen, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(migSecinfo, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(origCPU, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(chardevStdioLogd, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(reconnectBlockjobs, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(migrationCaps, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(migrationRecoverSetup, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(prDaemonRunning, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(nodenameindex, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(fdsetindex, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(fdsetindexParsed, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(runningReason, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(pausedReason, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(rememberOwner, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(memPrealloc, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(blockjobs, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(disableSlirp, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(pflash0, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(backup, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(dbusConnection, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(dbusDaemonRunning, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(dbusVMStateIds, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(dbusVMState, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(originalMemlock, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(statsSchema, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(schedCoreChildPID, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(schedCoreChildFD, PROCESS),
    QEMU_MIGRATION_LOCAL_PRIV(threadContextAliases, PROCESS),
    /* the fds a user associated with the domain (virDomainFDAssociate) */
    QEMU_MIGRATION_LOCAL_PRIV(fds, DOMAIN),
    QEMU_MIGRATION_LOCAL_PRIV(memoryBackingDir, PROCESS),
    /* which of the two objects is the shadow: set by the swap */
    QEMU_MIGRATION_LOCAL_PRIV(localShadow, SPECIAL),
    QEMU_MIGRATION_LOCAL_PRIV(localGeneration, PROCESS),
};
const size_t qemuMigrationLocalNPrivFields = G_N_ELEMENTS(qemuMigrationLocalPrivFields);


/* Exchange the processes of @vm and @shadow: the domain's fields stay with
 * @vm, the processes' go with their process. Swapping twice is no swap. */
void
qemuMigrationLocalSwap(virDomainObj *vm,
                       virDomainObj *shadow)
{
    qemuDomainObjPrivate *domPriv = vm->privateData;
    qemuDomainObjPrivate *procPriv = shadow->privateData;
    size_t i;

    g_clear_pointer(&domPriv->mon, qemuMonitorClose);
    g_clear_pointer(&domPriv->agent, qemuAgentClose);
    g_clear_pointer(&procPriv->mon, qemuMonitorClose);
    g_clear_pointer(&procPriv->agent, qemuAgentClose);

    /* a domain field is exchanged now, so that it is back where it was
     * once the whole private data is exchanged below */
    for (i = 0; i < qemuMigrationLocalNPrivFields; i++) {
        const qemuMigrationLocalPrivField *f = &qemuMigrationLocalPrivFields[i];
        char *a = (char *) domPriv + f->offset;
        char *b = (char *) procPriv + f->offset;
        g_autofree char *tmp = NULL;

        if (f->kind != QEMU_MIGRATION_LOCAL_PRIV_DOMAIN)
            continue;

        tmp = g_malloc0(f->size);
        memcpy(tmp, a, f->size);
        memcpy(a, b, f->size);
        memcpy(b, tmp, f->size);
    }

    procPriv->localShadow = false;
    domPriv->localShadow = true;

    QEMU_MIGRATION_LOCAL_SWAP(vm->privateData, shadow->privateData);
    QEMU_MIGRATION_LOCAL_SWAP(vm->def, shadow->def);
    QEMU_MIGRATION_LOCAL_SWAP(vm->pid, shadow->pid);
}


/* Connect the domain to the process it now has and let it run. */
static int
qemuMigrationLocalAttach(virQEMUDriver *driver,
                         virDomainObj *vm,
                         unsigned int flags)
{
    if (qemuConnectMonitor(driver, vm, VIR_ASYNC_JOB_MIGRATION_OUT,
                           NULL, true) < 0)
        return -1;

    if (qemuConnectAgent(driver, vm) < 0)
        VIR_WARN("cannot connect to the guest agent of '%s'", vm->def->name);

    if (!(flags & VIR_MIGRATE_PAUSED) &&
        QEMU_DOMAIN_PRIVATE(vm)->preMigrationState == VIR_DOMAIN_RUNNING)
        return qemuProcessStartCPUs(driver, vm, VIR_DOMAIN_RUNNING_MIGRATED,
                                    VIR_ASYNC_JOB_MIGRATION_OUT);

    virDomainObjSetState(vm, VIR_DOMAIN_PAUSED, VIR_DOMAIN_PAUSED_MIGRATION);
    return 0;
}


static void
qemuMigrationLocalRecordPort(qemuMigrationLocalPort *port,
                             virDomainNetDef *net)
{
    if (net->type == VIR_DOMAIN_NET_TYPE_NETWORK)
        qemuMigrationLocalPortSet(port, net->data.network.name,
                                  net->data.network.portid);
}


/* Each interface that gets a TAP of its own in the new process, with the
 * network ports on both sides: what a restarted daemon needs to discard
 * either process. */
static void
qemuMigrationLocalRecordNets(qemuMigrationLocal *local,
                             virDomainDef *oldDef,
                             virDomainDef *newDef)
{
    size_t i;

    for (i = 0; i < oldDef->nnets && i < newDef->nnets; i++) {
        qemuMigrationLocalNet *net = qemuMigrationLocalFindNet(local, oldDef->nets[i]->info.alias);

        /* a macvtap gets its name only when it is created */
        if ((net && net->handover) || !newDef->nets[i]->ifname)
            continue;

        if (!net)
            net = qemuMigrationLocalAddNet(local, oldDef->nets[i]->info.alias,
                                           oldDef->nets[i]->ifname, NULL);
        g_free(net->newIfname);
        net->newIfname = g_strdup(newDef->nets[i]->ifname);
        qemuMigrationLocalRecordPort(&net->port, oldDef->nets[i]);
        qemuMigrationLocalRecordPort(&net->newPort, newDef->nets[i]);
    }
}


/* Tell the domain's log what became of each interface's backend. */
static void
qemuMigrationLocalLogNets(virQEMUDriver *driver,
                          virDomainObj *vm,
                          qemuMigrationLocal *local)
{
    g_autofree char *timestamp = virTimeStringNow();
    size_t i;

    for (i = 0; i < local->nnets; i++) {
        qemuMigrationLocalNet *net = &local->nets[i];

        if (!net->handover) {
            ignore_value(qemuDomainLogAppendMessage(driver, vm,
                                                    "%s: local migration: interface %s: new TAP %s (was %s)\n",
                                                    NULLSTR(timestamp), net->alias,
                                                    net->newIfname, NULLSTR(net->ifname)));
        } else {
            ignore_value(qemuDomainLogAppendMessage(driver, vm,
                                                    "%s: local migration: interface %s: TAP %s handed over\n",
                                                    NULLSTR(timestamp), net->alias,
                                                    NULLSTR(net->ifname)));
        }
    }
}


/* The domain's pidfile now names the new process; the old process's one
 * is replaced, so its stop must not unlink it. */
static void
qemuMigrationLocalMovePidfile(virQEMUDriver *driver,
                              virDomainObj *vm,
                              virDomainObj *shadow)
{
    g_autoptr(virQEMUDriverConfig) cfg = virQEMUDriverGetConfig(driver);
    qemuDomainObjPrivate *priv = vm->privateData;
    g_autofree char *path = virPidFileBuildPath(cfg->stateDir, vm->def->name);

    if (!path || !priv->pidfile || STREQ(path, priv->pidfile))
        return;

    g_clear_pointer(&QEMU_DOMAIN_PRIVATE(shadow)->pidfile, g_free);

    if (rename(priv->pidfile, path) < 0) {
        VIR_WARN("cannot rename %s to %s: %s",
                 priv->pidfile, path, g_strerror(errno));
        return;
    }

    g_free(priv->pidfile);
    priv->pidfile = g_steal_pointer(&path);
}


static void
qemuMigrationLocalSetPhase(virDomainObj *vm,
                           qemuMigrationLocal *local,
                           qemuMigrationLocalPhase phase)
{
    VIR_DEBUG("local migration of '%s': %s -> %s", vm->def->name,
              qemuMigrationLocalPhaseTypeToString(local->phase),
              qemuMigrationLocalPhaseTypeToString(phase));
    local->phase = phase;
    /* SWITCHOVER lasts while the guest is paused, and a daemon restarted in
     * it recovers as from MIGRATE (the old process is still the domain's):
     * it is not written out, which would cost the guest a synced write */
    if (phase != QEMU_MIGRATION_LOCAL_PHASE_SWITCHOVER)
        qemuDomainSaveStatus(vm);
}


/**
 * qemuMigrationLocalPerform:
 *
 * Runs a whole local migration of @vm (locked, no job) as described at the
 * top of this file. On failure the domain runs on its original process.
 */
int
qemuMigrationLocalPerform(virQEMUDriver *driver,
                          virDomainObj *vm,
                          const char *xmlin,
                          const char *dconnuri,
                          const char *uri,
                          const char *graphicsuri,
                          const char *listenAddress,
                          const char **migrate_disks,
                          int nbdPort,
                          const char *nbdURI,
                          qemuMigrationParams *migParams,
                          unsigned int flags,
                          const char *dname,
                          unsigned long resource)
{
    qemuDomainJobPrivate *jobPriv;
    qemuMigrationLocal *local;
    g_autoptr(virDomainDef) def = NULL;
    g_autoptr(virQEMUCaps) newCaps = NULL;
    g_autoptr(qemuMigrationParams) dstParams = NULL;
    virDomainObj *shadow = NULL;
    int fds[2] = { -1, -1 };
    unsigned int useFlags;
    bool backendTransfer = !!(flags & VIR_MIGRATE_LOCAL_BACKEND_TRANSFER);
    qemuMigrationLocalGeneration generation = QEMU_MIGRATION_LOCAL_GENERATION_NONE;
    int memory = QEMU_MIGRATION_LOCAL_MEMORY_COPY;
    qemuMigrationLocalCpr *cpr = NULL;
    bool adopted = false;
    virErrorPtr orig_err = NULL;
    int ret = -1;

    VIR_DEBUG("vm=%s, dconnuri=%s, uri=%s, flags=0x%x, took TAPs in %s",
              vm->def->name, NULLSTR(dconnuri), NULLSTR(uri), flags,
              NULLSTR(qemuMigrationLocalGenerationTypeToString(QEMU_DOMAIN_PRIVATE(vm)->localGeneration)));

    if (qemuMigrationLocalCheckFlags(flags, &useFlags) < 0 ||
        qemuMigrationLocalCheckParams(vm, graphicsuri, listenAddress,
                                      migrate_disks, nbdPort, nbdURI,
                                      dname) < 0 ||
        qemuMigrationLocalCheckURI(vm, dconnuri) < 0)
        return -1;

    /* the channel is ours; a URI (Nova always passes one) is not used */
    if (uri)
        VIR_DEBUG("ignoring migration URI %s of a local migration", uri);

    if (!(dstParams = qemuMigrationParamsFromFlags(NULL, 0, useFlags,
                                                   QEMU_MIGRATION_DESTINATION)))
        return -1;

    if (qemuMigrationJobStart(vm, VIR_ASYNC_JOB_MIGRATION_OUT, flags) < 0)
        return -1;
    qemuDomainObjSetJobPhase(vm, QEMU_MIGRATION_PHASE_PERFORM3);
    jobPriv = vm->job->privateData;

    if (!virDomainObjIsActive(vm)) {
        virReportError(VIR_ERR_OPERATION_INVALID, "%s",
                       _("domain is not running"));
        goto endjob;
    }

    if (!qemuMigrationSrcIsAllowed(vm, true, VIR_ASYNC_JOB_MIGRATION_OUT,
                                   useFlags))
        goto endjob;

    /* PREPARE */
    if (!(def = qemuMigrationLocalNewDef(driver, vm, xmlin, &newCaps)) ||
        qemuMigrationLocalCheckDevices(vm->def, def, backendTransfer) < 0 ||
        (flags & VIR_MIGRATE_LOCAL_SHARED_MEMORY &&
         (memory = qemuMigrationLocalCheckMemory(vm, def)) < 0))
        goto endjob;
    qemuMigrationLocalKeepSeclabels(vm->def, def);

    if (memory == QEMU_MIGRATION_LOCAL_MEMORY_MEMFD) {
        if (qemuMigrationLocalCheckCprNets(vm, backendTransfer) < 0)
            goto endjob;
        /* cpr-transfer leaves all RAM out of the stream by itself */
        qemuMigrationParamsDisableCap(migParams, QEMU_MIGRATION_CAP_X_IGNORE_SHARED);
        qemuMigrationParamsDisableCap(dstParams, QEMU_MIGRATION_CAP_X_IGNORE_SHARED);
    }

    if (backendTransfer &&
        qemuMigrationLocalSetupBackendTransfer(vm, def, newCaps, dstParams,
                                               migParams,
                                               memory == QEMU_MIGRATION_LOCAL_MEMORY_MEMFD,
                                               &generation) < 0)
        goto endjob;

    qemuMigrationSrcStoreDomainState(vm);
    jobPriv->local = local = qemuMigrationLocalNew();
    local->generation = generation;
    if (backendTransfer &&
        qemuMigrationLocalPrepareHandover(local, vm->def, def) < 0)
        goto endjob;
    qemuMigrationLocalSetPhase(vm, local, QEMU_MIGRATION_LOCAL_PHASE_PREPARE);
    qemuMigrationLocalTestStop("prepare");

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
        virReportSystemError(errno, "%s",
                             _("cannot create the local migration channel"));
        goto rollback;
    }

    /* LAUNCH */
    if (!(shadow = qemuMigrationLocalShadowNew(driver, &def, newCaps,
                                               local->generation)) ||
        qemuMigrationLocalLaunchPrepare(driver, vm, shadow, local, memory,
                                        useFlags) < 0) {
        if (shadow)
            qemuMigrationLocalProcessRecord(&local->target, shadow);
        goto rollback;
    }
    qemuMigrationLocalProcessRecord(&local->target, shadow);
    qemuMigrationLocalRecordNets(local, vm->def, shadow->def);
    qemuMigrationLocalSetPhase(vm, local, QEMU_MIGRATION_LOCAL_PHASE_LAUNCH);

    /* cpr-transfer: the new process has its monitor only once the source
     * has sent the CPR state, so the source starts beside the launch */
    if (memory == QEMU_MIGRATION_LOCAL_MEMORY_MEMFD &&
        !(cpr = qemuMigrationLocalCprStart(driver, vm, shadow,
                                           useFlags & ~VIR_MIGRATE_PAUSED,
                                           resource, migParams)))
        goto rollback;

    virObjectUnlock(vm);
    if (qemuMigrationLocalLaunch(driver, shadow, fds[1], dstParams,
                                 useFlags) < 0) {
        qemuMigrationLocalProcessRecord(&local->target, shadow);
        virObjectUnlock(shadow);
        if (cpr)
            ignore_value(qemuMigrationLocalCprJoin(&cpr, true, true));
        else
            virObjectLock(vm);
        virObjectLock(shadow);
        goto rollback;
    }
    qemuMigrationLocalProcessRecord(&local->target, shadow);
    qemuMigrationLocalRecordNets(local, vm->def, shadow->def);
    VIR_FORCE_CLOSE(fds[1]);
    virObjectUnlock(shadow);
    virObjectLock(vm);

    /* MIGRATE */
    qemuMigrationLocalSetOwner(local, QEMU_MIGRATION_LOCAL_NET_OWNER_HANDOVER);
    qemuMigrationLocalSetPhase(vm, local, QEMU_MIGRATION_LOCAL_PHASE_MIGRATE);
    qemuMigrationLocalTestStop("migrate");
    useFlags &= ~VIR_MIGRATE_PAUSED; /* applies to the new process */
    if (cpr) {
        /* the source's side, running since the launch, ends with the
         * stream */
        virObjectUnlock(vm);
        if (qemuMigrationLocalCprJoin(&cpr, false, false) < 0) {
            virObjectLock(shadow);
            goto rollback;
        }
    } else if (qemuMigrationSrcRunLocal(driver, vm, fds[0], NULL, NULL,
                                        useFlags, resource, migParams) < 0) {
        fds[0] = -1; /* closed by the monitor code */
        virObjectLock(shadow);
        goto rollback;
    }
    fds[0] = -1;

    virObjectLock(shadow);
    if (qemuMigrationDstWaitForCompletion(shadow, VIR_ASYNC_JOB_MIGRATION_IN,
                                          false) < 0)
        goto rollback;

    /* SWITCHOVER: the guest is stopped from here until the new process
     * runs, so nothing that can wait is done before: the state libvirt
     * reads back from the new process and its migration parameters are
     * handled once it runs, the old process's parameters only if it is
     * taken back (it is discarded otherwise). */
    qemuMigrationLocalSetPhase(vm, local, QEMU_MIGRATION_LOCAL_PHASE_SWITCHOVER);
    qemuMigrationLocalTestStop("switchover");
    qemuMigrationLocalProcessRecord(&local->source, vm);
    local->adopting = true;
    qemuMigrationLocalSwap(vm, shadow);
    adopted = true;
    qemuMigrationLocalSetOwner(local, QEMU_MIGRATION_LOCAL_NET_OWNER_TARGET);
    qemuMigrationLocalSetPhase(vm, local, QEMU_MIGRATION_LOCAL_PHASE_CLEANUP);

    if (qemuMigrationLocalAttach(driver, vm, flags) < 0) {
        /* the old process is intact and paused: take it back */
        virErrorPreserveLast(&orig_err);
        g_clear_pointer(&QEMU_DOMAIN_PRIVATE(vm)->mon, qemuMonitorClose);
        qemuMigrationLocalSwap(vm, shadow);
        adopted = false;
        qemuMigrationLocalSetOwner(local, QEMU_MIGRATION_LOCAL_NET_OWNER_SOURCE);
        if (qemuConnectMonitor(driver, vm, VIR_ASYNC_JOB_MIGRATION_OUT,
                               NULL, true) < 0)
            VIR_WARN("cannot reconnect to the old process of '%s'",
                     vm->def->name);
        local->adopting = false;
        virErrorRestore(&orig_err);
        goto rollback;
    }

    /* CLEANUP: the guest runs in the new process, there is no way back */
    local->adopting = false;
    qemuMigrationLocalTestStop("cleanup");
    if (qemuProcessRefreshState(driver, vm, VIR_ASYNC_JOB_MIGRATION_OUT) < 0)
        VIR_WARN("cannot refresh the state of '%s' from its new process",
                 vm->def->name);
    qemuMigrationParamsReset(vm, VIR_ASYNC_JOB_MIGRATION_OUT,
                             ((qemuDomainJobPrivate *) shadow->job->privateData)->migParams,
                             useFlags);
    qemuMigrationLocalEndHandover(vm->def);
    qemuMigrationLocalLogNets(driver, vm, local);
    qemuMigrationLocalMovePidfile(driver, vm, shadow);
    qemuMigrationLocalKeepOut(local, shadow->def, QEMU_MIGRATION_LOCAL_PROCESS_OLD);
    qemuMigrationLocalKeepMemoryOut(vm, shadow);
    qemuProcessStop(driver, shadow, VIR_DOMAIN_SHUTOFF_MIGRATED,
                    VIR_ASYNC_JOB_MIGRATION_IN,
                    VIR_QEMU_PROCESS_STOP_MIGRATED |
                    VIR_QEMU_PROCESS_STOP_NO_RELABEL);

    if (vm->job->completed)
        vm->job->completed->status = VIR_DOMAIN_JOB_STATUS_COMPLETED;
    ret = 0;
    goto endjob;

 rollback:
    virErrorPreserveLast(&orig_err);
    if (cpr) {
        /* the source's side ends once the new process is gone */
        if (shadow)
            virObjectUnlock(shadow);
        virObjectUnlock(vm);
        ignore_value(qemuMigrationLocalCprJoin(&cpr, true, false));
        if (shadow)
            virObjectLock(shadow);
    }
    qemuMigrationLocalSetOwner(local, QEMU_MIGRATION_LOCAL_NET_OWNER_SOURCE);
    qemuMigrationLocalSetPhase(vm, local, QEMU_MIGRATION_LOCAL_PHASE_ROLLBACK);
    qemuMigrationLocalTestStop("rollback");
    if (shadow && !adopted) {
        qemuMigrationLocalKeepOut(local, shadow->def, QEMU_MIGRATION_LOCAL_PROCESS_NEW);
        qemuMigrationLocalKeepMemoryOut(vm, shadow);
        qemuProcessStop(driver, shadow, VIR_DOMAIN_SHUTOFF_FAILED,
                        VIR_ASYNC_JOB_MIGRATION_IN,
                        VIR_QEMU_PROCESS_STOP_MIGRATED |
                        VIR_QEMU_PROCESS_STOP_NO_RELABEL);
    }
    if (virDomainObjIsActive(vm)) {
        if (memory == QEMU_MIGRATION_LOCAL_MEMORY_MEMFD)
            qemuMigrationLocalCprReset(vm, VIR_ASYNC_JOB_MIGRATION_OUT);
        qemuMigrationParamsReset(vm, VIR_ASYNC_JOB_MIGRATION_OUT,
                                 jobPriv->migParams, useFlags);
        qemuMigrationSrcRestoreDomainState(driver, vm);
    }
    virErrorRestore(&orig_err);

 endjob:
    VIR_FORCE_CLOSE(fds[0]);
    VIR_FORCE_CLOSE(fds[1]);
    qemuMigrationLocalShadowFree(&shadow);
    g_clear_pointer(&jobPriv->local, qemuMigrationLocalFree);
    virDomainObjEndAsyncJob(vm);
    qemuDomainSaveStatus(vm);
    return ret;
}
