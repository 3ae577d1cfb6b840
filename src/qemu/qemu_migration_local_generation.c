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
#include "qemu_domain.h"
#include "virerror.h"
#include "virlog.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_migration_local_generation");


/*
 * QEMU's interface for handing a TAP over changed between the generations
 * of its series (DESIGN.md section 5). What a generation needs from each
 * binary is one row here. The job chooses the row once, from both
 * binaries, when it prepares; the job's state (and so its status XML) and
 * the new process keep it. Only the v10 generation exists so far.
 */

/* v10: the tap netdev opens, attaches and configures nothing and waits for
 * the TAP's queues in the stream; it must run no scripts either */
static virJSONValue *
qemuMigrationLocalIncomingNetdevV10(virDomainNetDef *net,
                                    bool vhost,
                                    const char *vhostfdField,
                                    const char *vhostfdArg)
{
    unsigned int queues = net->driver.virtio.queues;
    g_autoptr(virJSONValue) props = NULL;

    if (virJSONValueObjectAdd(&props,
                              "s:type", "tap",
                              "b:incoming-fds", true,
                              "s:script", "no",
                              "s:downscript", "no",
                              "p:queues", queues > 1 ? queues : 0,
                              "B:vhost", vhost,
                              vhostfdField, vhostfdArg,
                              NULL) < 0)
        return NULL;

    return g_steal_pointer(&props);
}

static const qemuMigrationLocalDialect qemuMigrationLocalDialects[] = {
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
      .param = QEMU_MIGRATION_PARAM_BACKEND_TRANSFER,
      .incomingNetdev = qemuMigrationLocalIncomingNetdevV10 },
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


/**
 * qemuMigrationLocalDialectSelect:
 * @srcCaps: capabilities of the running process's binary
 * @srcBinary: its path, for the error
 * @dstCaps: capabilities of the binary the new process will run
 * @dstBinary: its path
 *
 * Returns the generation of the backend transfer interface both binaries
 * speak, or NULL with an error naming the binary and what it lacks.
 */
const qemuMigrationLocalDialect *
qemuMigrationLocalDialectSelect(virQEMUCaps *srcCaps,
                                const char *srcBinary,
                                virQEMUCaps *dstCaps,
                                const char *dstBinary)
{
    g_auto(virBuffer) srcMissing = VIR_BUFFER_INITIALIZER;
    g_auto(virBuffer) dstMissing = VIR_BUFFER_INITIALIZER;
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(qemuMigrationLocalDialects); i++) {
        const qemuMigrationLocalDialect *d = &qemuMigrationLocalDialects[i];

        virBufferFreeAndReset(&srcMissing);
        virBufferFreeAndReset(&dstMissing);
        qemuMigrationLocalDialectMissing(srcCaps, d->sourceCaps, &srcMissing);
        qemuMigrationLocalDialectMissing(dstCaps, d->targetCaps, &dstMissing);

        if (virBufferUse(&srcMissing) == 0 && virBufferUse(&dstMissing) == 0) {
            VIR_DEBUG("backend transfer dialect %s",
                      qemuMigrationLocalDialectName(d));
            return d;
        }
    }

    /* the newest generation's needs are what the user is told */
    if (virBufferUse(&srcMissing) > 0) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("backend transfer (--local-backend-transfer) is not supported by the running QEMU binary '%1$s': it lacks %2$s"),
                       srcBinary, virBufferCurrentContent(&srcMissing));
    } else {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("backend transfer (--local-backend-transfer) is not supported by the new process's QEMU binary '%1$s': it lacks %2$s"),
                       dstBinary, virBufferCurrentContent(&dstMissing));
    }
    return NULL;
}


/* The generation a process of @caps starts its interfaces in: the first
 * row whose start needs it has, with what it lacks of the last row in
 * @missing otherwise. */
static const qemuMigrationLocalDialect *
qemuMigrationLocalDialectForStart(virQEMUCaps *caps,
                                  virBuffer *missing)
{
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(qemuMigrationLocalDialects); i++) {
        virBufferFreeAndReset(missing);
        qemuMigrationLocalDialectMissing(caps, qemuMigrationLocalDialects[i].startCaps,
                                         missing);
        if (virBufferUse(missing) == 0)
            return &qemuMigrationLocalDialects[i];
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

    if (net->backend.transfer != VIR_TRISTATE_SWITCH_ON ||
        qemuMigrationLocalDialectForStart(caps, &missing))
        return 0;

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
 * Adds what the generation the binary starts in sets on the device for
 * <backend transfer> (v10: the virtio-net property, on or off as the
 * attribute says).
 *
 * Returns 0 on success, -1 on error.
 */
int
qemuMigrationLocalNicDevProps(const virDomainNetDef *net,
                              virQEMUCaps *caps,
                              virJSONValue *props)
{
    g_auto(virBuffer) missing = VIR_BUFFER_INITIALIZER;
    const qemuMigrationLocalDialect *dialect;

    if (net->backend.transfer == VIR_TRISTATE_SWITCH_ABSENT ||
        !(dialect = qemuMigrationLocalDialectForStart(caps, &missing)) ||
        !dialect->startDeviceProp)
        return 0;

    return virJSONValueObjectAppendBoolean(props, dialect->startDeviceProp,
                                           net->backend.transfer == VIR_TRISTATE_SWITCH_ON);
}


/**
 * qemuMigrationLocalIncomingNetProps:
 * @vm: the process being started for a local migration
 * @net: an interface whose TAP it takes from the migration stream
 * @vhostfdField, @vhostfdArg: its own vhost-net fds, as for any tap netdev
 *
 * Returns the -netdev properties in the generation @vm's job chose.
 */
virJSONValue *
qemuMigrationLocalIncomingNetProps(virDomainObj *vm,
                                   virDomainNetDef *net,
                                   const char *vhostfdField,
                                   const char *vhostfdArg)
{
    const qemuMigrationLocalDialect *dialect;

    if (!(dialect = qemuMigrationLocalDialectGet(QEMU_DOMAIN_PRIVATE(vm)->localGeneration))) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("QEMU binary '%1$s' cannot take interface '%2$s' from a migration stream"),
                       NULLSTR(vm->def->emulator), NULLSTR(net->info.alias));
        return NULL;
    }

    return dialect->incomingNetdev(net,
                                   !!QEMU_DOMAIN_NETWORK_PRIVATE(net)->vhostfds,
                                   vhostfdField, vhostfdArg);
}
