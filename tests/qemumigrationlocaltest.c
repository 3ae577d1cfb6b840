/*
 * qemumigrationlocaltest.c: checks of a local migration request
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

#include <fcntl.h>

#include "testutils.h"
#include "testutilsqemu.h"
#include "testutilsqemuschema.h"
#include "qemu/qemu_alias.h"
#include "qemu/qemu_command.h"
#include "qemu/qemu_domain.h"
#include "qemu/qemu_fd.h"
#include "qemu/qemu_migration.h"
#include "qemu/qemu_migration_params.h"
#include "qemumonitortestutils.h"
#define LIBVIRT_QEMU_MIGRATION_PARAMSPRIV_H_ALLOW
#include "qemu/qemu_migration_paramspriv.h"
#include "qemu/qemu_migration_local.h"
#define LIBVIRT_QEMU_MIGRATION_LOCALPRIV_H_ALLOW
#include "qemu/qemu_migration_localpriv.h"
#include "qemu/qemu_process.h"
#include "virutil.h"

#define VIR_FROM_THIS VIR_FROM_NONE

static virQEMUDriver driver;

/* QMP schema of the reference QEMU (recorded replies), which has the
 * backend transfer interface */
static GHashTable *localmigSchema;
static virQEMUCaps *localmigCaps;
/* the same binary exposing only the upstream generation */
static GHashTable *upstreamSchema;
static virQEMUCaps *upstreamCaps;
/* the reference QEMU with every generation, CPR's included */
static GHashTable *cprSchema;
static virQEMUCaps *cprCaps;

/* Each check either passes or fails with an error whose message contains
 * @error: the option, flag or device the user has to change. */
static int
testCheckResult(int rc,
                const char *error)
{
    const char *msg = virGetLastErrorMessage();

    if (!error) {
        if (rc < 0) {
            VIR_TEST_VERBOSE("\nunexpected error: %s", msg);
            return -1;
        }
        return 0;
    }

    if (rc >= 0) {
        VIR_TEST_VERBOSE("\naccepted, expected an error naming '%s'", error);
        return -1;
    }
    if (!strstr(msg, error)) {
        VIR_TEST_VERBOSE("\nerror '%s' does not name '%s'", msg, error);
        return -1;
    }
    virResetLastError();
    return 0;
}


typedef struct {
    unsigned int flags;
    unsigned int useFlags; /* what the job passes on when accepted */
    const char *error;
} testFlagsData;

static int
testFlags(const void *opaque)
{
    const testFlagsData *data = opaque;
    unsigned int useFlags = 0;
    int rc = qemuMigrationLocalCheckFlags(data->flags, &useFlags);

    if (testCheckResult(rc, data->error) < 0)
        return -1;

    if (rc == 0 && useFlags != data->useFlags) {
        VIR_TEST_VERBOSE("\nflags 0x%x passed on as 0x%x, expected 0x%x",
                         data->flags, useFlags, data->useFlags);
        return -1;
    }
    return 0;
}


#define TEST_DOMAIN_XML \
    "<domain type='qemu'>" \
    "  <name>guest1</name>" \
    "  <uuid>5d2b4a8e-1f3c-4c6e-9a57-0b8e2f6d7c31</uuid>" \
    "  <memory unit='KiB'>262144</memory>" \
    "  <vcpu>1</vcpu>" \
    "  <os><type arch='x86_64' machine='pc'>hvm</type></os>" \
    "  <devices>" \
    "    <emulator>/usr/bin/qemu-system-x86_64</emulator>" \
    "    %s" \
    "  </devices>" \
    "</domain>"

static virDomainDef *
testParseDef(const char *devices)
{
    g_autofree char *xml = g_strdup_printf(TEST_DOMAIN_XML, devices);

    /* as the job parses the running definition it migrates: inactive,
     * so that names libvirt generated are dropped */
    return virDomainDefParseString(xml, driver.xmlopt, NULL,
                                   VIR_DOMAIN_DEF_PARSE_INACTIVE);
}


typedef struct {
    const char *devices;
    bool backendTransfer;
    const char *error;
} testDevicesData;

static int
testDevices(const void *opaque)
{
    const testDevicesData *data = opaque;
    g_autoptr(virDomainDef) oldDef = NULL;
    g_autoptr(virDomainDef) newDef = NULL;

    if (!(oldDef = testParseDef(data->devices)) ||
        !(newDef = testParseDef(data->devices)))
        return -1;

    return testCheckResult(qemuMigrationLocalCheckDevices(oldDef, newDef,
                                                          data->backendTransfer),
                           data->error);
}


typedef struct {
    const char *graphicsuri;
    const char *listenAddress;
    const char *disk;
    int nbdPort;
    const char *nbdURI;
    const char *dname;
    const char *error;
} testParamsData;

static int
testParams(const void *opaque)
{
    const testParamsData *data = opaque;
    g_autoptr(virDomainObj) vm = NULL;
    const char *disks[] = { data->disk, NULL };

    if (!(vm = virDomainObjNew(driver.xmlopt)) ||
        !(vm->def = testParseDef("")))
        return -1;

    return testCheckResult(qemuMigrationLocalCheckParams(vm,
                                                         data->graphicsuri,
                                                         data->listenAddress,
                                                         disks,
                                                         data->nbdPort,
                                                         data->nbdURI,
                                                         data->dname),
                           data->error);
}


typedef struct {
    const char *uri;
    const char *error;
} testURIData;

static int
testURI(const void *opaque)
{
    const testURIData *data = opaque;
    g_autoptr(virDomainObj) vm = NULL;
    int rc;

    if (!(vm = virDomainObjNew(driver.xmlopt)) ||
        !(vm->def = testParseDef("")))
        return -1;

    /* the check unlocks the domain while it asks another server */
    rc = qemuMigrationLocalCheckURI(vm, data->uri);
    virObjectUnlock(vm);

    return testCheckResult(rc, data->error);
}


typedef struct {
    /* capabilities of the running and the new binary, 0-terminated
     * (flag 0 is a retired one) */
    virQEMUCapsFlags src[8];
    virQEMUCapsFlags dst[8];
    /* the generation the running process took its TAPs in */
    qemuMigrationLocalGeneration srcTook;
    bool cpr;             /* the job runs in mode cpr-transfer */
    const char *dialect;
    const char *error;
} testDialectData;

static int
testDialect(const void *opaque)
{
    const testDialectData *data = opaque;
    g_autoptr(virQEMUCaps) src = virQEMUCapsNew();
    g_autoptr(virQEMUCaps) dst = virQEMUCapsNew();
    const qemuMigrationLocalDialect *dialect;
    size_t i;

    for (i = 0; data->src[i]; i++)
        virQEMUCapsSet(src, data->src[i]);
    for (i = 0; data->dst[i]; i++)
        virQEMUCapsSet(dst, data->dst[i]);

    dialect = qemuMigrationLocalDialectSelect(src, "/usr/bin/qemu-old",
                                              data->srcTook,
                                              dst, "/opt/qemu-new",
                                              data->cpr);
    if (testCheckResult(dialect ? 0 : -1, data->error) < 0)
        return -1;

    if (dialect && STRNEQ(qemuMigrationLocalDialectName(dialect),
                          data->dialect)) {
        VIR_TEST_VERBOSE("\ndialect %s, expected %s",
                         qemuMigrationLocalDialectName(dialect), data->dialect);
        return -1;
    }
    return 0;
}


/* QEMU marks the members of the backend transfer interface 'unstable'
 * (the series calls them experimental), and x-ignore-shared, which a
 * local migration sharing memory needs, too; the schema validator
 * refuses every unstable member. Accept exactly these, everything else
 * of the commands is still checked. */
static void
testAllowUnstable(GHashTable *schema)
{
    const char *allowed[] = { "backend-transfer", "incoming-fds",
                              "x-ignore-shared", NULL };
    GHashTableIter iter;
    void *value;

    g_hash_table_iter_init(&iter, schema);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        virJSONValue *members = virJSONValueObjectGetArray(value, "members");
        size_t i;

        for (i = 0; members && i < virJSONValueArraySize(members); i++) {
            virJSONValue *member = virJSONValueArrayGet(members, i);
            const char *name = virJSONValueObjectGetString(member, "name");

            if (name && g_strv_contains(allowed, name))
                virJSONValueObjectRemoveKey(member, "features", NULL);
        }
    }
}


/* @args, the arguments of QMP @command, are @expect and valid for the
 * reference QEMU. */
static int
testCheckArguments(GHashTable *schema,
                   const char *command,
                   virJSONValue *args,
                   const char *expect)
{
    g_autofree char *actual = virJSONValueToString(args, false);
    g_auto(virBuffer) debug = VIR_BUFFER_INITIALIZER;

    if (STRNEQ(actual, expect)) {
        VIR_TEST_VERBOSE("\n%s %s\nexpected %s", command, actual, expect);
        return -1;
    }

    if (testQEMUSchemaValidateCommand(command, args, schema,
                                      false, false, false, &debug) < 0) {
        VIR_TEST_VERBOSE("\nnot valid for the reference QEMU: %s",
                         virBufferCurrentContent(&debug));
        return -1;
    }
    return 0;
}


typedef struct {
    const char *iface;   /* <interface> of the handed-over TAP */
    size_t nvhostfds;    /* vhost-net fds the new process opened */
    const char *netdev;  /* expected -netdev JSON */
    bool upstream;       /* the upstream generation, else v10 */
    bool cpr;            /* the CPR generation */
} testIncomingData;

/* The new process's netdev for a TAP that arrives in the stream. */
static int
testIncoming(const void *opaque)
{
    const testIncomingData *data = opaque;
    g_autoptr(virDomainObj) vm = NULL;
    g_autoptr(virJSONValue) props = NULL;
    qemuDomainNetworkPrivate *netpriv;
    virDomainNetDef *net;
    size_t i;

    if (!(vm = virDomainObjNew(driver.xmlopt)) ||
        !(vm->def = testParseDef(data->iface)))
        return -1;
    virObjectUnlock(vm);
    /* the new process runs the reference QEMU */
    QEMU_DOMAIN_PRIVATE(vm)->qemuCaps = virObjectRef(data->cpr ? cprCaps :
                                                     data->upstream ? upstreamCaps : localmigCaps);
    QEMU_DOMAIN_PRIVATE(vm)->localGeneration = data->cpr ? QEMU_MIGRATION_LOCAL_GENERATION_CPR :
        data->upstream ? QEMU_MIGRATION_LOCAL_GENERATION_LOCAL : QEMU_MIGRATION_LOCAL_GENERATION_V10;

    net = vm->def->nets[0];
    net->info.alias = g_strdup("net0");
    netpriv = QEMU_DOMAIN_NETWORK_PRIVATE(net);
    netpriv->incomingFds = true;
    for (i = 0; i < data->nvhostfds; i++) {
        g_autofree char *name = g_strdup_printf("vhostfd-net0%zu", i);
        int fd = open("/dev/null", O_RDONLY);

        netpriv->vhostfds = g_slist_append(netpriv->vhostfds,
                                           qemuFDPassDirectNew(name, &fd));
    }

    if (!(props = qemuBuildHostNetProps(vm, net)))
        return -1;
    qemuDomainNetworkPrivateClearFDs(netpriv);

    return testCheckArguments(data->cpr ? cprSchema :
                              data->upstream ? upstreamSchema : localmigSchema,
                              "netdev_add", props, data->netdev);
}


