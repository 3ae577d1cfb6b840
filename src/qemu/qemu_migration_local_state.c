/*
 * qemu_migration_local_state.c: the state of a local migration job and its XML
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

#include "qemu_migration_local_state.h"
#include "viralloc.h"
#include "virerror.h"
#include "virlog.h"
#include "viruuid.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_migration_local_state");

VIR_ENUM_IMPL(qemuMigrationLocalPhase,
              QEMU_MIGRATION_LOCAL_PHASE_LAST,
              "prepare",
              "launch",
              "migrate",
              "switchover",
              "cleanup",
              "rollback",
);

VIR_ENUM_IMPL(qemuMigrationLocalGeneration,
              QEMU_MIGRATION_LOCAL_GENERATION_LAST,
              "none",
              "v10",
              "local",
              "cpr",
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
qemuMigrationLocalPortClear(qemuMigrationLocalPort *port)
{
    g_clear_pointer(&port->network, g_free);
    g_clear_pointer(&port->id, g_free);
}


static void
qemuMigrationLocalNetClear(qemuMigrationLocalNet *net)
{
    g_free(net->alias);
    g_free(net->ifname);
    g_free(net->newIfname);
    qemuMigrationLocalPortClear(&net->port);
    qemuMigrationLocalPortClear(&net->newPort);
}


void
qemuMigrationLocalPortSet(qemuMigrationLocalPort *port,
                          const char *network,
                          const unsigned char *id)
{
    char uuidstr[VIR_UUID_STRING_BUFLEN];

    qemuMigrationLocalPortClear(port);
    if (!network || !virUUIDIsValid(id))
        return;

    port->network = g_strdup(network);
    port->id = g_strdup(virUUIDFormat(id, uuidstr));
}


void
qemuMigrationLocalProcessClear(qemuMigrationLocalProcess *proc)
{
    g_free(proc->monitor);
    g_free(proc->libDir);
    g_free(proc->channelTargetDir);
    g_free(proc->memoryBackingDir);
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
    qemuMigrationLocalProcessClear(&local->source);
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
                                const char *element,
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
    virBufferEscapeString(&attrBuf, " memoryBackingDir='%s'",
                          proc->memoryBackingDir);
    virBufferEscapeString(&attrBuf, " emulator='%s'", proc->emulator);

    virXMLFormatElement(buf, element, &attrBuf, NULL);
}


static void
qemuMigrationLocalPortFormat(virBuffer *buf,
                             const char *element,
                             qemuMigrationLocalPort *port)
{
    if (!port->network)
        return;

    virBufferAsprintf(buf, "<%s", element);
    virBufferEscapeString(buf, " network='%s'", port->network);
    virBufferEscapeString(buf, " id='%s'/>\n", port->id);
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
    if (local->generation != QEMU_MIGRATION_LOCAL_GENERATION_NONE)
        virBufferAsprintf(&attrBuf, " generation='%s'",
                          qemuMigrationLocalGenerationTypeToString(local->generation));

    if (local->source.pid > 0)
        qemuMigrationLocalProcessFormat(&childBuf, "source", &local->source);
    qemuMigrationLocalProcessFormat(&childBuf, "target", &local->target);

    for (i = 0; i < local->nnets; i++) {
        qemuMigrationLocalNet *net = &local->nets[i];
        g_auto(virBuffer) netAttrBuf = VIR_BUFFER_INITIALIZER;
        g_auto(virBuffer) netChildBuf = VIR_BUFFER_INIT_CHILD(&childBuf);

        virBufferEscapeString(&netAttrBuf, " alias='%s'", net->alias);
        virBufferEscapeString(&netAttrBuf, " ifname='%s'", net->ifname);
        if (net->handover)
            virBufferAddLit(&netAttrBuf, " handover='yes'");
        virBufferEscapeString(&netAttrBuf, " newIfname='%s'", net->newIfname);
        virBufferAsprintf(&netAttrBuf, " owner='%s'",
                          qemuMigrationLocalNetOwnerTypeToString(net->owner));
        qemuMigrationLocalPortFormat(&netChildBuf, "port", &net->port);
        qemuMigrationLocalPortFormat(&netChildBuf, "newPort", &net->newPort);

        virXMLFormatElement(&childBuf, "interface", &netAttrBuf, &netChildBuf);
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

    proc->monitor = virXMLPropString(node, "monitor");
    proc->libDir = virXMLPropString(node, "libDir");
    proc->channelTargetDir = virXMLPropString(node, "channelTargetDir");
    proc->memoryBackingDir = virXMLPropString(node, "memoryBackingDir");
    proc->emulator = virXMLPropString(node, "emulator");

    return 0;
}


static int
qemuMigrationLocalPortParse(xmlXPathContextPtr ctxt,
                            const char *element,
                            qemuMigrationLocalPort *port)
{
    g_autofree char *xpath = g_strdup_printf("./%s", element);
    unsigned char uuid[VIR_UUID_BUFLEN];
    xmlNodePtr node;

    if (!(node = virXPathNode(xpath, ctxt)))
        return 0;

    if (!(port->network = virXMLPropStringRequired(node, "network")) ||
        !(port->id = virXMLPropStringRequired(node, "id")))
        return -1;

    if (virUUIDParse(port->id, uuid) < 0) {
        virReportError(VIR_ERR_INTERNAL_ERROR,
                       _("malformed port id '%1$s' in local migration state"),
                       port->id);
        return -1;
    }

    return 0;
}


static int
qemuMigrationLocalNetParse(xmlXPathContextPtr ctxt,
                           xmlNodePtr node,
                           qemuMigrationLocal *local)
{
    VIR_XPATH_NODE_AUTORESTORE(ctxt)
    g_autofree char *alias = NULL;
    g_autofree char *ifname = NULL;
    g_autofree char *newIfname = NULL;
    qemuMigrationLocalNet *net;
    unsigned int owner;
    virTristateBool handover = VIR_TRISTATE_BOOL_ABSENT;

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

    if (virXMLPropTristateBool(node, "handover", VIR_XML_PROP_NONE,
                               &handover) < 0)
        return -1;

    ifname = virXMLPropString(node, "ifname");
    newIfname = virXMLPropString(node, "newIfname");

    /* state written before the attribute: a handed-over TAP was the one
     * without a new one */
    if (handover == VIR_TRISTATE_BOOL_ABSENT)
        handover = newIfname ? VIR_TRISTATE_BOOL_NO : VIR_TRISTATE_BOOL_YES;
    if (handover == VIR_TRISTATE_BOOL_YES && newIfname) {
        virReportError(VIR_ERR_INTERNAL_ERROR,
                       _("interface '%1$s' of the local migration state is handed over and has a new TAP '%2$s'"),
                       alias, newIfname);
        return -1;
    }

    net = qemuMigrationLocalAddNet(local, alias, ifname, newIfname);
    net->handover = handover == VIR_TRISTATE_BOOL_YES;
    net->owner = owner;

    ctxt->node = node;
    if (qemuMigrationLocalPortParse(ctxt, "port", &net->port) < 0 ||
        qemuMigrationLocalPortParse(ctxt, "newPort", &net->newPort) < 0)
        return -1;

    return 0;
}


