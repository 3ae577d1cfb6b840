/*
 * qemu_migration_local_handover.c: which process holds each TAP of a local migration
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
#include "viruuid.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_migration_local_handover");


/* An interface whose TAP the migration hands over, given the flag. */
bool
qemuMigrationLocalNetIsHandedOver(const virDomainNetDef *net)
{
    return net->backend.transfer == VIR_TRISTATE_SWITCH_ON;
}


/* Which TAPs can travel: refuse the others of the flagged interfaces. */
int
qemuMigrationLocalCheckHandover(virDomainDef *def)
{
    size_t i;

    for (i = 0; i < def->nnets; i++) {
        virDomainNetDef *net = def->nets[i];
        virDomainNetType type = virDomainNetGetActualType(net);

        if (!qemuMigrationLocalNetIsHandedOver(net))
            continue;

        /* a network's port may plug it into a bridge (its own or the
         * host's): a TAP as well */
        if (type != VIR_DOMAIN_NET_TYPE_BRIDGE &&
            type != VIR_DOMAIN_NET_TYPE_NETWORK &&
            type != VIR_DOMAIN_NET_TYPE_ETHERNET) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("interface '%1$s' of type '%2$s' has no TAP to hand over"),
                           NULLSTR(net->info.alias),
                           virDomainNetTypeToString(type));
            return -1;
        }

        if (net->type == VIR_DOMAIN_NET_TYPE_NETWORK &&
            (!net->data.network.actual ||
             !virUUIDIsValid(net->data.network.portid))) {
            virReportError(VIR_ERR_INTERNAL_ERROR,
                           _("interface '%1$s' has no port on network '%2$s'"),
                           NULLSTR(net->info.alias), net->data.network.name);
            return -1;
        }

        if (!net->ifname) {
            virReportError(VIR_ERR_INTERNAL_ERROR,
                           _("interface '%1$s' has no TAP"),
                           NULLSTR(net->info.alias));
            return -1;
        }
    }

    return 0;
}


/* A handed-over TAP stays plugged where it is, so the interface keeps its
 * network port: the new definition gets the port (its id and what it
 * plugs, the same way a restarted daemon reclaims one) instead of asking
 * the network for another. */
static int
qemuMigrationLocalMovePort(virDomainDef *oldDef,
                           virDomainNetDef *oldNet,
                           virDomainNetDef *newNet)
{
    g_autoptr(virNetworkPortDef) port = NULL;

    if (oldNet->type != VIR_DOMAIN_NET_TYPE_NETWORK)
        return 0;

    if (newNet->type != VIR_DOMAIN_NET_TYPE_NETWORK ||
        STRNEQ(oldNet->data.network.name, newNet->data.network.name)) {
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("interface '%1$s' must stay on network '%2$s' to keep its TAP"),
                       NULLSTR(oldNet->info.alias), oldNet->data.network.name);
        return -1;
    }

    if (!(port = virDomainNetDefActualToNetworkPort(oldDef, oldNet)) ||
        virDomainNetDefActualFromNetworkPort(newNet, port) < 0)
        return -1;

    memcpy(newNet->data.network.portid, oldNet->data.network.portid,
           VIR_UUID_BUFLEN);
    return 0;
}


/**
 * qemuMigrationLocalPrepareHandover:
 *
 * Give @newDef the running TAPs of the handed-over interfaces of @oldDef
 * (matched by position: the ABI check keeps the order), with their network
 * ports, and tell the command line and the network setup of the new
 * process that the TAPs come in the stream. Each is recorded in @local.
 */
int
qemuMigrationLocalPrepareHandover(qemuMigrationLocal *local,
                                  virDomainDef *oldDef,
                                  virDomainDef *newDef)
{
    size_t i;

    for (i = 0; i < oldDef->nnets && i < newDef->nnets; i++) {
        virDomainNetDef *oldNet = oldDef->nets[i];
        virDomainNetDef *newNet = newDef->nets[i];

        if (!qemuMigrationLocalNetIsHandedOver(oldNet))
            continue;

        if (qemuMigrationLocalMovePort(oldDef, oldNet, newNet) < 0)
            return -1;

        g_free(newNet->ifname);
        newNet->ifname = g_strdup(oldNet->ifname);
        QEMU_DOMAIN_NETWORK_PRIVATE(newNet)->incomingFds = true;
        qemuMigrationLocalAddNet(local, oldNet->info.alias, oldNet->ifname,
                                 NULL)->handover = true;
        VIR_INFO("interface %s: TAP %s is handed over",
                 oldNet->info.alias, oldNet->ifname);
    }

    return 0;
}


void
qemuMigrationLocalSetOwner(qemuMigrationLocal *local,
                           qemuMigrationLocalNetOwner owner)
{
    size_t i;

    for (i = 0; i < local->nnets; i++) {
        if (local->nets[i].handover)
            local->nets[i].owner = owner;
    }
}


/*
 * Who may tear down a handed-over TAP (DESIGN section 6): the TAP, the
 * bridge or OVS port, QoS and filters libvirt set up for it, its network
 * port and its <downscript>. The stop of a process runs them for a TAP
 * only where its owner lets it; while the TAP is in the stream neither
 * process's stop may. A TAP that is not handed over is its process's own.
 */
static const bool qemuMigrationLocalTeardown[QEMU_MIGRATION_LOCAL_NET_OWNER_LAST]
                                           [QEMU_MIGRATION_LOCAL_PROCESS_LAST] = {
    /*                                           old    new */
    [QEMU_MIGRATION_LOCAL_NET_OWNER_SOURCE]   = { true,  false },
    [QEMU_MIGRATION_LOCAL_NET_OWNER_HANDOVER] = { false, false },
    [QEMU_MIGRATION_LOCAL_NET_OWNER_TARGET]   = { false, true },
};


/* Whether the stop of process @which may tear down its TAP of @net. */
bool
qemuMigrationLocalMayTearDown(const qemuMigrationLocalNet *net,
                              qemuMigrationLocalWhich which)
{
    if (!net->handover)
        return true;
    return qemuMigrationLocalTeardown[net->owner][which];
}


/* Before @def's process (@which) is stopped: take out the interfaces
 * whose teardown it may not run, so that nothing touches them. @def is
 * discarded with the process. */
void
qemuMigrationLocalKeepOut(qemuMigrationLocal *local,
                          virDomainDef *def,
                          qemuMigrationLocalWhich which)
{
    size_t i = def->nnets;

    while (i-- > 0) {
        qemuMigrationLocalNet *lnet;

        if (!(lnet = qemuMigrationLocalFindNet(local, def->nets[i]->info.alias)) ||
            qemuMigrationLocalMayTearDown(lnet, which))
            continue;

        VIR_DEBUG("keeping TAP %s of %s out of the stop of the %s process",
                  lnet->ifname, lnet->alias,
                  which == QEMU_MIGRATION_LOCAL_PROCESS_OLD ? "old" : "new");
        virDomainNetDefFree(virDomainNetRemove(def, i));
    }
}


/* The new process now owns the TAPs; nothing is incoming any more. */
void
qemuMigrationLocalEndHandover(virDomainDef *def)
{
    size_t i;

    for (i = 0; i < def->nnets; i++)
        QEMU_DOMAIN_NETWORK_PRIVATE(def->nets[i])->incomingFds = false;
}