/* A process whose job chose no generation has no netdev for a TAP that
 * arrives in the stream, whatever its binary can do. */
static int
testIncomingNoGeneration(const void *opaque G_GNUC_UNUSED)
{
    g_autoptr(virDomainObj) vm = NULL;
    g_autoptr(virJSONValue) props = NULL;
    virDomainNetDef *net;

    if (!(vm = virDomainObjNew(driver.xmlopt)) ||
        !(vm->def = testParseDef("<interface type='bridge'>"
                                 "  <source bridge='br0'/><target dev='lmtap0'/>"
                                 "  <model type='virtio'/><backend transfer='on'/>"
                                 "</interface>")))
        return -1;
    virObjectUnlock(vm);
    QEMU_DOMAIN_PRIVATE(vm)->qemuCaps = virObjectRef(localmigCaps);

    net = vm->def->nets[0];
    net->info.alias = g_strdup("net0");
    QEMU_DOMAIN_NETWORK_PRIVATE(net)->incomingFds = true;

    if ((props = qemuBuildHostNetProps(vm, net))) {
        VIR_TEST_VERBOSE("\na netdev without a chosen generation");
        return -1;
    }
    return testCheckResult(-1, "cannot take interface 'net0' from a migration stream");
}


/* The port a TAP on a network's bridge is plugged into, as formatted
 * for the network (what the interface's <actual> says). */
static char *
testPortOf(virDomainDef *def,
           virDomainNetDef *net)
{
    g_autoptr(virNetworkPortDef) port = NULL;

    if (!(port = virDomainNetDefActualToNetworkPort(def, net)))
        return NULL;
    return virNetworkPortDefFormat(port);
}


#define TEST_NETWORK_IFACE \
    "<interface type='network'>" \
    "  <source network='lmnet'/><mac address='52:54:00:7b:35:93'/>" \
    "  <model type='virtio'/><backend transfer='on'/>" \
    "</interface>"

/* A handed-over TAP of a network interface keeps its port: the new
 * definition gets the running port, and the start of the new process asks
 * the network for none (there is no network driver here to ask). */
static int
testHandoverPort(const void *opaque G_GNUC_UNUSED)
{
    g_autoptr(virDomainObj) vm = NULL;
    g_autoptr(virDomainDef) oldDef = NULL;
    g_autoptr(virNetworkPortDef) port = NULL;
    g_autoptr(virJSONValue) props = NULL;
    g_autofree char *oldPort = NULL;
    g_autofree char *newPort = NULL;
    g_autoptr(qemuMigrationLocal) local = qemuMigrationLocalNew();
    virDomainNetDef *oldNet;
    virDomainNetDef *newNet;

    if (!(port = virNetworkPortDefParse(NULL, abs_srcdir "/virnetworkportxml2xmldata/plug-bridge.xml", 0)) ||
        !(oldDef = testParseDef(TEST_NETWORK_IFACE)))
        return -1;

    /* the running interface, as its port made it */
    oldNet = oldDef->nets[0];
    oldNet->info.alias = g_strdup("net0");
    oldNet->ifname = g_strdup("vnet7");
    if (virDomainNetDefActualFromNetworkPort(oldNet, port) < 0)
        return -1;
    memcpy(oldNet->data.network.portid, port->uuid, VIR_UUID_BUFLEN);

    if (!(vm = virDomainObjNew(driver.xmlopt)) ||
        !(vm->def = testParseDef(TEST_NETWORK_IFACE)))
        return -1;
    virObjectUnlock(vm);
    QEMU_DOMAIN_PRIVATE(vm)->qemuCaps = virObjectRef(localmigCaps);
    QEMU_DOMAIN_PRIVATE(vm)->localGeneration = QEMU_MIGRATION_LOCAL_GENERATION_V10;
    newNet = vm->def->nets[0];

    if (qemuMigrationLocalPrepareHandover(local, oldDef, vm->def) < 0)
        return -1;

    if (!(oldPort = testPortOf(oldDef, oldNet)) ||
        !(newPort = testPortOf(vm->def, newNet)))
        return -1;
    if (STRNEQ(oldPort, newPort)) {
        VIR_TEST_VERBOSE("\nport of the new definition:\n%s\nexpected:\n%s",
                         newPort, oldPort);
        return -1;
    }
    if (STRNEQ_NULLABLE(newNet->ifname, "vnet7") ||
        !QEMU_DOMAIN_NETWORK_PRIVATE(newNet)->incomingFds ||
        local->nnets != 1 || STRNEQ_NULLABLE(local->nets[0].ifname, "vnet7")) {
        VIR_TEST_VERBOSE("\nTAP '%s' not handed over", NULLSTR(newNet->ifname));
        return -1;
    }

    if (qemuProcessPrepareDomain(&driver, vm,
                                 VIR_QEMU_PROCESS_START_PRETEND |
                                 VIR_QEMU_PROCESS_START_COLD) < 0)
        return -1;

    g_clear_pointer(&newPort, g_free);
    if (!(newPort = testPortOf(vm->def, newNet)) ||
        STRNEQ(oldPort, newPort)) {
        VIR_TEST_VERBOSE("\nthe start of the new process changed the port");
        return -1;
    }

    if (!(props = qemuBuildHostNetProps(vm, newNet)) ||
        testCheckArguments(localmigSchema, "netdev_add", props,
                           "{\"type\":\"tap\",\"incoming-fds\":true,\"script\":\"no\","
                           "\"downscript\":\"no\",\"id\":\"hostnet0\"}") < 0)
        return -1;

    return 0;
}


typedef struct {
    qemuMigrationLocalNetOwner owner;  /* of the handed-over TAP */
    qemuMigrationLocalWhich which;     /* the process being stopped */
    const char *kept;                  /* aliases its stop may tear down */
} testKeepOutData;

/* The stop of either process tears down only what the owner of each TAP
 * lets it: a process's own TAP always, a handed-over one only where it
 * belongs to the process being stopped. */
static int
testKeepOut(const void *opaque)
{
    const testKeepOutData *data = opaque;
    g_autoptr(qemuMigrationLocal) local = qemuMigrationLocalNew();
    g_autoptr(virDomainDef) def = NULL;
    g_auto(virBuffer) kept = VIR_BUFFER_INITIALIZER;
    size_t i;

    if (!(def = testParseDef("<interface type='bridge'>"
                             "  <source bridge='br0'/><target dev='lmtap0'/>"
                             "  <model type='virtio'/><backend transfer='on'/>"
                             "</interface>"
                             "<interface type='bridge'>"
                             "  <source bridge='br0'/><model type='virtio'/>"
                             "</interface>")))
        return -1;
    def->nets[0]->info.alias = g_strdup("net0");
    def->nets[1]->info.alias = g_strdup("net1");
    qemuMigrationLocalAddNet(local, "net0", "lmtap0", NULL)->handover = true;
    qemuMigrationLocalAddNet(local, "net1", "vnet1", "vnet2");
    qemuMigrationLocalSetOwner(local, data->owner);

    qemuMigrationLocalKeepOut(local, def, data->which);
    for (i = 0; i < def->nnets; i++)
        virBufferAsprintf(&kept, "%s ", def->nets[i]->info.alias);
    virBufferTrim(&kept, " ");

    if (STRNEQ(virBufferCurrentContent(&kept), data->kept)) {
        VIR_TEST_VERBOSE("\nkept for the stop: '%s', expected '%s'",
                         virBufferCurrentContent(&kept), data->kept);
        return -1;
    }
    return 0;
}


/* The migration parameter both processes get, in each generation. */
static int
testParamJSON(const void *opaque)
{
    bool upstream = !!opaque;
    const qemuMigrationLocalDialect *dialect;
    g_autoptr(qemuMigrationParams) params = NULL;
    g_autoptr(virJSONValue) json = NULL;

    dialect = qemuMigrationLocalDialectGet(upstream ? QEMU_MIGRATION_LOCAL_GENERATION_LOCAL :
                                           QEMU_MIGRATION_LOCAL_GENERATION_V10);
    if (!dialect ||
        !(params = qemuMigrationParamsFromFlags(NULL, 0, VIR_MIGRATE_LIVE,
                                                QEMU_MIGRATION_SOURCE)) ||
        qemuMigrationParamsSetBool(params, dialect->param, true) < 0 ||
        !(json = qemuMigrationParamsToJSON(params, false)))
        return -1;

    return testCheckArguments(upstream ? upstreamSchema : localmigSchema,
                              "migrate-set-parameters", json,
                              upstream ? "{\"local\":true}" :
                              "{\"backend-transfer\":true}");
}


/*
 * The STOP handler writes the status XML (a synced write on the monitor's
 * event thread) except while a local migration moves the domain: then
 * that write would hold back the completion event the paused guest waits
 * for, and the migration saves the status itself.
 */
static int
testSavesStop(const void *opaque G_GNUC_UNUSED)
{
    g_autoptr(virDomainObj) vm = NULL;
    qemuDomainJobPrivate *jobPriv;
    bool idle, outgoing, local;

    if (!(vm = virDomainObjNew(driver.xmlopt)))
        return -1;
    jobPriv = vm->job->privateData;

    idle = qemuMigrationLocalSavesStop(vm);
    vm->job->asyncJob = VIR_ASYNC_JOB_MIGRATION_OUT;
    outgoing = qemuMigrationLocalSavesStop(vm);
    jobPriv->local = qemuMigrationLocalNew();
    local = qemuMigrationLocalSavesStop(vm);
    g_clear_pointer(&jobPriv->local, qemuMigrationLocalFree);
    vm->job->asyncJob = VIR_ASYNC_JOB_NONE;

    if (!idle || !outgoing || local) {
        VIR_TEST_VERBOSE("\nsaves at stop: no job %d, other migration %d, local migration %d",
                         idle, outgoing, local);
        return -1;
    }
    return 0;
}



typedef struct {
    bool upstream;      /* the upstream generation, else v10 */
    const char *param;  /* its migration parameter */
    /* the netdev and device added after the parameter (NULL: none) */
    const char *netdev;
    const char *device;
    bool linkDown;      /* the interface's <link state='down'/> */
    bool sharedMemory;  /* VIR_MIGRATE_LOCAL_SHARED_MEMORY */
} testConversationData;

/* Expects @command with @args (JSON, NULL: none), as the @id-th. */
static int
testExpect(qemuMonitorTest *test,
           size_t *id,
           const char *command,
           const char *args,
           const char *why,
           const char *reply)
{
    g_autofree char *cmd = NULL;

    cmd = g_strdup_printf("{\"execute\":\"%s\",%s%s%s \"id\":\"libvirt-%zu\"}",
                          command, args ? " \"arguments\":" : "",
                          NULLSTR_EMPTY(args), args ? "," : "", ++*id);
    return qemuMonitorTestAddItemVerbatim(test, cmd, why, reply);
}


