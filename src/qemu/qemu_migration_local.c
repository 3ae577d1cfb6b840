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
 *  LAUNCH      The new process starts paused with "-incoming defer". An
 *              interface that is handed over gets a netdev that waits for
 *              the TAP to arrive in the stream (owner: SOURCE); any other
 *              interface gets a new TAP on the same bridge, which belongs
 *              to the new process (newIfname). Security labels and locks
 *              are the domain's: they are neither applied nor restored.
 *              Failure: kill the new process, release only what it
 *              created (its TAPs), end the job.
 *
 *  MIGRATE     The two processes are joined by a socketpair(), one end
 *              each, passed with getfd; the old process streams its state,
 *              handed-over TAPs included (owner: HANDOVER, both hold the
 *              fd; no teardown may touch it). Progress and abort work as
 *              for any outgoing migration. Failure: as in ROLLBACK.
 *
 *  SWITCHOVER  The old process completed and is paused; the new process is
 *              resumed. From the "cont" on, the new process is the
 *              guest: handed-over TAPs become TARGET, the domain adopts the
 *              new pid, monitor and paths, and the status XML is saved
 *              with them. There is no way back after this point.
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
 * The phase, the new process's identity and every interface's owner are
 * kept in the job's part of the status XML (<localMigration>), so that a
 * daemon restarted in the middle can tell which process to keep and what
 * each one may release.
 */

#include <config.h>

#include "qemu_migration_local.h"
#include "viralloc.h"
#include "virerror.h"
#include "virlog.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_migration_local");

VIR_ENUM_IMPL(qemuMigrationLocalPhase,
              QEMU_MIGRATION_LOCAL_PHASE_LAST,
              "prepare",
              "launch",
              "migrate",
              "switchover",
              "cleanup",
              "rollback",
);

VIR_ENUM_IMPL(qemuMigrationLocalNetOwner,
              QEMU_MIGRATION_LOCAL_NET_OWNER_LAST,
              "source",
              "handover",
              "target",
);


qemuMigrationLocal *
qemuMigrationLocalNew(void)
{
    return g_new0(qemuMigrationLocal, 1);
}


static void
qemuMigrationLocalNetClear(qemuMigrationLocalNet *net)
{
    g_free(net->alias);
    g_free(net->ifname);
    g_free(net->newIfname);
}


static void
qemuMigrationLocalProcessClear(qemuMigrationLocalProcess *proc)
{
    g_free(proc->monitor);
    g_free(proc->libDir);
    g_free(proc->channelTargetDir);
    g_free(proc->emulator);
}


void
qemuMigrationLocalFree(qemuMigrationLocal *local)
{
    size_t i;

    if (!local)
        return;

    for (i = 0; i < local->nnets; i++)
        qemuMigrationLocalNetClear(&local->nets[i]);
    g_free(local->nets);
    qemuMigrationLocalProcessClear(&local->target);
    g_free(local);
}


qemuMigrationLocalNet *
qemuMigrationLocalAddNet(qemuMigrationLocal *local,
                         const char *alias,
                         const char *ifname,
                         const char *newIfname)
{
    qemuMigrationLocalNet *net;

    VIR_EXPAND_N(local->nets, local->nnets, 1);
    net = &local->nets[local->nnets - 1];
    net->alias = g_strdup(alias);
    net->ifname = g_strdup(ifname);
    net->newIfname = g_strdup(newIfname);
    net->owner = QEMU_MIGRATION_LOCAL_NET_OWNER_SOURCE;

    return net;
}


qemuMigrationLocalNet *
qemuMigrationLocalFindNet(qemuMigrationLocal *local,
                          const char *alias)
{
    size_t i;

    for (i = 0; i < local->nnets; i++) {
        if (STREQ(local->nets[i].alias, alias))
            return &local->nets[i];
    }

    return NULL;
}


static void
qemuMigrationLocalProcessFormat(virBuffer *buf,
                                qemuMigrationLocalProcess *proc)
{
    g_auto(virBuffer) attrBuf = VIR_BUFFER_INITIALIZER;

    if (proc->pid > 0)
        virBufferAsprintf(&attrBuf, " pid='%lld'", (long long) proc->pid);
    virBufferAsprintf(&attrBuf, " id='%d'", proc->id);
    virBufferEscapeString(&attrBuf, " monitor='%s'", proc->monitor);
    virBufferEscapeString(&attrBuf, " libDir='%s'", proc->libDir);
    virBufferEscapeString(&attrBuf, " channelTargetDir='%s'",
                          proc->channelTargetDir);
    virBufferEscapeString(&attrBuf, " emulator='%s'", proc->emulator);

    virXMLFormatElement(buf, "target", &attrBuf, NULL);
}


