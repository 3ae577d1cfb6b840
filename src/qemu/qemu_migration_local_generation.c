/*
 * qemu_migration_local_generation.c: the generations of QEMU's backend transfer interface
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
#include "qemu_command.h"
#include "qemu_domain.h"
#include "qemu_migration.h"
#include "virerror.h"
#include "virlog.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_migration_local_generation");


/*
 * QEMU's interface for handing a TAP over changed between the generations
 * of its series (DESIGN.md section 5, docs/localmig-generations.rst). What
 * a generation needs from each binary and does on each side is one row
 * here. The rows run from the oldest generation to the newest; the job
 * chooses once, from both binaries, when it prepares, walking them from
 * the newest down; the job's state (and so its status XML) and the new
 * process keep the choice.
 */
static const qemuMigrationLocalDialect qemuMigrationLocalDialects[] = {
    /* v10: the virtio-net device sends its tap peers; the new process's
     * tap waits for them from the start */
    { .generation = QEMU_MIGRATION_LOCAL_GENERATION_V10,
      .startCaps = { QEMU_CAPS_VIRTIO_NET_BACKEND_TRANSFER, QEMU_CAPS_LAST },
      .startDeviceProp = "backend-transfer",
      .sourceCaps = { QEMU_CAPS_MIGRATION_PARAM_BACKEND_TRANSFER,
                      QEMU_CAPS_VIRTIO_NET_BACKEND_TRANSFER,
                      QEMU_CAPS_LAST },
      .targetCaps = { QEMU_CAPS_MIGRATION_PARAM_BACKEND_TRANSFER,
                      QEMU_CAPS_VIRTIO_NET_BACKEND_TRANSFER,
                      QEMU_CAPS_NETDEV_TAP_INCOMING_FDS,
                      QEMU_CAPS_LAST },
      .param = QEMU_MIGRATION_PARAM_BACKEND_TRANSFER },
    /* the upstream interface (queued for QEMU 11.2): each tap netdev
     * that says so migrates itself; the new process may create its tap
     * only once the parameter is on */
    { .generation = QEMU_MIGRATION_LOCAL_GENERATION_LOCAL,
      .startCaps = { QEMU_CAPS_NETDEV_TAP_LOCAL_MIGRATION, QEMU_CAPS_LAST },
      .startNetdevProp = "local-migration-supported",
      .sourceCaps = { QEMU_CAPS_MIGRATION_PARAM_LOCAL,
                      QEMU_CAPS_NETDEV_TAP_LOCAL_MIGRATION,
                      QEMU_CAPS_LAST },
      .targetCaps = { QEMU_CAPS_MIGRATION_PARAM_LOCAL,
                      QEMU_CAPS_NETDEV_TAP_LOCAL_MIGRATION,
                      QEMU_CAPS_NETDEV_TAP_INCOMING_FDS,
                      QEMU_CAPS_LAST },
      .param = QEMU_MIGRATION_PARAM_LOCAL,
      .incomingNetdevProp = "local-migration-supported",
      .deferNic = true },
    /* CPR: under cpr-transfer each tap netdev that says so puts its fds
     * into the CPR state, which reaches the new process before its
     * monitor exists; the row of a job whose memory goes that way, and of
     * no other */
    { .generation = QEMU_MIGRATION_LOCAL_GENERATION_CPR,
      .startCaps = { QEMU_CAPS_NETDEV_TAP_CPR, QEMU_CAPS_LAST },
      .startNetdevProp = "cpr",
      .sourceCaps = { QEMU_CAPS_MIGRATION_MODE_CPR_TRANSFER,
                      QEMU_CAPS_NETDEV_TAP_CPR,
                      QEMU_CAPS_LAST },
      .targetCaps = { QEMU_CAPS_MIGRATION_MODE_CPR_TRANSFER,
                      QEMU_CAPS_NETDEV_TAP_CPR,
                      QEMU_CAPS_LAST },
      .param = QEMU_MIGRATION_PARAM_LAST,
      .incomingNetdevProp = "cpr",
      .cpr = true },
};

const char *
qemuMigrationLocalDialectName(const qemuMigrationLocalDialect *dialect)
{
    return qemuMigrationLocalGenerationTypeToString(dialect->generation);
}