/* The new process's QMP conversation, in the order its generation needs:
 * the parameter on before the stream starts, the netdev and device that
 * must wait for it, the stream from the socket pair, the parameter reset
 * afterwards. */
static int
testDstConversation(const void *opaque)
{
    const testConversationData *data = opaque;
    g_autoptr(virDomainObj) vm = NULL;
    g_autoptr(qemuMonitorTest) test = NULL;
    g_autoptr(qemuMigrationParams) params = NULL;
    g_autoptr(virJSONValue) netdev = NULL;
    g_autofree char *on = g_strdup_printf("{\"%s\":true}", data->param);
    g_autofree char *off = g_strdup_printf("{\"%s\":false}", data->param);
    g_autofree char *queried = g_strdup_printf("{\"return\":%s}", off);
    const qemuMigrationLocalDialect *dialect;
    qemuDomainObjPrivate *priv;
    qemuDomainJobPrivate *jobPriv;
    g_autoptr(virBitmap) noCaps = virBitmapNew(QEMU_MIGRATION_CAP_LAST);
    const unsigned int flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_LOCAL |
        VIR_MIGRATE_LOCAL_BACKEND_TRANSFER |
        (data->sharedMemory ? VIR_MIGRATE_LOCAL_SHARED_MEMORY : 0);
    /* RAM in a shared file is left out of the stream, on both sides */
    const char *caps = data->sharedMemory ?
        "{\"capabilities\":[{\"capability\":\"return-path\",\"state\":true},"
        "{\"capability\":\"x-ignore-shared\",\"state\":true}]}" :
        "{\"capabilities\":[{\"capability\":\"return-path\",\"state\":true}]}";
    size_t id = 0;
    int ret = -1;

    if (!(vm = virDomainObjNew(driver.xmlopt)) ||
        !(vm->def = testParseDef("<interface type='bridge'>"
                                 "  <source bridge='br0'/><target dev='lmtap0'/>"
                                 "  <mac address='52:54:00:4c:4d:02'/>"
                                 "  <model type='virtio'/><backend transfer='on'/>"
                                 "</interface>")))
        return -1;
    vm->def->id = 2;
    if (data->linkDown)
        vm->def->nets[0]->linkstate = VIR_DOMAIN_NET_INTERFACE_LINK_STATE_DOWN;
    priv = vm->privateData;
    priv->driver = &driver;
    priv->localShadow = true; /* a process of its own: no status XML */
    priv->qemuCaps = virObjectRef(data->upstream ? upstreamCaps : localmigCaps);
    priv->localGeneration = data->upstream ? QEMU_MIGRATION_LOCAL_GENERATION_LOCAL :
                                             QEMU_MIGRATION_LOCAL_GENERATION_V10;
    dialect = qemuMigrationLocalDialectGet(priv->localGeneration);
    /* what the destination of any migration asks for */
    priv->migrationCaps = virBitmapNew(QEMU_MIGRATION_CAP_LAST);
    ignore_value(virBitmapSetBit(priv->migrationCaps,
                                 QEMU_MIGRATION_CAP_RETURN_PATH));
    if (data->sharedMemory)
        ignore_value(virBitmapSetBit(priv->migrationCaps,
                                     QEMU_MIGRATION_CAP_X_IGNORE_SHARED));
    jobPriv = vm->job->privateData;

    /* the command line keeps the netdev and device back, or has them */
    if (qemuAssignDeviceAliases(vm->def) < 0)
        return -1;
    QEMU_DOMAIN_NETWORK_PRIVATE(vm->def->nets[0])->incomingFds = true;
    if (!(netdev = qemuBuildHostNetProps(vm, vm->def->nets[0])) ||
        qemuMigrationLocalDeferNic(vm, vm->def->nets[0], &netdev) != !!data->netdev) {
        VIR_TEST_VERBOSE("\nthe netdev %s on the command line",
                         data->netdev ? "stays" : "is not");
        return -1;
    }

    if (!(test = qemuMonitorTestNew(driver.xmlopt, vm, NULL,
                                    data->upstream ? upstreamSchema : localmigSchema))) {
        VIR_TEST_VERBOSE("\nno test monitor: %s", virGetLastErrorMessage());
        return -1;
    }
    priv->mon = qemuMonitorTestGetMonitor(test);
    /* the test monitor comes locked; the code under test locks it */
    virObjectUnlock(priv->mon);

    if (testExpect(test, &id, "query-migrate-parameters", NULL, NULL, queried) < 0 ||
        testExpect(test, &id, "migrate-set-capabilities", caps,
                   "the capabilities must be set before the stream starts",
                   "{\"return\":{}}") < 0 ||
        testExpect(test, &id, "migrate-set-parameters", on,
                   "the parameter must be on before the stream starts",
                   "{\"return\":{}}") < 0)
        goto cleanup;
    if (data->netdev &&
        (testExpect(test, &id, "netdev_add", data->netdev,
                    "the netdev comes once the parameter is on",
                    "{\"return\":{}}") < 0 ||
         testExpect(test, &id, "device_add", data->device,
                    "its device comes after it", "{\"return\":{}}") < 0))
        goto cleanup;
    if (data->netdev && data->linkDown &&
        testExpect(test, &id, "set_link", "{\"name\":\"net0\",\"up\":false}",
                   "a device that is down is set down once it exists",
                   "{\"return\":{}}") < 0)
        goto cleanup;
    if (testExpect(test, &id, "migrate-incoming",
                   "{\"uri\":\"fd:14\", \"exit-on-error\":false}",
                   "the stream must come from the socket pair",
                   "{\"return\":{}}") < 0 ||
        qemuMonitorTestAddItem(test, "migrate-set-capabilities",
                               "{\"return\":{}}") < 0)
        goto cleanup;
    ++id;
    if (testExpect(test, &id, "migrate-set-parameters", off,
                   "the parameter must be reset afterwards",
                   "{\"return\":{}}") < 0)
        goto cleanup;

    if (virDomainObjBeginAsyncJob(vm, VIR_ASYNC_JOB_MIGRATION_IN,
                                  VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN,
                                  flags) < 0)
        goto cleanup;

    if (!(params = qemuMigrationParamsFromFlags(NULL, 0, flags,
                                                QEMU_MIGRATION_DESTINATION)) ||
        qemuMigrationParamsSetBool(params, dialect->param, true) < 0 ||
        qemuMigrationParamsCheck(vm, VIR_ASYNC_JOB_MIGRATION_IN, params,
                                 noCaps, noCaps) < 0 ||
        qemuMigrationLocalDstRun(vm, "fd:14", VIR_ASYNC_JOB_MIGRATION_IN,
                                 params, flags) < 0)
        goto endjob;

    qemuMigrationParamsReset(vm, VIR_ASYNC_JOB_MIGRATION_IN,
                             jobPriv->migParams, flags);
    if (virGetLastErrorCode() != VIR_ERR_OK)
        goto endjob;

    ret = 0;

 endjob:
    virDomainObjEndAsyncJob(vm);
 cleanup:
    if (ret < 0)
        VIR_TEST_VERBOSE("\n%s", virGetLastErrorMessage());
    if (priv->mon)
        virObjectLock(priv->mon);
    priv->mon = NULL;
    return ret;
}


typedef struct {
    const char *backing;  /* inside <memoryBacking> */
    bool numa;            /* two NUMA cells */
    const char *cellAccess; /* memAccess of the second cell, NULL: none */
    bool dimm;            /* a memory device */
    const char *error;    /* why the memory cannot be shared */
    qemuMigrationLocalMemory kind; /* how it is shared */
} testMemoryData;

static virDomainDef *
testParseMemoryDef(const testMemoryData *data)
{
    g_autofree char *cell = g_strdup_printf("<cell id='1' cpus='1' memory='131072' unit='KiB'%s%s%s/>",
                                            data->cellAccess ? " memAccess='" : "",
                                            NULLSTR_EMPTY(data->cellAccess),
                                            data->cellAccess ? "'" : "");
    g_autofree char *xml = NULL;

    xml = g_strdup_printf("<domain type='qemu'>"
                          "  <name>guest1</name>"
                          "  <uuid>5d2b4a8e-1f3c-4c6e-9a57-0b8e2f6d7c31</uuid>"
                          "  %s"
                          "  <memory unit='KiB'>262144</memory>"
                          "  <memoryBacking>%s</memoryBacking>"
                          "  <vcpu>2</vcpu>"
                          "  <os><type arch='x86_64' machine='pc'>hvm</type></os>"
                          "  %s%s%s"
                          "  <devices>"
                          "    <emulator>/usr/bin/qemu-system-x86_64</emulator>"
                          "    %s"
                          "  </devices>"
                          "</domain>",
                          data->dimm ? "<maxMemory slots='2' unit='KiB'>1048576</maxMemory>" : "",
                          data->backing,
                          data->numa ? "<cpu><numa><cell id='0' cpus='0' memory='131072' unit='KiB'/>" : "",
                          data->numa ? cell : "",
                          data->numa ? "</numa></cpu>" : "",
                          data->dimm ? "<memory model='dimm'><target><size unit='KiB'>131072</size><node>0</node></target></memory>" : "");

    return virDomainDefParseString(xml, driver.xmlopt, NULL,
                                   VIR_DOMAIN_DEF_PARSE_INACTIVE);
}


/* Which memory the new process can map instead of receiving a copy. */
static int
testMemory(const void *opaque)
{
    const testMemoryData *data = opaque;
    g_autoptr(virDomainDef) def = NULL;
    qemuMigrationLocalMemory kind;
    const char *why;

    if (!(def = testParseMemoryDef(data)))
        return -1;

    kind = qemuMigrationLocalMemoryOf(def, &why);
    if (!data->error != !why || (why && !strstr(why, data->error))) {
        VIR_TEST_VERBOSE("\nreason '%s', expected '%s'",
                         NULLSTR(why), NULLSTR(data->error));
        return -1;
    }
    if (kind != data->kind) {
        VIR_TEST_VERBOSE("\nway %d, expected %d", kind, data->kind);
        return -1;
    }
    return 0;
}


/* A new process of a cpr-transfer job: the second -incoming, on a socket
 * of its own directory; none for a copy, a shared file, or a process
 * that is not a local migration's. */