/**
 * qemuMigrationLocalParseState:
 * @ctxt: XPath context positioned at the job element of the status XML
 * @local: filled in with the state, or NULL when there is none
 *
 * Returns 0 on success (including when no local migration is recorded),
 * -1 on error.
 */
int
qemuMigrationLocalParseState(xmlXPathContextPtr ctxt,
                             qemuMigrationLocal **local)
{
    g_autoptr(qemuMigrationLocal) state = NULL;
    g_autofree xmlNodePtr *nodes = NULL;
    VIR_XPATH_NODE_AUTORESTORE(ctxt)
    xmlNodePtr node;
    xmlNodePtr source;
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

    if (virXMLPropEnum(node, "generation",
                       qemuMigrationLocalGenerationTypeFromString,
                       VIR_XML_PROP_NONZERO, &state->generation) < 0)
        return -1;

    if (!(target = virXPathNode("./target", ctxt))) {
        virReportError(VIR_ERR_INTERNAL_ERROR, "%s",
                       _("missing target process in local migration state"));
        return -1;
    }

    if (qemuMigrationLocalProcessParse(target, &state->target) < 0)
        return -1;

    if ((source = virXPathNode("./source", ctxt)) &&
        qemuMigrationLocalProcessParse(source, &state->source) < 0)
        return -1;

    if ((n = virXPathNodeSet("./interface", ctxt, &nodes)) < 0)
        return -1;

    for (i = 0; i < n; i++) {
        if (qemuMigrationLocalNetParse(ctxt, nodes[i], state) < 0)
            return -1;
    }

    *local = g_steal_pointer(&state);
    return 0;
}




/**
 * qemuMigrationLocalParse:
 *
 * As qemuMigrationLocalParseState, for the status XML of a domain that a
 * daemon loads: state that cannot be read is dropped with a warning and
 * the domain loads without it. Its own status names the process that runs
 * the guest in every phase (the old one until the switchover was saved,
 * the new one after), so the usual recovery of an interrupted outgoing
 * migration keeps the guest running; only the other process is left
 * behind. Refusing the whole status would lose the domain instead.
 *
 * Returns 0.
 */
int
qemuMigrationLocalParse(xmlXPathContextPtr ctxt,
                        qemuMigrationLocal **local)
{
    if (qemuMigrationLocalParseState(ctxt, local) < 0) {
        VIR_WARN("ignoring the unreadable state of an interrupted local migration: %s",
                 virGetLastErrorMessage());
        virResetLastError();
        *local = NULL;
    }

    return 0;
}


/* The generation in which a domain's process took its TAPs from a local
 * migration (qemuDomainObjPrivate's localGeneration): its tap netdevs
 * have that generation's form for as long as it runs, which the next job
 * must know after a daemon restart too. */
void
qemuMigrationLocalFormatTook(virBuffer *buf,
                             int generation)
{
    if (generation == QEMU_MIGRATION_LOCAL_GENERATION_NONE)
        return;
    virBufferAsprintf(buf, "<handedOverTaps generation='%s'/>\n",
                      qemuMigrationLocalGenerationTypeToString(generation));
}


int
qemuMigrationLocalParseTook(xmlXPathContextPtr ctxt,
                            int *generation)
{
    xmlNodePtr node = virXPathNode("./handedOverTaps", ctxt);
    qemuMigrationLocalGeneration took = QEMU_MIGRATION_LOCAL_GENERATION_NONE;

    if (node &&
        virXMLPropEnum(node, "generation",
                       qemuMigrationLocalGenerationTypeFromString,
                       VIR_XML_PROP_NONZERO | VIR_XML_PROP_REQUIRED, &took) < 0)
        return -1;
    *generation = took;
    return 0;
}