/* The row of @generation, or NULL for none. */
const qemuMigrationLocalDialect *
qemuMigrationLocalDialectGet(qemuMigrationLocalGeneration generation)
{
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(qemuMigrationLocalDialects); i++) {
        if (qemuMigrationLocalDialects[i].generation == generation)
            return &qemuMigrationLocalDialects[i];
    }
    return NULL;
}


/* What each capability is, in the words of the QEMU interface. */
static const struct {
    virQEMUCapsFlags cap;
    const char *what;
} qemuMigrationLocalCapNames[] = {
    { QEMU_CAPS_MIGRATION_PARAM_BACKEND_TRANSFER,
      "migration parameter 'backend-transfer'" },
    { QEMU_CAPS_VIRTIO_NET_BACKEND_TRANSFER,
      "virtio-net property 'backend-transfer'" },
    { QEMU_CAPS_NETDEV_TAP_INCOMING_FDS,
      "tap netdev option 'incoming-fds'" },
    { QEMU_CAPS_MIGRATION_PARAM_LOCAL,
      "migration parameter 'local'" },
    { QEMU_CAPS_NETDEV_TAP_LOCAL_MIGRATION,
      "tap netdev option 'local-migration-supported'" },
    { QEMU_CAPS_MIGRATION_MODE_CPR_TRANSFER,
      "migration mode 'cpr-transfer'" },
    { QEMU_CAPS_NETDEV_TAP_CPR,
      "tap netdev option 'cpr'" },
};

static const char *
qemuMigrationLocalCapDescription(virQEMUCapsFlags cap)
{
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(qemuMigrationLocalCapNames); i++) {
        if (qemuMigrationLocalCapNames[i].cap == cap)
            return qemuMigrationLocalCapNames[i].what;
    }
    return virQEMUCapsTypeToString(cap);
}


/* Appends to @missing what @caps lacks of @want. */
static void
qemuMigrationLocalDialectMissing(virQEMUCaps *caps,
                                 const virQEMUCapsFlags *want,
                                 virBuffer *missing)
{
    size_t i;

    for (i = 0; want[i] != QEMU_CAPS_LAST; i++) {
        if (!virQEMUCapsGet(caps, want[i]))
            virBufferAsprintf(missing, "%s, ",
                              qemuMigrationLocalCapDescription(want[i]));
    }
    virBufferTrim(missing, ", ");
}


/* Whether @caps has all of @want. */
static bool
qemuMigrationLocalDialectHas(virQEMUCaps *caps,
                             const virQEMUCapsFlags *want)
{
    g_auto(virBuffer) missing = VIR_BUFFER_INITIALIZER;

    qemuMigrationLocalDialectMissing(caps, want, &missing);
    return virBufferUse(&missing) == 0;
}


/**
 * qemuMigrationLocalDialectSelect:
 * @srcCaps: capabilities of the running process's binary
 * @srcBinary: its path, for the error
 * @srcTook: the generation in which the running process took its TAPs
 *           from a local migration, NONE if it set them up itself: its
 *           netdevs have that generation's form, so it cannot hand them
 *           over in another one that needs a netdev property from the
 *           start (its devices got every start property, as at any start)
 * @dstCaps: capabilities of the binary the new process will run
 * @dstBinary: its path
 * @cpr: the job runs in mode cpr-transfer (its memory is a memfd): only
 *       the CPR row fits it, and it fits no other job
 *
 * Returns the newest generation of the backend transfer interface both
 * sides speak, or NULL with an error naming the binary and what it
 * lacks.
 */