static int
testCprIncoming(const void *opaque G_GNUC_UNUSED)
{
    const testMemoryData memfd = { .backing = "<source type='memfd'/><access mode='shared'/>" };
    const testMemoryData file = { .backing = "<source type='file'/><access mode='shared'/>" };
    const char *expect =
        "-incoming '{\"channel-type\":\"cpr\",\"addr\":{\"transport\":\"socket\","
        "\"type\":\"unix\",\"path\":\"/var/lib/libvirt/qemu/domain-4-guest1/cpr.sock\"}}'";
    struct {
        const testMemoryData *mem;
        bool shadow;
        unsigned int flags;
        const char *args;
    } cases[] = {
        { &memfd, true, VIR_MIGRATE_LOCAL | VIR_MIGRATE_LOCAL_SHARED_MEMORY, expect },
        { &memfd, true, VIR_MIGRATE_LOCAL, "" },
        { &memfd, false, VIR_MIGRATE_LOCAL | VIR_MIGRATE_LOCAL_SHARED_MEMORY, "" },
        { &file, true, VIR_MIGRATE_LOCAL | VIR_MIGRATE_LOCAL_SHARED_MEMORY, "" },
    };
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(virDomainObj) vm = NULL;
        g_autoptr(virCommand) cmd = virCommandNew("qemu");
        g_autofree char *args = NULL;
        const char *actual;

        if (!(vm = virDomainObjNew(driver.xmlopt)) ||
            !(vm->def = testParseMemoryDef(cases[i].mem)))
            return -1;
        QEMU_DOMAIN_PRIVATE(vm)->localShadow = cases[i].shadow;
        QEMU_DOMAIN_PRIVATE(vm)->libDir = g_strdup("/var/lib/libvirt/qemu/domain-4-guest1");
        vm->job->apiFlags = cases[i].flags;

        if (qemuMigrationLocalBuildIncoming(cmd, vm) < 0 ||
            !(args = virCommandToString(cmd, false)))
            return -1;
        actual = args + strlen("qemu");
        virSkipSpaces(&actual);
        if (STRNEQ(actual, cases[i].args)) {
            VIR_TEST_VERBOSE("\ncase %zu: '%s', expected '%s'", i, actual, cases[i].args);
            return -1;
        }
    }
    return 0;
}


/* The source's side of a cpr-transfer: the mode (valid for the reference
 * QEMU), then migrate with the main and the CPR channel, both UNIX
 * sockets. libvirt's schema validator does not descend into a union
 * inside a union (MigrationAddress's socket is a SocketAddress), so
 * migrate is compared only; e2e-cpr-transfer runs it against QEMU. */
static int
testCprSource(const void *opaque G_GNUC_UNUSED)
{
    g_autoptr(virDomainObj) vm = NULL;
    g_autoptr(qemuMonitorTest) test = NULL;
    g_autoptr(virJSONValue) mode = NULL;
    qemuMonitor *mon;
    size_t id = 0;

    if (!(vm = virDomainObjNew(driver.xmlopt)) ||
        !(vm->def = testParseDef("")))
        return -1;
    vm->def->id = 1;
    if (virJSONValueObjectAdd(&mode, "s:mode", "cpr-transfer", NULL) < 0 ||
        testCheckArguments(cprSchema, "migrate-set-parameters", mode,
                           "{\"mode\":\"cpr-transfer\"}") < 0)
        return -1;
    if (!(test = qemuMonitorTestNew(driver.xmlopt, vm, NULL, NULL))) {
        VIR_TEST_VERBOSE("\nno test monitor: %s", virGetLastErrorMessage());
        return -1;
    }
    /* the test monitor comes locked, as the monitor code wants it */
    mon = qemuMonitorTestGetMonitor(test);

    if (testExpect(test, &id, "migrate-set-parameters", "{\"mode\":\"cpr-transfer\"}",
                   "the mode comes before migrate", "{\"return\":{}}") < 0 ||
        testExpect(test, &id, "migrate",
                   "{\"detach\":true,\"resume\":false,\"channels\":["
                   "{\"channel-type\":\"main\",\"addr\":{\"transport\":\"socket\","
                   "\"type\":\"unix\",\"path\":\"/run/new/migrate.sock\"}},"
                   "{\"channel-type\":\"cpr\",\"addr\":{\"transport\":\"socket\","
                   "\"type\":\"unix\",\"path\":\"/run/new/cpr.sock\"}}]}",
                   "both channels", "{\"return\":{}}") < 0)
        return -1;

    if (qemuMonitorSetMigrationParams(mon, &mode) < 0 ||
        qemuMonitorMigrateToSocketWithCpr(mon, 0, "/run/new/migrate.sock",
                                          "/run/new/cpr.sock") < 0) {
        VIR_TEST_VERBOSE("\n%s", virGetLastErrorMessage());
        return -1;
    }
    return 0;
}


/* The running binary must have x-ignore-shared, and the error names it;
 * so must the definition the new process starts from. */
static int
testCheckMemory(const void *opaque G_GNUC_UNUSED)
{
    const testMemoryData shared = { .backing = "<source type='file'/><access mode='shared'/>" };
    const testMemoryData private = { .backing = "<source type='file'/>" };
    const testMemoryData memfd = { .backing = "<source type='memfd'/><access mode='shared'/>" };
    g_autoptr(virDomainObj) vm = NULL;
    g_autoptr(virDomainDef) newDef = NULL;
    g_autoptr(virDomainDef) privateDef = NULL;
    g_autoptr(virDomainDef) fileDef = NULL;
    qemuDomainObjPrivate *priv;

    if (!(vm = virDomainObjNew(driver.xmlopt)) ||
        !(vm->def = testParseMemoryDef(&shared)) ||
        !(newDef = testParseMemoryDef(&shared)) ||
        !(fileDef = testParseMemoryDef(&shared)) ||
        !(privateDef = testParseMemoryDef(&private)))
        return -1;
    priv = vm->privateData;
    priv->migrationCaps = virBitmapNew(QEMU_MIGRATION_CAP_LAST);

    if (testCheckResult(qemuMigrationLocalCheckMemory(vm, newDef),
                        "QEMU binary '/usr/bin/qemu-system-x86_64' cannot share the guest's memory in a local migration: it lacks the migration capability 'x-ignore-shared'") < 0)
        return -1;

    ignore_value(virBitmapSetBit(priv->migrationCaps,
                                 QEMU_MIGRATION_CAP_X_IGNORE_SHARED));
    if (testCheckResult(qemuMigrationLocalCheckMemory(vm, newDef), NULL) < 0)
        return -1;

    if (testCheckResult(qemuMigrationLocalCheckMemory(vm, privateDef),
                        "cannot share the memory of domain 'guest1' with its new process: its memory is private") < 0)
        return -1;

    /* a memfd goes by cpr-transfer, which the binary must have */
    virDomainDefFree(vm->def);
    g_clear_pointer(&newDef, virDomainDefFree);
    if (!(vm->def = testParseMemoryDef(&memfd)) ||
        !(newDef = testParseMemoryDef(&memfd)))
        return -1;
    priv->qemuCaps = virQEMUCapsNew();
    if (testCheckResult(qemuMigrationLocalCheckMemory(vm, newDef),
                        "QEMU binary '/usr/bin/qemu-system-x86_64' cannot pass the guest's memfd memory in a local migration: it lacks the migration mode 'cpr-transfer'") < 0)
        return -1;
    virQEMUCapsSet(priv->qemuCaps, QEMU_CAPS_MIGRATION_MODE_CPR_TRANSFER);
    if (qemuMigrationLocalCheckMemory(vm, newDef) != QEMU_MIGRATION_LOCAL_MEMORY_MEMFD) {
        VIR_TEST_VERBOSE("\nmemfd memory not passed by cpr-transfer: %s",
                         virGetLastErrorMessage());
        return -1;
    }

    /* both processes' memory the same way */
    return testCheckResult(qemuMigrationLocalCheckMemory(vm, fileDef),
                           "the new definition backs the memory differently");
}


/* The new process's RAM file is the running one's when they share the
 * memory, and one of its own (its id's directory) when it is copied. */
static int
testShareMemory(const void *opaque)
{
    bool share = !!opaque;
    g_autoptr(virDomainObj) vm = NULL;
    g_autoptr(virDomainObj) shadow = NULL;
    g_autofree char *oldPath = NULL;
    g_autofree char *newPath = NULL;

    if (!(vm = virDomainObjNew(driver.xmlopt)) ||
        !(shadow = virDomainObjNew(driver.xmlopt)) ||
        !(vm->def = testParseDef("")) ||
        !(shadow->def = testParseDef("")))
        return -1;
    vm->def->id = 3;
    shadow->def->id = 4;
    QEMU_DOMAIN_PRIVATE(vm)->driver = &driver;
    QEMU_DOMAIN_PRIVATE(shadow)->driver = &driver;

    if (qemuDomainSetPrivatePaths(&driver, vm) < 0)
        return -1;
    /* as the job does, before the new process gets its paths */
    if (share)
        qemuMigrationLocalShareMemory(vm, shadow);
    if (qemuDomainSetPrivatePaths(&driver, shadow) < 0 ||
        qemuDomainGetMemoryBackingPath(vm->privateData, "pc.ram", &oldPath) < 0 ||
        qemuDomainGetMemoryBackingPath(shadow->privateData, "pc.ram", &newPath) < 0)
        return -1;

    if (STREQ(oldPath, newPath) != share || !strstr(newPath, share ? "/3-guest1/" : "/4-guest1/")) {
        VIR_TEST_VERBOSE("\nthe new process's RAM is %s, the running one's %s",
                         newPath, oldPath);
        return -1;
    }
    return 0;
}


typedef struct {
    const char *dir;      /* of the process that is discarded */
    const char *keptDir;  /* of the one the domain keeps */
    bool removed;
} testKeepMemoryData;

/* The stop of a discarded process removes its memory directory unless
 * the process the domain keeps maps the same one. */
static int
testKeepMemoryOut(const void *opaque)
{
    const testKeepMemoryData *data = opaque;
    g_autoptr(virDomainObj) vm = NULL;
    g_autoptr(virDomainObj) discarded = NULL;
    const char *left;

    if (!(vm = virDomainObjNew(driver.xmlopt)) ||
        !(discarded = virDomainObjNew(driver.xmlopt)) ||
        !(vm->def = testParseDef("")))
        return -1;
    QEMU_DOMAIN_PRIVATE(vm)->memoryBackingDir = g_strdup(data->keptDir);
    QEMU_DOMAIN_PRIVATE(discarded)->memoryBackingDir = g_strdup(data->dir);

    if (qemuMigrationLocalMayRemoveMemory(data->dir, data->keptDir) != data->removed) {
        VIR_TEST_VERBOSE("\nthe recovery would %sremove %s",
                         data->removed ? "not " : "", NULLSTR(data->dir));
        return -1;
    }

    qemuMigrationLocalKeepMemoryOut(vm, discarded);
    left = QEMU_DOMAIN_PRIVATE(discarded)->memoryBackingDir;
    if (data->dir && !left != !data->removed) {
        VIR_TEST_VERBOSE("\nthe stop would %sremove %s",
                         data->removed ? "not " : "", data->dir);
        return -1;
    }
    if (STRNEQ_NULLABLE(QEMU_DOMAIN_PRIVATE(vm)->memoryBackingDir, data->keptDir)) {
        VIR_TEST_VERBOSE("\nthe domain's memory directory changed");
        return -1;
    }
    return 0;
}