void
qemuMigrationLocalFormat(virBuffer *buf,
                         qemuMigrationLocal *local)
{
    g_auto(virBuffer) attrBuf = VIR_BUFFER_INITIALIZER;
    g_auto(virBuffer) childBuf = VIR_BUFFER_INIT_CHILD(buf);
    size_t i;

    virBufferAsprintf(&attrBuf, " phase='%s'",
                      qemuMigrationLocalPhaseTypeToString(local->phase));

    qemuMigrationLocalProcessFormat(&childBuf, &local->target);

    for (i = 0; i < local->nnets; i++) {
        qemuMigrationLocalNet *net = &local->nets[i];

        virBufferEscapeString(&childBuf, "<interface alias='%s'", net->alias);
        virBufferEscapeString(&childBuf, " ifname='%s'", net->ifname);
        virBufferEscapeString(&childBuf, " newIfname='%s'", net->newIfname);
        virBufferAsprintf(&childBuf, " owner='%s'/>\n",
                          qemuMigrationLocalNetOwnerTypeToString(net->owner));
    }

    virXMLFormatElement(buf, "localMigration", &attrBuf, &childBuf);
}


static int
qemuMigrationLocalProcessParse(xmlNodePtr node,
                               qemuMigrationLocalProcess *proc)
{
    long long value;

    if (virXMLPropLongLong(node, "pid", 10, VIR_XML_PROP_NONNEGATIVE,
                           &value, 0) < 0)
        return -1;
    proc->pid = value;

    if (virXMLPropInt(node, "id", 10, VIR_XML_PROP_REQUIRED,
                      &proc->id, 0) < 0)
        return -1;

    if (!(proc->monitor = virXMLPropStringRequired(node, "monitor")))
        return -1;

    proc->libDir = virXMLPropString(node, "libDir");
    proc->channelTargetDir = virXMLPropString(node, "channelTargetDir");
    proc->emulator = virXMLPropString(node, "emulator");

    return 0;
}


static int
qemuMigrationLocalNetParse(xmlNodePtr node,
                           qemuMigrationLocal *local)
{
    g_autofree char *alias = NULL;
    g_autofree char *ifname = NULL;
    g_autofree char *newIfname = NULL;
    qemuMigrationLocalNet *net;
    unsigned int owner;

    if (!(alias = virXMLPropStringRequired(node, "alias")))
        return -1;

    if (qemuMigrationLocalFindNet(local, alias)) {
        virReportError(VIR_ERR_INTERNAL_ERROR,
                       _("duplicate interface '%1$s' in local migration state"),
                       alias);
        return -1;
    }

    if (virXMLPropEnum(node, "owner",
                       qemuMigrationLocalNetOwnerTypeFromString,
                       VIR_XML_PROP_REQUIRED, &owner) < 0)
        return -1;

    ifname = virXMLPropString(node, "ifname");
    newIfname = virXMLPropString(node, "newIfname");

    net = qemuMigrationLocalAddNet(local, alias, ifname, newIfname);
    net->owner = owner;

    return 0;
}


/**
 * qemuMigrationLocalParse:
 * @ctxt: XPath context positioned at the job element of the status XML
 * @local: filled in with the state, or NULL when there is none
 *
 * Returns 0 on success (including when no local migration is recorded),
 * -1 on error.
 */
int
qemuMigrationLocalParse(xmlXPathContextPtr ctxt,
                        qemuMigrationLocal **local)
{
    g_autoptr(qemuMigrationLocal) state = NULL;
    g_autofree xmlNodePtr *nodes = NULL;
    VIR_XPATH_NODE_AUTORESTORE(ctxt)
    xmlNodePtr node;
    xmlNodePtr target;
    unsigned int phase;
    size_t i;
    int n;

    *local = NULL;

    if (!(node = virXPathNode("./localMigration", ctxt)))
        return 0;
    ctxt->node = node;

    state = qemuMigrationLocalNew();

    if (virXMLPropEnum(node, "phase", qemuMigrationLocalPhaseTypeFromString,
                       VIR_XML_PROP_REQUIRED, &phase) < 0)
        return -1;
    state->phase = phase;

    if (!(target = virXPathNode("./target", ctxt))) {
        virReportError(VIR_ERR_INTERNAL_ERROR, "%s",
                       _("missing target process in local migration state"));
        return -1;
    }

    if (qemuMigrationLocalProcessParse(target, &state->target) < 0)
        return -1;

    if ((n = virXPathNodeSet("./interface", ctxt, &nodes)) < 0)
        return -1;

    for (i = 0; i < n; i++) {
        if (qemuMigrationLocalNetParse(nodes[i], state) < 0)
            return -1;
    }

    *local = g_steal_pointer(&state);
    return 0;
}