const qemuMigrationLocalDialect *
qemuMigrationLocalDialectSelect(virQEMUCaps *srcCaps,
                                const char *srcBinary,
                                qemuMigrationLocalGeneration srcTook,
                                virQEMUCaps *dstCaps,
                                const char *dstBinary,
                                bool cpr)
{
    g_auto(virBuffer) missing = VIR_BUFFER_INITIALIZER;
    const qemuMigrationLocalDialect *newest = NULL;
    const qemuMigrationLocalDialect *srcBest = NULL;
    const qemuMigrationLocalDialect *dstBest = NULL;
    size_t i = G_N_ELEMENTS(qemuMigrationLocalDialects);

    while (i-- > 0) {
        const qemuMigrationLocalDialect *d = &qemuMigrationLocalDialects[i];
        bool src;
        bool dst;

        if (d->cpr != cpr)
            continue;

        if (srcTook != QEMU_MIGRATION_LOCAL_GENERATION_NONE &&
            d->generation != srcTook && d->startNetdevProp)
            continue;

        src = qemuMigrationLocalDialectHas(srcCaps, d->sourceCaps);
        dst = qemuMigrationLocalDialectHas(dstCaps, d->targetCaps);
        if (src && dst) {
            VIR_DEBUG("backend transfer generation %s",
                      qemuMigrationLocalDialectName(d));
            return d;
        }

        if (!newest)
            newest = d;
        if (src && !srcBest)
            srcBest = d;
        if (dst && !dstBest)
            dstBest = d;
    }

    if (!newest && srcTook != QEMU_MIGRATION_LOCAL_GENERATION_NONE &&
        qemuMigrationLocalDialectGet(srcTook)) {
        /* only the CPR row remained, and the taps are not of its form */
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("backend transfer (--local-backend-transfer) in a cpr-transfer is not supported by the running process of QEMU binary '%1$s': it took its TAPs in generation '%2$s', whose taps lack cpr=on"),
                       srcBinary,
                       qemuMigrationLocalGenerationTypeToString(srcTook));
        return NULL;
    }

    if (!newest) {
        virReportError(VIR_ERR_INTERNAL_ERROR,
                       _("unknown backend transfer generation %1$d"), srcTook);
        return NULL;
    }

    /* the user is told what a binary lacks of the newest generation the
     * other one has, or of the newest of all */
    if (srcBest && dstBest) {
        qemuMigrationLocalDialectMissing(dstCaps, srcBest->targetCaps, &missing);
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("backend transfer (--local-backend-transfer) needs a generation of QEMU's interface that both binaries have: the running QEMU binary '%1$s' hands TAPs over in generation '%2$s', which the new process's QEMU binary '%3$s' lacks (%4$s)"),
                       srcBinary, qemuMigrationLocalDialectName(srcBest),
                       dstBinary, virBufferCurrentContent(&missing));
    } else if (!srcBest) {
        qemuMigrationLocalDialectMissing(srcCaps,
                                         (dstBest ? dstBest : newest)->sourceCaps,
                                         &missing);
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("backend transfer (--local-backend-transfer) is not supported by the running QEMU binary '%1$s': it lacks %2$s"),
                       srcBinary, virBufferCurrentContent(&missing));
    } else {
        qemuMigrationLocalDialectMissing(dstCaps, srcBest->targetCaps, &missing);
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("backend transfer (--local-backend-transfer) is not supported by the new process's QEMU binary '%1$s': it lacks %2$s"),
                       dstBinary, virBufferCurrentContent(&missing));
    }
    return NULL;
}


/**
 * qemuMigrationLocalValidateNet:
 * @net: an interface of a domain about to start
 * @caps: the capabilities of its QEMU binary
 *
 * An interface with <backend transfer='on'/> needs a binary that starts
 * it in some generation of the interface.
 *
 * Returns 0 if it can start, -1 with an error naming what is missing.
 */
int
qemuMigrationLocalValidateNet(const virDomainNetDef *net,
                              virQEMUCaps *caps)
{
    g_auto(virBuffer) missing = VIR_BUFFER_INITIALIZER;
    size_t i;

    if (net->backend.transfer != VIR_TRISTATE_SWITCH_ON)
        return 0;

    for (i = 0; i < G_N_ELEMENTS(qemuMigrationLocalDialects); i++) {
        const qemuMigrationLocalDialect *d = &qemuMigrationLocalDialects[i];
        g_auto(virBuffer) lacks = VIR_BUFFER_INITIALIZER;

        qemuMigrationLocalDialectMissing(caps, d->startCaps, &lacks);
        if (virBufferUse(&lacks) == 0)
            return 0;
        /* what each generation lacks is what the user is told */
        virBufferAsprintf(&missing, "%s (generation %s), ",
                          virBufferCurrentContent(&lacks),
                          qemuMigrationLocalDialectName(d));
    }
    virBufferTrim(&missing, ", ");

    virReportError(VIR_ERR_CONFIG_UNSUPPORTED,
                   _("virtio-net backend transfer is not supported with this QEMU binary: it lacks %1$s"),
                   virBufferCurrentContent(&missing));
    return -1;
}


/**
 * qemuMigrationLocalNicDevProps:
 * @net: an interface with a virtio model
 * @caps: the capabilities of its QEMU binary
 * @props: its -device properties
 *
 * Adds what each generation the binary has sets on the device for
 * <backend transfer> (v10: the virtio-net property, on or off as the
 * attribute says), so that a later job may choose any of them.
 *
 * Returns 0 on success, -1 on error.
 */