typedef struct {
    const char *server;
    const char *hostname;
    bool here;
} testHostNameData;

static int
testHostName(const void *opaque)
{
    const testHostNameData *data = opaque;
    bool here = qemuMigrationLocalIsThisHostName(data->server, data->hostname);

    if (here != data->here) {
        VIR_TEST_VERBOSE("\n'%s' on host '%s' taken as %s",
                         NULLSTR(data->server), NULLSTR(data->hostname),
                         here ? "this host" : "another host");
        return -1;
    }
    return 0;
}


/* The names of the fields of the struct called @name in C source @src
 * (comments and array sizes dropped), in order. */
static GStrv
testStructFields(const char *src,
                 const char *name)
{
    g_autofree char *open = g_strdup_printf("struct %s {", name);
    g_autoptr(GPtrArray) fields = g_ptr_array_new();
    g_auto(virBuffer) code = VIR_BUFFER_INITIALIZER;
    g_autofree char *body = NULL;
    g_auto(GStrv) decls = NULL;
    const char *start;
    const char *end;
    const char *p;
    size_t i;

    if (!(start = strstr(src, open)) || !(end = strstr(start, "\n};")))
        return NULL;

    for (p = start + strlen(open); p < end; p++) {
        if (STRPREFIX(p, "/*")) {
            const char *close = strstr(p + 2, "*/");

            if (!close)
                return NULL;
            p = close + 1;
        } else {
            virBufferAddChar(&code, *p);
        }
    }

    body = virBufferContentAndReset(&code);
    decls = g_strsplit(body, ";", -1);
    for (i = 0; decls[i]; i++) {
        char *decl = g_strstrip(decls[i]);
        char *bracket = strchr(decl, '[');
        size_t len;

        if (bracket)
            *bracket = '\0';
        g_strchomp(decl);
        len = strlen(decl);
        while (len > 0 && (g_ascii_isalnum(decl[len - 1]) || decl[len - 1] == '_'))
            len--;
        if (decl[len] != '\0')
            g_ptr_array_add(fields, g_strdup(decl + len));
    }
    g_ptr_array_add(fields, NULL);

    return (GStrv) g_ptr_array_free(g_steal_pointer(&fields), false);
}


/* Whom each field of the private data belongs to must be said: a field
 * added upstream and not classified would silently take the new
 * process's value (or keep the old one's) in every local migration. */
static int
testPrivFieldsClassified(const void *opaque G_GNUC_UNUSED)
{
    const char *header = abs_top_srcdir "/src/qemu/qemu_domain.h";
    g_autofree char *src = NULL;
    g_auto(GStrv) fields = NULL;
    g_autofree unsigned int *seen = g_new0(unsigned int, qemuMigrationLocalNPrivFields);
    int ret = 0;
    size_t i;
    size_t j;

    if (virFileReadAll(header, 1024 * 1024, &src) < 0)
        return -1;

    if (!(fields = testStructFields(src, "_qemuDomainObjPrivate")) || !fields[0]) {
        VIR_TEST_VERBOSE("\nno struct _qemuDomainObjPrivate in %s", header);
        return -1;
    }

    for (i = 0; fields[i]; i++) {
        for (j = 0; j < qemuMigrationLocalNPrivFields; j++) {
            if (STREQ(fields[i], qemuMigrationLocalPrivFields[j].name))
                break;
        }
        if (j == qemuMigrationLocalNPrivFields) {
            VIR_TEST_VERBOSE("\nfield '%s' of qemuDomainObjPrivate is neither the domain's nor the process's",
                             fields[i]);
            ret = -1;
        } else {
            seen[j]++;
        }
    }

    for (j = 0; j < qemuMigrationLocalNPrivFields; j++) {
        if (seen[j] != 1) {
            VIR_TEST_VERBOSE("\nclassified field '%s' is in the struct %u times",
                             qemuMigrationLocalPrivFields[j].name, seen[j]);
            ret = -1;
        }
    }

    return ret;
}


/* The domain's fields stay with the domain, a process's go with it, and
 * a failure that swaps back restores both. Among the domain's: the lock
 * manager's state of the leases the old process released when it
 * stopped, which the new process takes the leases with when it resumes. */
static int
testSwapFields(const void *opaque G_GNUC_UNUSED)
{
    virDomainObj *vm = virDomainObjNew(driver.xmlopt);
    virDomainObj *shadow = virDomainObjNew(driver.xmlopt);
    qemuDomainObjPrivate *old;
    qemuDomainObjPrivate *new;
    int ret = -1;

    if (!vm || !shadow)
        goto cleanup;
    old = vm->privateData;
    new = shadow->privateData;
    old->agentTimeout = 7;
    old->lockState = g_strdup("lease:/var/lib/libvirt/images/guest.qcow2:4");
    old->migMaxBandwidth = 42;
    old->preMigrationState = VIR_DOMAIN_RUNNING;
    old->origname = g_strdup("guest0");
    old->libDir = g_strdup("/old");
    old->nodenameindex = 5;
    new->libDir = g_strdup("/new");
    new->nodenameindex = 9;
    new->localShadow = true;

    qemuMigrationLocalSwap(vm, shadow);
    if (vm->privateData != new || new->agentTimeout != 7 ||
        new->migMaxBandwidth != 42 || new->preMigrationState != VIR_DOMAIN_RUNNING ||
        STRNEQ_NULLABLE(new->origname, "guest0") || old->origname ||
        STRNEQ_NULLABLE(new->lockState, "lease:/var/lib/libvirt/images/guest.qcow2:4") ||
        old->lockState ||
        STRNEQ_NULLABLE(new->libDir, "/new") || new->nodenameindex != 9 ||
        new->localShadow || !old->localShadow) {
        VIR_TEST_VERBOSE("\nafter the swap: timeout %d, bandwidth %lu, origname '%s', libDir '%s', node index %llu",
                         new->agentTimeout, new->migMaxBandwidth,
                         NULLSTR(new->origname), NULLSTR(new->libDir),
                         new->nodenameindex);
        goto cleanup;
    }

    qemuMigrationLocalSwap(vm, shadow);
    if (vm->privateData != old || old->agentTimeout != 7 ||
        STRNEQ_NULLABLE(old->origname, "guest0") ||
        STRNEQ_NULLABLE(old->lockState, "lease:/var/lib/libvirt/images/guest.qcow2:4") ||
        STRNEQ_NULLABLE(old->libDir, "/old") || old->nodenameindex != 5 ||
        old->localShadow) {
        VIR_TEST_VERBOSE("\nswapping back did not restore the old process");
        goto cleanup;
    }

    ret = 0;
 cleanup:
    if (vm)
        virDomainObjEndAPI(&vm);
    if (shadow)
        virDomainObjEndAPI(&shadow);
    return ret;
}


static virSecurityLabelDef *
testSeclabel(const char *model,
             const char *label,
             const char *imagelabel)
{
    virSecurityLabelDef *sec = virSecurityLabelDefNew(model);

    sec->type = VIR_DOMAIN_SECLABEL_DYNAMIC;
    sec->label = g_strdup(label);
    sec->imagelabel = g_strdup(imagelabel);
    return sec;
}


/* The new process gets the running process's labels, not new ones nor
 * what the new definition said: the files carry those, and the SELinux
 * category stays reserved for the domain. */
static int
testKeepSeclabels(const void *opaque G_GNUC_UNUSED)
{
    g_autoptr(virDomainDef) oldDef = virDomainDefNew(driver.xmlopt);
    g_autoptr(virDomainDef) newDef = virDomainDefNew(driver.xmlopt);
    size_t i;

    oldDef->nseclabels = 3;
    oldDef->seclabels = g_new0(virSecurityLabelDef *, 3);
    oldDef->seclabels[0] = testSeclabel("selinux",
                                        "system_u:system_r:svirt_t:s0:c10,c20",
                                        "system_u:object_r:svirt_image_t:s0:c10,c20");
    oldDef->seclabels[1] = testSeclabel("apparmor",
                                        "libvirt-4a802f00-4cba-5df6-9679-a08c4c5b577f",
                                        "libvirt-4a802f00-4cba-5df6-9679-a08c4c5b577f");
    oldDef->seclabels[2] = testSeclabel("dac", "+64055:+64055", "+64055:+64055");
    oldDef->seclabels[2]->relabel = true;

    /* what a --xml of the user's may carry */
    newDef->nseclabels = 1;
    newDef->seclabels = g_new0(virSecurityLabelDef *, 1);
    newDef->seclabels[0] = testSeclabel("selinux",
                                        "system_u:system_r:svirt_t:s0:c30,c40",
                                        NULL);

    qemuMigrationLocalKeepSeclabels(oldDef, newDef);

    if (newDef->nseclabels != oldDef->nseclabels) {
        VIR_TEST_VERBOSE("\n%zu labels, want %zu", newDef->nseclabels,
                         oldDef->nseclabels);
        return -1;
    }
    for (i = 0; i < oldDef->nseclabels; i++) {
        virSecurityLabelDef *a = oldDef->seclabels[i];
        virSecurityLabelDef *b = newDef->seclabels[i];

        if (a == b || STRNEQ(a->model, b->model) ||
            STRNEQ_NULLABLE(a->label, b->label) ||
            STRNEQ_NULLABLE(a->imagelabel, b->imagelabel) ||
            STRNEQ_NULLABLE(a->baselabel, b->baselabel) ||
            a->type != b->type || a->relabel != b->relabel) {
            VIR_TEST_VERBOSE("\nlabel %zu (%s) is not the running one's: '%s'",
                             i, a->model, NULLSTR(b->label));
            return -1;
        }
    }
    return 0;
}


/* The new binary's capabilities, once per job; a binary that cannot be
 * probed is named with the cause. */
static int
testLookupCaps(const void *opaque)
{
    const char *binary = opaque;
    g_autoptr(virQEMUCaps) caps = NULL;
    bool probed = STRPREFIX(binary, "/usr/");

    caps = qemuMigrationLocalLookupCaps(&driver, binary);
    if (probed)
        return testCheckResult(caps ? 0 : -1, NULL);

    if (testCheckResult(caps ? 0 : -1, binary) < 0)
        return -1;
    /* again, for the cause: the test driver's cache cannot be written */
    caps = qemuMigrationLocalLookupCaps(&driver, binary);
    return testCheckResult(caps ? 0 : -1,
                           "for a local migration: Unable to create directory");
}