int
qemuMigrationLocalNicDevProps(const virDomainNetDef *net,
                              virQEMUCaps *caps,
                              virJSONValue *props)
{
    size_t i;

    if (net->backend.transfer == VIR_TRISTATE_SWITCH_ABSENT)
        return 0;

    for (i = 0; i < G_N_ELEMENTS(qemuMigrationLocalDialects); i++) {
        const qemuMigrationLocalDialect *d = &qemuMigrationLocalDialects[i];

        if (d->startDeviceProp &&
            qemuMigrationLocalDialectHas(caps, d->startCaps) &&
            virJSONValueObjectAppendBoolean(props, d->startDeviceProp,
                                            net->backend.transfer == VIR_TRISTATE_SWITCH_ON) < 0)
            return -1;
    }
    return 0;
}


/**
 * qemuMigrationLocalHostNetProps:
 * @net: an interface with a TAP
 * @caps: the capabilities of its QEMU binary
 * @props: its tap netdev's properties
 *
 * For <backend transfer='on'/>, adds what each generation the binary has
 * sets on the netdev (the upstream interface: local-migration-supported).
 *
 * Returns 0 on success, -1 on error.
 */
int
qemuMigrationLocalHostNetProps(const virDomainNetDef *net,
                               virQEMUCaps *caps,
                               virJSONValue *props)
{
    size_t i;

    if (net->backend.transfer != VIR_TRISTATE_SWITCH_ON || !caps)
        return 0;

    for (i = 0; i < G_N_ELEMENTS(qemuMigrationLocalDialects); i++) {
        const qemuMigrationLocalDialect *d = &qemuMigrationLocalDialects[i];

        if (d->startNetdevProp &&
            qemuMigrationLocalDialectHas(caps, d->startCaps) &&
            virJSONValueObjectAppendBoolean(props, d->startNetdevProp, true) < 0)
            return -1;
    }
    return 0;
}


/* The row of the generation @vm's job chose for its new process. */
static const qemuMigrationLocalDialect *
qemuMigrationLocalDialectOfProcess(virDomainObj *vm,
                                   virDomainNetDef *net)
{
    const qemuMigrationLocalDialect *dialect;

    if (!(dialect = qemuMigrationLocalDialectGet(QEMU_DOMAIN_PRIVATE(vm)->localGeneration)))
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("QEMU binary '%1$s' cannot take interface '%2$s' from a migration stream"),
                       NULLSTR(vm->def->emulator), NULLSTR(net->info.alias));
    return dialect;
}


/**
 * qemuMigrationLocalIncomingNetProps:
 * @vm: the process being started for a local migration
 * @net: an interface whose TAP it takes from the migration stream
 * @vhostfdField, @vhostfdArg: its own vhost-net fds, as for any tap netdev
 *
 * Returns the netdev properties in the generation @vm's job chose: a tap
 * that opens, attaches and configures nothing, runs no scripts, and
 * waits for the TAP's queues in the stream.
 */
virJSONValue *
qemuMigrationLocalIncomingNetProps(virDomainObj *vm,
                                   virDomainNetDef *net,
                                   const char *vhostfdField,
                                   const char *vhostfdArg)
{
    const qemuMigrationLocalDialect *dialect;
    unsigned int queues = net->driver.virtio.queues;
    g_autoptr(virJSONValue) props = NULL;

    if (!(dialect = qemuMigrationLocalDialectOfProcess(vm, net)))
        return NULL;

    if (virJSONValueObjectAdd(&props,
                              "s:type", "tap",
                              "B:incoming-fds", !dialect->cpr,
                              "s:script", "no",
                              "s:downscript", "no",
                              "p:queues", queues > 1 ? queues : 0,
                              "B:vhost", !!QEMU_DOMAIN_NETWORK_PRIVATE(net)->vhostfds,
                              vhostfdField, vhostfdArg,
                              NULL) < 0)
        return NULL;

    if (dialect->incomingNetdevProp &&
        virJSONValueObjectAppendBoolean(props, dialect->incomingNetdevProp,
                                        true) < 0)
        return NULL;

    return g_steal_pointer(&props);
}