static int
mymain(void)
{
    g_autoptr(GHashTable) capslatest = testQemuGetLatestCaps();
    g_autoptr(GHashTable) capscache = virHashNew(virObjectUnref);
    g_autoptr(virQEMUCaps) caps = NULL;
    g_autofree char *hostname = NULL;
    g_autofree char *hostURI = NULL;
    const unsigned int nova = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER |
        VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE |
        VIR_MIGRATE_LOCAL;
    int ret = 0;

    if (qemuTestDriverInit(&driver) < 0)
        return EXIT_FAILURE;

    /* the test monitor runs on the event loop */
    virEventRegisterDefaultImpl();

    if (testQemuInsertRealCaps(driver.qemuCapsCache, "x86_64", "latest", "",
                               capslatest, capscache, NULL, NULL) < 0 ||
        !(caps = virQEMUCapsCacheLookup(driver.qemuCapsCache,
                                        "/usr/bin/qemu-system-x86_64"))) {
        ret = -1;
        goto cleanup;
    }
    /* a binary that can start interfaces with <backend transfer='on'/> */
    virQEMUCapsSet(caps, QEMU_CAPS_VIRTIO_NET_BACKEND_TRANSFER);

#define DO_TEST_FLAGS(name, fl, use, err) \
    do { \
        const testFlagsData data = { .flags = (fl), .useFlags = (use), \
                                     .error = (err) }; \
        if (virTestRun("flags " name, testFlags, &data) < 0) \
            ret = -1; \
    } while (0)

    /* Nova's set: persistence flags are accepted and do nothing */
    DO_TEST_FLAGS("nova", nova, VIR_MIGRATE_LIVE | VIR_MIGRATE_LOCAL, NULL);
    DO_TEST_FLAGS("nova auto-converge", nova | VIR_MIGRATE_AUTO_CONVERGE,
                  VIR_MIGRATE_LIVE | VIR_MIGRATE_LOCAL |
                  VIR_MIGRATE_AUTO_CONVERGE, NULL);
    DO_TEST_FLAGS("paused", VIR_MIGRATE_LOCAL | VIR_MIGRATE_PAUSED,
                  VIR_MIGRATE_LOCAL | VIR_MIGRATE_PAUSED, NULL);
    DO_TEST_FLAGS("abort on error",
                  VIR_MIGRATE_LOCAL | VIR_MIGRATE_ABORT_ON_ERROR |
                  VIR_MIGRATE_COMPRESSED,
                  VIR_MIGRATE_LOCAL | VIR_MIGRATE_ABORT_ON_ERROR |
                  VIR_MIGRATE_COMPRESSED, NULL);
    DO_TEST_FLAGS("tls", nova | VIR_MIGRATE_TLS, 0, "VIR_MIGRATE_TLS");
    DO_TEST_FLAGS("tunnelled", nova | VIR_MIGRATE_TUNNELLED, 0,
                  "VIR_MIGRATE_TUNNELLED");
    DO_TEST_FLAGS("postcopy", nova | VIR_MIGRATE_POSTCOPY, 0,
                  "VIR_MIGRATE_POSTCOPY");
    DO_TEST_FLAGS("postcopy resume", VIR_MIGRATE_LOCAL |
                  VIR_MIGRATE_POSTCOPY_RESUME, 0,
                  "VIR_MIGRATE_POSTCOPY_RESUME");
    DO_TEST_FLAGS("parallel", VIR_MIGRATE_LOCAL | VIR_MIGRATE_PARALLEL, 0,
                  "VIR_MIGRATE_PARALLEL");
    DO_TEST_FLAGS("offline", VIR_MIGRATE_LOCAL | VIR_MIGRATE_OFFLINE, 0,
                  "VIR_MIGRATE_OFFLINE");
    DO_TEST_FLAGS("non-shared disk", VIR_MIGRATE_LOCAL |
                  VIR_MIGRATE_NON_SHARED_DISK, 0,
                  "VIR_MIGRATE_NON_SHARED_DISK");
    DO_TEST_FLAGS("zerocopy", VIR_MIGRATE_LOCAL | VIR_MIGRATE_ZEROCOPY, 0,
                  "VIR_MIGRATE_ZEROCOPY");
    DO_TEST_FLAGS("shared memory", nova | VIR_MIGRATE_LOCAL_SHARED_MEMORY,
                  VIR_MIGRATE_LIVE | VIR_MIGRATE_LOCAL |
                  VIR_MIGRATE_LOCAL_SHARED_MEMORY, NULL);
    DO_TEST_FLAGS("unknown", VIR_MIGRATE_LOCAL | (1U << 31), 0,
                  "0x80000000");

#define DO_TEST_PARAMS(name, err, ...) \
    do { \
        const testParamsData data = { __VA_ARGS__, .error = (err) }; \
        if (virTestRun("params " name, testParams, &data) < 0) \
            ret = -1; \
    } while (0)

    DO_TEST_PARAMS("none", NULL, .dname = NULL);
    DO_TEST_PARAMS("same name", NULL, .dname = "guest1");
    DO_TEST_PARAMS("rename", "'guest2'", .dname = "guest2");
    DO_TEST_PARAMS("graphics uri", VIR_MIGRATE_PARAM_GRAPHICS_URI,
                   .graphicsuri = "spice://localhost:5901");
    DO_TEST_PARAMS("listen address", VIR_MIGRATE_PARAM_LISTEN_ADDRESS,
                   .listenAddress = "127.0.0.1");
    DO_TEST_PARAMS("migrate disks", VIR_MIGRATE_PARAM_MIGRATE_DISKS,
                   .disk = "vda");
    DO_TEST_PARAMS("disks port", VIR_MIGRATE_PARAM_DISKS_PORT,
                   .nbdPort = 49153);
    DO_TEST_PARAMS("disks uri", VIR_MIGRATE_PARAM_DISKS_URI,
                   .nbdURI = "unix:///run/nbd.sock");

#define DO_TEST_URI(u, err) \
    do { \
        const testURIData data = { .uri = (u), .error = (err) }; \
        if (virTestRun("uri " #u, testURI, &data) < 0) \
            ret = -1; \
    } while (0)

    DO_TEST_URI(NULL, NULL);
    DO_TEST_URI("qemu:///system", NULL);
    DO_TEST_URI("qemu:///embed?root=/var/tmp/lm", NULL);
    DO_TEST_URI("qemu+unix:///system", NULL);
    DO_TEST_URI("qemu+ssh://localhost/system", NULL);
    DO_TEST_URI("test:///default", "'test:///default'");
    DO_TEST_URI("xen:///system", "--local");
    if ((hostname = virGetHostnameQuiet())) {
        hostURI = g_strdup_printf("qemu+tcp://%s/system", hostname);
        DO_TEST_URI(hostURI, NULL);
    }

#define DO_TEST_HOSTNAME(srv, host, is) \
    do { \
        const testHostNameData data = { .server = (srv), .hostname = (host), \
                                        .here = (is) }; \
        if (virTestRun("host name " #srv " on " #host, testHostName, &data) < 0) \
            ret = -1; \
    } while (0)

    DO_TEST_HOSTNAME(NULL, "vm", true);
    DO_TEST_HOSTNAME("localhost", "vm", true);
    DO_TEST_HOSTNAME("LocalHost.", "vm", true);
    DO_TEST_HOSTNAME("localhost.localdomain", NULL, true);
    DO_TEST_HOSTNAME("localhost.evil.example", "vm", false);
    DO_TEST_HOSTNAME("127.0.0.1", "vm", true);
    DO_TEST_HOSTNAME("127.1.2.3", "vm", true);
    DO_TEST_HOSTNAME("::1", "vm", true);
    DO_TEST_HOSTNAME("::ffff:127.0.0.1", "vm", true);
    DO_TEST_HOSTNAME("192.0.2.7", "vm", false);
    DO_TEST_HOSTNAME("2001:db8::7", "vm", false);
    DO_TEST_HOSTNAME("vm", "vm", true);
    DO_TEST_HOSTNAME("VM.", "vm", true);
    DO_TEST_HOSTNAME("vm", "vm.example.org", true);
    DO_TEST_HOSTNAME("vm.example.org.", "VM.Example.Org", true);
    /* begins with the short name, but is another machine */
    DO_TEST_HOSTNAME("vm.other.example", "vm", false);
    DO_TEST_HOSTNAME("vm.other.example", "vm.example.org", false);
    DO_TEST_HOSTNAME("vm2", "vm", false);
    DO_TEST_HOSTNAME("v", "vm.example.org", false);
    DO_TEST_HOSTNAME("vm", NULL, false);

#define DO_TEST_DEVICES_FULL(name, dev, bt, err) \
    do { \
        const testDevicesData data = { .devices = (dev), \
                                       .backendTransfer = (bt), \
                                       .error = (err) }; \
        if (virTestRun("devices " name, testDevices, &data) < 0) \
            ret = -1; \
    } while (0)
#define DO_TEST_DEVICES(name, dev, err) \
    DO_TEST_DEVICES_FULL(name, dev, false, err)

    DO_TEST_DEVICES("none", "", NULL);
    DO_TEST_DEVICES("bridge",
                    "<interface type='bridge'>"
                    "  <source bridge='br0'/><model type='virtio'/>"
                    "</interface>", NULL);
    /* a name libvirt chose is dropped and chosen again */
    DO_TEST_DEVICES("bridge generated name",
                    "<interface type='bridge'>"
                    "  <source bridge='br0'/><target dev='vnet7'/>"
                    "  <model type='virtio'/>"
                    "</interface>", NULL);
    DO_TEST_DEVICES("bridge fixed name",
                    "<interface type='bridge'>"
                    "  <source bridge='br0'/><target dev='lmtap0'/>"
                    "  <model type='virtio'/>"
                    "</interface>", "--local-backend-transfer");
    DO_TEST_DEVICES("ethernet unmanaged",
                    "<interface type='ethernet'>"
                    "  <target dev='lmtap0' managed='no'/>"
                    "  <model type='virtio'/>"
                    "</interface>", "unmanaged TAP 'lmtap0'");
    DO_TEST_DEVICES("user",
                    "<interface type='user'><model type='virtio'/></interface>",
                    NULL);
    DO_TEST_DEVICES("user passt",
                    "<interface type='user'>"
                    "  <backend type='passt'/><model type='virtio'/>"
                    "</interface>", "passt");
    /* the old process keeps listening on the port */
    DO_TEST_DEVICES("tcp server",
                    "<interface type='server'>"
                    "  <source address='127.0.0.1' port='5558'/>"
                    "</interface>", "'server'");
    DO_TEST_DEVICES("tpm emulator",
                    "<tpm model='tpm-crb'><backend type='emulator'/></tpm>",
                    "TPM");
    DO_TEST_DEVICES("vnc autoport",
                    "<graphics type='vnc' autoport='yes'/>", NULL);
    DO_TEST_DEVICES("vnc fixed port",
                    "<graphics type='vnc' port='5905' autoport='no'/>",
                    "5905");
    DO_TEST_DEVICES("serial fixed listening socket",
                    "<serial type='unix'>"
                    "  <source mode='bind' path='/run/guest1.serial'/>"
                    "</serial>", "/run/guest1.serial");
    DO_TEST_DEVICES("serial connecting socket",
                    "<serial type='unix'>"
                    "  <source mode='connect' path='/run/guest1.serial'/>"
                    "</serial>", NULL);

    /* with backend transfer a fixed or unmanaged TAP goes along */
#define TEST_HANDOVER_NET \
    "<interface type='ethernet'>" \
    "  <target dev='lmtap0' managed='no'/>" \
    "  <model type='virtio'/><backend transfer='on'/>" \
    "</interface>"
    DO_TEST_DEVICES_FULL("handover unmanaged", TEST_HANDOVER_NET, true, NULL);
    DO_TEST_DEVICES_FULL("handover without the flag", TEST_HANDOVER_NET, false,
                         "unmanaged TAP 'lmtap0'");
    DO_TEST_DEVICES_FULL("handover other interface",
                         TEST_HANDOVER_NET
                         "<interface type='bridge'>"
                         "  <source bridge='br0'/><target dev='lmtap1'/>"
                         "  <model type='virtio'/>"
                         "</interface>", true, "'lmtap1'");

#define TEST_CAPS_SRC QEMU_CAPS_MIGRATION_PARAM_BACKEND_TRANSFER, \
                      QEMU_CAPS_VIRTIO_NET_BACKEND_TRANSFER
#define TEST_CAPS_DST TEST_CAPS_SRC, QEMU_CAPS_NETDEV_TAP_INCOMING_FDS
/* the upstream generation (QEMU 11.2) */
#define TEST_CAPS_SRC_UP QEMU_CAPS_MIGRATION_PARAM_LOCAL, \
                         QEMU_CAPS_NETDEV_TAP_LOCAL_MIGRATION
#define TEST_CAPS_DST_UP TEST_CAPS_SRC_UP, QEMU_CAPS_NETDEV_TAP_INCOMING_FDS
#define TEST_CAPS_BOTH TEST_CAPS_DST, TEST_CAPS_SRC_UP
#define DO_TEST_DIALECT(name, d, err, ...) \
    do { \
        const testDialectData data = { __VA_ARGS__, .dialect = (d), \
                                       .error = (err) }; \
        if (virTestRun("dialect " name, testDialect, &data) < 0) \
            ret = -1; \
    } while (0)

    DO_TEST_DIALECT("v10", "v10", NULL,
                    .src = { TEST_CAPS_SRC }, .dst = { TEST_CAPS_DST });
    /* Debian 12's QEMU 7.2 has none of it */
    DO_TEST_DIALECT("old running binary", NULL,
                    "running QEMU binary '/usr/bin/qemu-old': it lacks migration parameter 'backend-transfer', virtio-net property 'backend-transfer'",
                    .src = { 0 }, .dst = { TEST_CAPS_DST });
    DO_TEST_DIALECT("old new binary", NULL,
                    "new process's QEMU binary '/opt/qemu-new': it lacks migration parameter 'backend-transfer', virtio-net property 'backend-transfer', tap netdev option 'incoming-fds'",
                    .src = { TEST_CAPS_SRC }, .dst = { 0 });
    DO_TEST_DIALECT("new binary without incoming-fds", NULL,
                    "it lacks tap netdev option 'incoming-fds'",
                    .src = { TEST_CAPS_SRC }, .dst = { TEST_CAPS_SRC });
    DO_TEST_DIALECT("upstream", "local", NULL,
                    .src = { TEST_CAPS_SRC_UP }, .dst = { TEST_CAPS_DST_UP });
    /* the newest generation both have */
    DO_TEST_DIALECT("both binaries both", "local", NULL,
                    .src = { TEST_CAPS_BOTH }, .dst = { TEST_CAPS_BOTH });
    DO_TEST_DIALECT("new binary v10 only", "v10", NULL,
                    .src = { TEST_CAPS_BOTH }, .dst = { TEST_CAPS_DST });
    DO_TEST_DIALECT("running binary v10 only", "v10", NULL,
                    .src = { TEST_CAPS_SRC }, .dst = { TEST_CAPS_BOTH });
    DO_TEST_DIALECT("no generation in common", NULL,
                    "the running QEMU binary '/usr/bin/qemu-old' hands TAPs over in generation 'v10', which the new process's QEMU binary '/opt/qemu-new' lacks (migration parameter 'backend-transfer', virtio-net property 'backend-transfer')",
                    .src = { TEST_CAPS_SRC }, .dst = { TEST_CAPS_DST_UP });
    DO_TEST_DIALECT("old running binary, upstream new one", NULL,
                    "running QEMU binary '/usr/bin/qemu-old': it lacks migration parameter 'local', tap netdev option 'local-migration-supported'",
                    .src = { 0 }, .dst = { TEST_CAPS_DST_UP });
    /* a process whose TAPs came in v10 form hands them over in v10 */
    DO_TEST_DIALECT("took v10", "v10", NULL,
                    .src = { TEST_CAPS_BOTH }, .dst = { TEST_CAPS_BOTH },
                    .srcTook = QEMU_MIGRATION_LOCAL_GENERATION_V10);
    /* its NICs got v10's device property from the start, as any process */
    DO_TEST_DIALECT("took upstream, new binary v10 only", "v10", NULL,
                    .src = { TEST_CAPS_BOTH }, .dst = { TEST_CAPS_DST },
                    .srcTook = QEMU_MIGRATION_LOCAL_GENERATION_LOCAL);
    DO_TEST_DIALECT("took v10, new binary upstream only", NULL,
                    "new process's QEMU binary '/opt/qemu-new': it lacks migration parameter 'backend-transfer', virtio-net property 'backend-transfer'",
                    .src = { TEST_CAPS_BOTH }, .dst = { TEST_CAPS_DST_UP },
                    .srcTook = QEMU_MIGRATION_LOCAL_GENERATION_V10);
#define TEST_CAPS_CPR QEMU_CAPS_MIGRATION_MODE_CPR_TRANSFER, QEMU_CAPS_NETDEV_TAP_CPR
    /* the CPR row is a cpr-transfer job's, and no other job's */
    DO_TEST_DIALECT("cpr", "cpr", NULL, .cpr = true,
                    .src = { TEST_CAPS_BOTH, TEST_CAPS_CPR },
                    .dst = { TEST_CAPS_BOTH, TEST_CAPS_CPR });
    DO_TEST_DIALECT("cpr binaries, copy job", "local", NULL,
                    .src = { TEST_CAPS_BOTH, TEST_CAPS_CPR },
                    .dst = { TEST_CAPS_BOTH, TEST_CAPS_CPR });
    DO_TEST_DIALECT("cpr job, new binary without tap cpr", NULL,
                    "new process's QEMU binary '/opt/qemu-new': it lacks tap netdev option 'cpr'",
                    .cpr = true,
                    .src = { TEST_CAPS_BOTH, TEST_CAPS_CPR },
                    .dst = { TEST_CAPS_BOTH, QEMU_CAPS_MIGRATION_MODE_CPR_TRANSFER });
    DO_TEST_DIALECT("cpr job, running binary without cpr", NULL,
                    "running QEMU binary '/usr/bin/qemu-old': it lacks migration mode 'cpr-transfer', tap netdev option 'cpr'",
                    .cpr = true,
                    .src = { TEST_CAPS_BOTH }, .dst = { TEST_CAPS_BOTH, TEST_CAPS_CPR });
    /* its taps have no cpr=on */
    DO_TEST_DIALECT("took upstream, cpr job", NULL,
                    "it took its TAPs in generation 'local', whose taps lack cpr=on",
                    .cpr = true,
                    .src = { TEST_CAPS_BOTH, TEST_CAPS_CPR },
                    .dst = { TEST_CAPS_BOTH, TEST_CAPS_CPR },
                    .srcTook = QEMU_MIGRATION_LOCAL_GENERATION_LOCAL);
    DO_TEST_DIALECT("took cpr, copy job", "v10", NULL,
                    .src = { TEST_CAPS_BOTH, TEST_CAPS_CPR },
                    .dst = { TEST_CAPS_BOTH, TEST_CAPS_CPR },
                    .srcTook = QEMU_MIGRATION_LOCAL_GENERATION_CPR);
#undef TEST_CAPS_CPR

    if (!(localmigSchema = testQEMUSchemaLoad(abs_srcdir "/qemucapabilitiesdata/caps_10.0.13_x86_64+localmig.replies"))) {
        ret = -1;
        goto cleanup;
    }
    testAllowUnstable(localmigSchema);
    if (!(localmigCaps = testQemuGetRealCaps("x86_64", "10.0.13", "+localmig",
                                             capslatest, capscache, NULL, NULL))) {
        ret = -1;
        goto cleanup;
    }
    if (!(upstreamSchema = testQEMUSchemaLoad(abs_srcdir "/qemucapabilitiesdata/caps_10.0.13_x86_64+localmig-local.replies"))) {
        ret = -1;
        goto cleanup;
    }
    testAllowUnstable(upstreamSchema);
    if (!(upstreamCaps = testQemuGetRealCaps("x86_64", "10.0.13", "+localmig-local",
                                             capslatest, capscache, NULL, NULL))) {
        ret = -1;
        goto cleanup;
    }
    if (!(cprSchema = testQEMUSchemaLoad(abs_srcdir "/qemucapabilitiesdata/caps_10.0.13_x86_64+localmig-cpr.replies"))) {
        ret = -1;
        goto cleanup;
    }
    testAllowUnstable(cprSchema);
    if (!(cprCaps = testQemuGetRealCaps("x86_64", "10.0.13", "+localmig-cpr",
                                        capslatest, capscache, NULL, NULL))) {
        ret = -1;
        goto cleanup;
    }

#define DO_TEST_INCOMING(name, xml, nvhost, json) \
    do { \
        const testIncomingData data = { .iface = (xml), \
                                        .nvhostfds = (nvhost), \
                                        .netdev = (json) }; \
        if (virTestRun("incoming netdev " name, testIncoming, &data) < 0) \
            ret = -1; \
    } while (0)
#define TEST_INCOMING_IFACE(more) \
    "<interface type='bridge'>" \
    "  <source bridge='br0'/><target dev='lmtap0'/>" \
    "  <model type='virtio'/>" more \
    "  <backend transfer='on'/>" \
    "</interface>"

    /* nothing to open, attach or configure, no script */
    DO_TEST_INCOMING("single queue", TEST_INCOMING_IFACE(""), 0,
                     "{\"type\":\"tap\",\"incoming-fds\":true,\"script\":\"no\","
                     "\"downscript\":\"no\",\"id\":\"hostnet0\"}");
    DO_TEST_INCOMING("multiqueue", TEST_INCOMING_IFACE("<driver queues='2'/>"), 0,
                     "{\"type\":\"tap\",\"incoming-fds\":true,\"script\":\"no\","
                     "\"downscript\":\"no\",\"queues\":2,\"id\":\"hostnet0\"}");
    /* vhost-net fds are the new process's own */
    DO_TEST_INCOMING("vhost multiqueue",
                     TEST_INCOMING_IFACE("<driver name='vhost' queues='2'/>"), 2,
                     "{\"type\":\"tap\",\"incoming-fds\":true,\"script\":\"no\","
                     "\"downscript\":\"no\",\"queues\":2,\"vhost\":true,"
                     "\"vhostfds\":\"vhostfd-net00:vhostfd-net01\",\"id\":\"hostnet0\"}");
    DO_TEST_INCOMING("vhost", TEST_INCOMING_IFACE("<driver name='vhost'/>"), 1,
                     "{\"type\":\"tap\",\"incoming-fds\":true,\"script\":\"no\","
                     "\"downscript\":\"no\",\"vhost\":true,"
                     "\"vhostfd\":\"vhostfd-net00\",\"id\":\"hostnet0\"}");

    /* the upstream generation: the tap says it migrates itself */
#define DO_TEST_INCOMING_UP(name, xml, json) \
    do { \
        const testIncomingData data = { .iface = (xml), .netdev = (json), \
                                        .upstream = true }; \
        if (virTestRun("incoming netdev upstream " name, testIncoming, &data) < 0) \
            ret = -1; \
    } while (0)
    DO_TEST_INCOMING_UP("single queue", TEST_INCOMING_IFACE(""),
                        "{\"type\":\"tap\",\"incoming-fds\":true,\"script\":\"no\","
                        "\"downscript\":\"no\",\"local-migration-supported\":true,"
                        "\"id\":\"hostnet0\"}");
    DO_TEST_INCOMING_UP("multiqueue", TEST_INCOMING_IFACE("<driver queues='2'/>"),
                        "{\"type\":\"tap\",\"incoming-fds\":true,\"script\":\"no\","
                        "\"downscript\":\"no\",\"queues\":2,"
                        "\"local-migration-supported\":true,\"id\":\"hostnet0\"}");

    /* the CPR generation: the TAP is in the CPR state, no incoming-fds */
#define DO_TEST_INCOMING_CPR(name, xml, json) \
    do { \
        const testIncomingData data = { .iface = (xml), .netdev = (json), \
                                        .cpr = true }; \
        if (virTestRun("incoming netdev cpr " name, testIncoming, &data) < 0) \
            ret = -1; \
    } while (0)
    DO_TEST_INCOMING_CPR("single queue", TEST_INCOMING_IFACE(""),
                         "{\"type\":\"tap\",\"script\":\"no\",\"downscript\":\"no\","
                         "\"cpr\":true,\"id\":\"hostnet0\"}");
    DO_TEST_INCOMING_CPR("multiqueue", TEST_INCOMING_IFACE("<driver queues='2'/>"),
                         "{\"type\":\"tap\",\"script\":\"no\",\"downscript\":\"no\","
                         "\"queues\":2,\"cpr\":true,\"id\":\"hostnet0\"}");
    if (virTestRun("cpr: the new process's second -incoming", testCprIncoming, NULL) < 0)
        ret = -1;
    if (virTestRun("cpr: the source's mode and migrate", testCprSource, NULL) < 0)
        ret = -1;

    if (virTestRun("incoming TAP without a chosen generation", testIncomingNoGeneration, NULL) < 0)
        ret = -1;
    if (virTestRun("private data: every field classified", testPrivFieldsClassified, NULL) < 0)
        ret = -1;
    if (virTestRun("private data: the domain's stay, a process's go", testSwapFields, NULL) < 0)
        ret = -1;
    if (virTestRun("security labels are the domain's", testKeepSeclabels, NULL) < 0)
        ret = -1;
    if (virTestRun("capabilities looked up", testLookupCaps,
                   "/usr/bin/qemu-system-x86_64") < 0)
        ret = -1;
    if (virTestRun("failed probe named", testLookupCaps,
                   "/nonexistent/qemu-system-x86_64") < 0)
        ret = -1;

    if (virTestRun("handover keeps the network port", testHandoverPort, NULL) < 0)
        ret = -1;

#define DO_TEST_KEEPOUT(name, own, proc, k) \
    do { \
        const testKeepOutData data = { .owner = QEMU_MIGRATION_LOCAL_NET_OWNER_ ## own, \
                                       .which = QEMU_MIGRATION_LOCAL_PROCESS_ ## proc, \
                                       .kept = (k) }; \
        if (virTestRun("teardown " name, testKeepOut, &data) < 0) \
            ret = -1; \
    } while (0)
    /* ROLLBACK: the new process goes, the TAP is the source's again */
    DO_TEST_KEEPOUT("rollback, new process", SOURCE, NEW, "net1");
    DO_TEST_KEEPOUT("the domain's own stop", SOURCE, OLD, "net0 net1");
    /* in the stream both hold it: no stop may touch it */
    DO_TEST_KEEPOUT("in the stream, new process", HANDOVER, NEW, "net1");
    DO_TEST_KEEPOUT("in the stream, old process", HANDOVER, OLD, "net1");
    /* CLEANUP: the old process goes, the TAP is the new one's */
    DO_TEST_KEEPOUT("cleanup, old process", TARGET, OLD, "net1");
    DO_TEST_KEEPOUT("after the switchover, new process", TARGET, NEW, "net0 net1");

#define DO_TEST_MEMORY(name, ...) \
    do { \
        const testMemoryData data = { __VA_ARGS__ }; \
        if (virTestRun("shared memory " name, testMemory, &data) < 0) \
            ret = -1; \
    } while (0)
#define TEST_SHARED_FILE "<source type='file'/><access mode='shared'/>"
#define TEST_FILE .kind = QEMU_MIGRATION_LOCAL_MEMORY_FILE
    DO_TEST_MEMORY("file, shared", .backing = TEST_SHARED_FILE, TEST_FILE);
    DO_TEST_MEMORY("file, private", .backing = "<source type='file'/>",
                   .error = "its memory is private");
    DO_TEST_MEMORY("anonymous, shared", .backing = "<access mode='shared'/>",
                   .error = "<source type='file'/> or <source type='memfd'/>");
    DO_TEST_MEMORY("memfd, shared",
                   .backing = "<source type='memfd'/><access mode='shared'/>",
                   .kind = QEMU_MIGRATION_LOCAL_MEMORY_MEMFD);
    DO_TEST_MEMORY("memfd, private", .backing = "<source type='memfd'/>",
                   .error = "its memory is private");
    DO_TEST_MEMORY("memfd, hugepages",
                   .backing = "<hugepages/><source type='memfd'/><access mode='shared'/>",
                   .kind = QEMU_MIGRATION_LOCAL_MEMORY_MEMFD);
    DO_TEST_MEMORY("memfd, hugepages, private",
                   .backing = "<hugepages/><source type='memfd'/>",
                   .error = "its memory is private");
    DO_TEST_MEMORY("none", .backing = "", .error = "<source type='file'/>");
    DO_TEST_MEMORY("hugepages",
                   .backing = "<hugepages/>" TEST_SHARED_FILE,
                   .error = "a memfd can be passed");
    DO_TEST_MEMORY("discard", .backing = TEST_SHARED_FILE "<discard/>",
                   .error = "<discard/>");
    DO_TEST_MEMORY("numa, shared", .backing = TEST_SHARED_FILE, .numa = true,
                   TEST_FILE);
    DO_TEST_MEMORY("numa, one cell shared",
                   .backing = "<source type='file'/>", .numa = true,
                   .cellAccess = "shared", .error = "a NUMA cell is private");
    DO_TEST_MEMORY("numa, a private cell", .backing = TEST_SHARED_FILE,
                   .numa = true, .cellAccess = "private",
                   .error = "a NUMA cell is private");
    DO_TEST_MEMORY("memory device", .backing = TEST_SHARED_FILE, .numa = true,
                   .dimm = true, .error = "memory devices");
#undef TEST_FILE
#undef TEST_SHARED_FILE

    if (virTestRun("shared memory: both binaries and definitions",
                   testCheckMemory, NULL) < 0 ||
        virTestRun("shared memory: the new process maps the running one's file",
                   testShareMemory, "share") < 0 ||
        virTestRun("copied memory: the new process has a file of its own",
                   testShareMemory, NULL) < 0)
        ret = -1;

#define DO_TEST_KEEP_MEMORY(name, d, k, rm) \
    do { \
        const testKeepMemoryData data = { .dir = (d), .keptDir = (k), .removed = (rm) }; \
        if (virTestRun("memory directory " name, testKeepMemoryOut, &data) < 0) \
            ret = -1; \
    } while (0)
    DO_TEST_KEEP_MEMORY("shared", "/var/lib/libvirt/qemu/ram/3-guest1",
                        "/var/lib/libvirt/qemu/ram/3-guest1", false);
    DO_TEST_KEEP_MEMORY("copied", "/var/lib/libvirt/qemu/ram/4-guest1",
                        "/var/lib/libvirt/qemu/ram/3-guest1", true);
    DO_TEST_KEEP_MEMORY("none", NULL, "/var/lib/libvirt/qemu/ram/3-guest1", false);

    if (virTestRun("migration parameter backend-transfer", testParamJSON, NULL) < 0 ||
        virTestRun("migration parameter local", testParamJSON, "upstream") < 0)
        ret = -1;

    if (virTestRun("no status write at the stop of a local migration",
                   testSavesStop, NULL) < 0)
        ret = -1;
    {
        const testConversationData v10 = { .param = "backend-transfer" };
        const testConversationData upstream = {
            .upstream = true, .param = "local",
            .netdev = "{\"type\":\"tap\",\"incoming-fds\":true,\"script\":\"no\","
                      "\"downscript\":\"no\",\"local-migration-supported\":true,"
                      "\"id\":\"hostnet0\"}",
            .device = "{\"driver\":\"virtio-net-pci\",\"netdev\":\"hostnet0\","
                      "\"id\":\"net0\",\"mac\":\"52:54:00:4c:4d:02\","
                      "\"bus\":\"pci.0\",\"addr\":\"0x2\"}",
        };

        const testConversationData v10Shared = { .param = "backend-transfer",
                                                 .sharedMemory = true };
        testConversationData upstreamDown = upstream;
        testConversationData upstreamShared = upstream;

        upstreamDown.linkDown = true;
        upstreamShared.sharedMemory = true;
        if (virTestRun("QMP conversation of the new process, v10",
                       testDstConversation, &v10) < 0 ||
            virTestRun("QMP conversation of the new process, upstream",
                       testDstConversation, &upstream) < 0 ||
            virTestRun("QMP conversation of the new process, upstream, link down",
                       testDstConversation, &upstreamDown) < 0 ||
            virTestRun("QMP conversation of the new process, v10, shared memory",
                       testDstConversation, &v10Shared) < 0 ||
            virTestRun("QMP conversation of the new process, upstream, shared memory",
                       testDstConversation, &upstreamShared) < 0)
            ret = -1;
    }

 cleanup:
    g_clear_pointer(&localmigCaps, virObjectUnref);
    g_clear_pointer(&localmigSchema, g_hash_table_unref);
    g_clear_pointer(&upstreamCaps, virObjectUnref);
    g_clear_pointer(&upstreamSchema, g_hash_table_unref);
    g_clear_pointer(&cprCaps, virObjectUnref);
    g_clear_pointer(&cprSchema, g_hash_table_unref);
    qemuTestDriverFree(&driver);
    return ret == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

VIR_TEST_MAIN_PRELOAD(mymain,
                      VIR_TEST_MOCK("domaincaps"))