/**
 * qemuMigrationLocalDeferNic:
 * @vm: the process being started for a local migration
 * @net: an interface whose TAP it takes from the migration stream
 * @netdev: its netdev properties
 *
 * In a generation whose new process may create its tap only once the
 * migration parameter is on, keeps @netdev (stolen) and the interface's
 * device for qemuMigrationLocalAddDeferredNics instead of the command
 * line.
 *
 * Returns 1 if they are kept, 0 if they belong on the command line, -1
 * on error.
 */
int
qemuMigrationLocalDeferNic(virDomainObj *vm,
                           virDomainNetDef *net,
                           virJSONValue **netdev)
{
    qemuDomainNetworkPrivate *netpriv = QEMU_DOMAIN_NETWORK_PRIVATE(net);
    const qemuMigrationLocalDialect *dialect;
    g_autoptr(virJSONValue) device = NULL;
    g_autoptr(virJSONValue) deferred = NULL;

    if (!(dialect = qemuMigrationLocalDialectOfProcess(vm, net)))
        return -1;
    if (!dialect->deferNic)
        return 0;

    if (!(device = qemuBuildNicDevProps(vm->def, net,
                                        QEMU_DOMAIN_PRIVATE(vm)->qemuCaps)) ||
        virJSONValueObjectAdd(&deferred,
                              "a:netdev", netdev,
                              "a:device", &device,
                              NULL) < 0)
        return -1;

    virJSONValueFree(netpriv->localDeferred);
    netpriv->localDeferred = g_steal_pointer(&deferred);
    return 1;
}


/**
 * qemuMigrationLocalAddDeferredNics:
 * @vm: the new process, started with -incoming defer
 * @mon: its monitor, entered
 *
 * Adds the netdevs and devices qemuMigrationLocalDeferNic kept, each
 * netdev before its device, once the migration parameter is on, and sets
 * the link state of a device that is down, as the start of a process
 * does for the others.
 *
 * Returns 0 on success, -1 on error.
 */
int
qemuMigrationLocalAddDeferredNics(virDomainObj *vm,
                                  qemuMonitor *mon)
{
    size_t i;

    for (i = 0; i < vm->def->nnets; i++) {
        virDomainNetDef *net = vm->def->nets[i];
        qemuDomainNetworkPrivate *netpriv = QEMU_DOMAIN_NETWORK_PRIVATE(net);
        g_autoptr(virJSONValue) deferred = g_steal_pointer(&netpriv->localDeferred);
        g_autoptr(virJSONValue) netdev = NULL;
        g_autoptr(virJSONValue) device = NULL;

        if (!deferred)
            continue;

        netdev = virJSONValueObjectStealObject(deferred, "netdev");
        device = virJSONValueObjectStealObject(deferred, "device");
        if (qemuMonitorAddNetdev(mon, &netdev) < 0 ||
            qemuMonitorAddDeviceProps(mon, &device) < 0)
            return -1;

        if (net->linkstate == VIR_DOMAIN_NET_INTERFACE_LINK_STATE_DOWN &&
            qemuMonitorSetLink(mon, net->info.alias,
                               VIR_DOMAIN_NET_INTERFACE_LINK_STATE_DOWN) < 0)
            return -1;
    }
    return 0;
}


/**
 * qemuMigrationLocalDstRun:
 * @vm: the new process, started with -incoming defer
 * @uri: the channel the stream comes from
 * @asyncJob: its job
 * @params: its migration parameters, the generation's included
 * @flags: the API flags
 *
 * The destination's steps, in the order the generation needs: the
 * parameters, the netdevs and devices that had to wait for them, then
 * the incoming migration.
 *
 * Returns 0 on success, -1 on error.
 */
int
qemuMigrationLocalDstRun(virDomainObj *vm,
                         const char *uri,
                         virDomainAsyncJob asyncJob,
                         qemuMigrationParams *params,
                         unsigned int flags)
{
    int rc;

    if (qemuMigrationParamsApply(vm, asyncJob, params, flags) < 0 ||
        qemuDomainObjEnterMonitorAsync(vm, asyncJob) < 0)
        return -1;
    rc = qemuMigrationLocalAddDeferredNics(vm, QEMU_DOMAIN_PRIVATE(vm)->mon);
    qemuDomainObjExitMonitor(vm);
    if (rc < 0)
        return -1;

    return qemuMigrationDstRun(vm, uri, asyncJob, NULL, flags);
}
