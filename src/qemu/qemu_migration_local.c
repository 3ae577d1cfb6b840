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
 * The phase, the new process's identity and every interface's owner are
 * kept in the job's part of the status XML (<localMigration>), so that a
 * daemon restarted in the middle can tell which process to keep and what
 * each one may release.
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


/* ------------------------------------------------------------------------
 * Checks done before anything starts
 */

typedef enum {
    QEMU_MIGRATION_LOCAL_FLAG_USE,      /* means what it means elsewhere */
    QEMU_MIGRATION_LOCAL_FLAG_IGNORE,   /* accepted, no effect */
    QEMU_MIGRATION_LOCAL_FLAG_REFUSE,
} qemuMigrationLocalFlagUse;

typedef struct {
    unsigned int flag;
    const char *name;
    qemuMigrationLocalFlagUse use;
    const char *reason; /* why it is refused */
} qemuMigrationLocalFlagRule;

#define QEMU_MIGRATION_LOCAL_DISKS_REASON \
    N_("the new process uses the same disks")
#define QEMU_MIGRATION_LOCAL_POSTCOPY_REASON \
    N_("the old process must be able to resume until the new one has all the state")

static const qemuMigrationLocalFlagRule qemuMigrationLocalFlagRules[] = {
    { VIR_MIGRATE_LIVE, "VIR_MIGRATE_LIVE",
      QEMU_MIGRATION_LOCAL_FLAG_USE, NULL },
    { VIR_MIGRATE_PEER2PEER, "VIR_MIGRATE_PEER2PEER",
      QEMU_MIGRATION_LOCAL_FLAG_IGNORE, NULL },
    { VIR_MIGRATE_TUNNELLED, "VIR_MIGRATE_TUNNELLED",
      QEMU_MIGRATION_LOCAL_FLAG_REFUSE,
      N_("the stream goes over a local socket pair, which a tunnel through the daemon would replace") },
    /* the domain keeps its persistence; Nova passes both */
    { VIR_MIGRATE_PERSIST_DEST, "VIR_MIGRATE_PERSIST_DEST",
      QEMU_MIGRATION_LOCAL_FLAG_IGNORE, NULL },
    { VIR_MIGRATE_UNDEFINE_SOURCE, "VIR_MIGRATE_UNDEFINE_SOURCE",
      QEMU_MIGRATION_LOCAL_FLAG_IGNORE, NULL },
    { VIR_MIGRATE_PAUSED, "VIR_MIGRATE_PAUSED",
      QEMU_MIGRATION_LOCAL_FLAG_USE, NULL },
    { VIR_MIGRATE_NON_SHARED_DISK, "VIR_MIGRATE_NON_SHARED_DISK",
      QEMU_MIGRATION_LOCAL_FLAG_REFUSE, QEMU_MIGRATION_LOCAL_DISKS_REASON },
    { VIR_MIGRATE_NON_SHARED_INC, "VIR_MIGRATE_NON_SHARED_INC",
      QEMU_MIGRATION_LOCAL_FLAG_REFUSE, QEMU_MIGRATION_LOCAL_DISKS_REASON },
    { VIR_MIGRATE_CHANGE_PROTECTION, "VIR_MIGRATE_CHANGE_PROTECTION",
      QEMU_MIGRATION_LOCAL_FLAG_USE, NULL },
    { VIR_MIGRATE_UNSAFE, "VIR_MIGRATE_UNSAFE",
      QEMU_MIGRATION_LOCAL_FLAG_USE, NULL },
    { VIR_MIGRATE_OFFLINE, "VIR_MIGRATE_OFFLINE",
      QEMU_MIGRATION_LOCAL_FLAG_REFUSE,
      N_("there is no running process to replace") },
    { VIR_MIGRATE_COMPRESSED, "VIR_MIGRATE_COMPRESSED",
      QEMU_MIGRATION_LOCAL_FLAG_USE, NULL },
    { VIR_MIGRATE_ABORT_ON_ERROR, "VIR_MIGRATE_ABORT_ON_ERROR",
      QEMU_MIGRATION_LOCAL_FLAG_USE, NULL },
    { VIR_MIGRATE_AUTO_CONVERGE, "VIR_MIGRATE_AUTO_CONVERGE",
      QEMU_MIGRATION_LOCAL_FLAG_USE, NULL },
    { VIR_MIGRATE_RDMA_PIN_ALL, "VIR_MIGRATE_RDMA_PIN_ALL",
      QEMU_MIGRATION_LOCAL_FLAG_REFUSE,
      N_("the stream goes over a local socket pair, not RDMA") },
    { VIR_MIGRATE_POSTCOPY, "VIR_MIGRATE_POSTCOPY",
      QEMU_MIGRATION_LOCAL_FLAG_REFUSE, QEMU_MIGRATION_LOCAL_POSTCOPY_REASON },
    { VIR_MIGRATE_TLS, "VIR_MIGRATE_TLS",
      QEMU_MIGRATION_LOCAL_FLAG_REFUSE,
      N_("the stream never leaves this host, and TLS cannot carry the file descriptors a local migration may pass") },
    { VIR_MIGRATE_PARALLEL, "VIR_MIGRATE_PARALLEL",
      QEMU_MIGRATION_LOCAL_FLAG_REFUSE,
      N_("a socket pair is a single channel") },
    { VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES,
      "VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES",
      QEMU_MIGRATION_LOCAL_FLAG_REFUSE, QEMU_MIGRATION_LOCAL_DISKS_REASON },
    { VIR_MIGRATE_POSTCOPY_RESUME, "VIR_MIGRATE_POSTCOPY_RESUME",
      QEMU_MIGRATION_LOCAL_FLAG_REFUSE, QEMU_MIGRATION_LOCAL_POSTCOPY_REASON },
    { VIR_MIGRATE_ZEROCOPY, "VIR_MIGRATE_ZEROCOPY",
      QEMU_MIGRATION_LOCAL_FLAG_REFUSE,
      N_("zero-copy needs parallel migration") },
    { VIR_MIGRATE_LOCAL, "VIR_MIGRATE_LOCAL",
      QEMU_MIGRATION_LOCAL_FLAG_USE, NULL },
    { VIR_MIGRATE_LOCAL_BACKEND_TRANSFER, "VIR_MIGRATE_LOCAL_BACKEND_TRANSFER",
      QEMU_MIGRATION_LOCAL_FLAG_USE, NULL },
};


/* Returns the flags the job passes on, or -1 if one is refused. */
int
qemuMigrationLocalCheckFlags(unsigned int flags,
                             unsigned int *useFlags)
{
    unsigned int known = 0;
    size_t i;

    *useFlags = 0;

    for (i = 0; i < G_N_ELEMENTS(qemuMigrationLocalFlagRules); i++) {
        const qemuMigrationLocalFlagRule *rule = &qemuMigrationLocalFlagRules[i];

        known |= rule->flag;
        if (!(flags & rule->flag))
            continue;

        switch (rule->use) {
        case QEMU_MIGRATION_LOCAL_FLAG_USE:
            *useFlags |= rule->flag;
            break;
        case QEMU_MIGRATION_LOCAL_FLAG_IGNORE:
            VIR_DEBUG("%s has no effect on a local migration", rule->name);
            break;
        case QEMU_MIGRATION_LOCAL_FLAG_REFUSE:
            virReportError(VIR_ERR_ARGUMENT_UNSUPPORTED,
                           _("local migration does not support %1$s: %2$s"),
                           rule->name, _(rule->reason));
            return -1;
        }
    }

    if (flags & ~known) {
        virReportError(VIR_ERR_ARGUMENT_UNSUPPORTED,
                       _("local migration does not support flags 0x%1$x"),
                       flags & ~known);
        return -1;
    }

    return 0;
}


int
qemuMigrationLocalCheckParams(virDomainObj *vm,
                              const char *graphicsuri,
                              const char *listenAddress,
                              const char **migrate_disks,
                              int nbdPort,
                              const char *nbdURI,
                              const char *dname)
{
    const char *param = NULL;

    if (graphicsuri)
        param = VIR_MIGRATE_PARAM_GRAPHICS_URI;
    else if (listenAddress)
        param = VIR_MIGRATE_PARAM_LISTEN_ADDRESS;
    else if (migrate_disks && migrate_disks[0])
        param = VIR_MIGRATE_PARAM_MIGRATE_DISKS;
    else if (nbdPort)
        param = VIR_MIGRATE_PARAM_DISKS_PORT;
    else if (nbdURI)
        param = VIR_MIGRATE_PARAM_DISKS_URI;

    if (param) {
        virReportError(VIR_ERR_ARGUMENT_UNSUPPORTED,
                       _("migration parameter '%1$s' has no meaning for a local migration"),
                       param);
        return -1;
    }

    if (dname && STRNEQ(dname, vm->def->name)) {
        virReportError(VIR_ERR_ARGUMENT_UNSUPPORTED,
                       _("a local migration cannot rename domain '%1$s' to '%2$s'"),
                       vm->def->name, dname);
        return -1;
    }

    return 0;
}


/* A loopback address: 127.0.0.0/8 or ::1 (IPv4-mapped included). */
static bool
qemuMigrationLocalIsLoopback(const char *name)
{
    virSocketAddr addr;
    const struct in6_addr *a6 = &addr.data.inet6.sin6_addr;

    /* a name is no address: asked quietly, before parsing it as one */
    if (virSocketAddrNumericFamily(name) < 0 ||
        virSocketAddrParse(&addr, name, AF_UNSPEC) < 0)
        return false;

    switch (VIR_SOCKET_ADDR_FAMILY(&addr)) {
    case AF_INET:
        return (ntohl(addr.data.inet4.sin_addr.s_addr) >> 24) == 127;
    case AF_INET6:
        return IN6_IS_ADDR_LOOPBACK(a6) ||
               (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return false;
}


/**
 * qemuMigrationLocalIsThisHostName:
 * @server: the server of a destination URI (brackets of an IPv6 literal
 *          already stripped), or NULL
 * @hostname: this host's name, or NULL if unknown
 *
 * Whether @server names this host without asking it: no server, localhost,
 * a loopback address, this host's name, or its short name when the host
 * name is qualified ("host" for "host.example.org"). Case and a trailing
 * dot do not matter. A name that merely begins with the short name
 * ("host.other.example") is another machine's; so is any other address:
 * those are asked for their host UUID.
 */
bool
qemuMigrationLocalIsThisHostName(const char *server,
                                 const char *hostname)
{
    g_autofree char *name = NULL;
    g_autofree char *host = NULL;
    size_t len;

    if (!server || !*server)
        return true;

    name = g_strdup(server);
    if ((len = strlen(name)) > 1 && name[len - 1] == '.')
        name[len - 1] = '\0';

    if (STRCASEEQ(name, "localhost") ||
        STRCASEEQ(name, "localhost.localdomain") ||
        qemuMigrationLocalIsLoopback(name))
        return true;

    if (!hostname || !*hostname)
        return false;

    host = g_strdup(hostname);
    if ((len = strlen(host)) > 1 && host[len - 1] == '.')
        host[len - 1] = '\0';

    if (STRCASEEQ(name, host))
        return true;

    len = strcspn(host, ".");
    return host[len] == '.' && strlen(name) == len &&
           STRCASEEQLEN(name, host, len);
}


static int
qemuMigrationLocalHostUUIDOf(const char *dconnuri,
                             unsigned char *uuid)
{
    g_autoptr(virConnect) dconn = NULL;
    g_autofree char *caps = NULL;
    g_autofree char *uuidstr = NULL;
    g_autoptr(xmlDoc) xml = NULL;
    g_autoptr(xmlXPathContext) ctxt = NULL;

    if (!(dconn = virConnectOpen(dconnuri)) ||
        !(caps = virConnectGetCapabilities(dconn)))
        return -1;

    if (!(xml = virXMLParseStringCtxt(caps, _("(capabilities)"), &ctxt)))
        return -1;

    if (!(uuidstr = virXPathString("string(/capabilities/host/uuid)", ctxt)) ||
        virUUIDParse(uuidstr, uuid) < 0) {
        virReportError(VIR_ERR_INTERNAL_ERROR,
                       _("'%1$s' does not report a host UUID"), dconnuri);
        return -1;
    }

    return 0;
}


/*
 * A local migration may name its destination; it must then be this host's
 * QEMU driver. Names that cannot be anything else are taken as they are;
 * other servers are asked for their host UUID, as the migration cookie
 * would be.
 */
int
qemuMigrationLocalCheckURI(virDomainObj *vm,
                           const char *dconnuri)
{
    g_autoptr(virURI) uri = NULL;
    g_autofree char *hostname = NULL;
    unsigned char here[VIR_UUID_BUFLEN];
    unsigned char there[VIR_UUID_BUFLEN];
    int rc;

    if (!dconnuri)
        return 0;

    if (!(uri = virURIParse(dconnuri)))
        return -1;

    if (!uri->scheme ||
        !(STREQ(uri->scheme, "qemu") || STRPREFIX(uri->scheme, "qemu+"))) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("destination '%1$s' of a local migration (--local) must be this host's QEMU driver"),
                       dconnuri);
        return -1;
    }

    hostname = virGetHostnameQuiet();
    if (qemuMigrationLocalIsThisHostName(uri->server, hostname))
        return 0;

    if (virGetHostUUID(here) < 0) {
        virReportError(VIR_ERR_INTERNAL_ERROR, "%s",
                       _("Unable to obtain host UUID"));
        return -1;
    }

    virObjectUnlock(vm);
    rc = qemuMigrationLocalHostUUIDOf(dconnuri, there);
    virObjectLock(vm);
    if (rc < 0)
        return -1;

    if (memcmp(here, there, VIR_UUID_BUFLEN) != 0) {
        virReportError(VIR_ERR_OPERATION_INVALID,
                       _("destination '%1$s' is another host; a local migration (--local) stays on this host"),
                       dconnuri);
        return -1;
    }

    return 0;
}


static int
qemuMigrationLocalCollectChr(virDomainDef *def G_GNUC_UNUSED,
                             virDomainChrDef *chr,
                             void *opaque)
{
    const char **path = opaque;

    if (!*path || !chr->source || chr->source->type != VIR_DOMAIN_CHR_TYPE_UNIX)
        return 0;

    if (STREQ_NULLABLE(chr->source->data.nix.path, *path))
        *path = NULL; /* found */

    return 0;
}


static int
qemuMigrationLocalCheckChr(virDomainDef *oldDef G_GNUC_UNUSED,
                           virDomainChrDef *chr,
                           void *opaque)
{
    virDomainDef *newDef = opaque;
    const char *path;

    if (!chr->source || chr->source->type != VIR_DOMAIN_CHR_TYPE_UNIX ||
        !chr->source->data.nix.listen || !chr->source->data.nix.path)
        return 0;

    path = chr->source->data.nix.path;
    ignore_value(virDomainChrDefForeach(newDef, false,
                                        qemuMigrationLocalCollectChr, &path));
    if (path)
        return 0;

    virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                   _("character device '%1$s' listens on the fixed socket '%2$s', which both processes would need; leave the path to libvirt for a local migration"),
                   NULLSTR(chr->info.alias), chr->source->data.nix.path);
    return -1;
}


/* ------------------------------------------------------------------------
 * Backend transfer
 *
 * QEMU's interface for handing a TAP over changed between the generations
 * of its series (DESIGN.md section 5). What a generation needs from each
 * binary is one row here. The job chooses the row once, from both
 * binaries, when it prepares; the job's state (and so its status XML) and
 * the new process keep it. Only the v10 generation exists so far.
 */

/* The new process's netdev for a TAP that arrives in the stream. */
typedef virJSONValue *
(*qemuMigrationLocalIncomingNetdevFunc)(virDomainNetDef *net,
                                        bool vhost,
                                        const char *vhostfdField,
                                        const char *vhostfdArg);

struct _qemuMigrationLocalDialect {
    qemuMigrationLocalGeneration generation;
    /* what a domain's process needs from its binary at start for an
     * interface with <backend transfer='on'/>, and the device property
     * set then (NULL: none) */
    virQEMUCapsFlags startCaps[2];
    const char *startDeviceProp;
    /* the running process: its device sends the TAP */
    virQEMUCapsFlags sourceCaps[3];
    /* the new process: its netdev waits for it */
    virQEMUCapsFlags targetCaps[4];
    qemuMigrationParam param;
    qemuMigrationLocalIncomingNetdevFunc incomingNetdev;
};

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
static const qemuMigrationLocalDialect *
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


/* An interface whose TAP the migration hands over, given the flag. */
static bool
qemuMigrationLocalNetIsHandedOver(const virDomainNetDef *net)
{
    return net->backend.transfer == VIR_TRISTATE_SWITCH_ON;
}


/* Which TAPs can travel: refuse the others of the flagged interfaces. */
static int
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
        qemuMigrationLocalAddNet(local, oldNet->info.alias, oldNet->ifname, NULL);
        VIR_INFO("interface %s: TAP %s is handed over",
                 oldNet->info.alias, oldNet->ifname);
    }

    return 0;
}


static void
qemuMigrationLocalSetOwner(qemuMigrationLocal *local,
                           qemuMigrationLocalNetOwner owner)
{
    size_t i;

    for (i = 0; i < local->nnets; i++) {
        if (!local->nets[i].newIfname)
            local->nets[i].owner = owner;
    }
}


/* Before @def's process is discarded: take out the interfaces whose TAP
 * the other process holds, so that no teardown (downscript, TAP, bridge
 * or OVS port, QoS, filters) touches them. @def is discarded with it. */
static void
qemuMigrationLocalDropHandedOver(qemuMigrationLocal *local,
                                 virDomainDef *def)
{
    size_t i = def->nnets;

    while (i-- > 0) {
        qemuMigrationLocalNet *lnet;

        if (!(lnet = qemuMigrationLocalFindNet(local, def->nets[i]->info.alias)) ||
            lnet->newIfname)
            continue;

        VIR_DEBUG("keeping TAP %s of %s out of the stop of the other process",
                  lnet->ifname, lnet->alias);
        virDomainNetDefFree(virDomainNetRemove(def, i));
    }
}


/* The new process now owns the TAPs; nothing is incoming any more. */
static void
qemuMigrationLocalEndHandover(virDomainDef *def)
{
    size_t i;

    for (i = 0; i < def->nnets; i++)
        QEMU_DOMAIN_NETWORK_PRIVATE(def->nets[i])->incomingFds = false;
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
                                       qemuMigrationLocalGeneration *generation)
{
    qemuDomainObjPrivate *priv = vm->privateData;
    const qemuMigrationLocalDialect *dialect;

    if (qemuMigrationLocalCheckHandover(vm->def) < 0)
        return -1;

    if (!(dialect = qemuMigrationLocalDialectSelect(priv->qemuCaps,
                                                    vm->def->emulator,
                                                    dstCaps,
                                                    newDef->emulator)))
        return -1;

    if (qemuMigrationParamsSetBool(dstParams, dialect->param, true) < 0 ||
        qemuMigrationParamsSetBool(srcParams, dialect->param, true) < 0)
        return -1;

    *generation = dialect->generation;
    return 0;
}


/* Interface types for which the new process can get a backend of its own
 * (a new TAP or macvtap) while the old process keeps its one. */
static const bool qemuMigrationLocalNetNewBackend[VIR_DOMAIN_NET_TYPE_LAST] = {
    [VIR_DOMAIN_NET_TYPE_BRIDGE] = true,
    [VIR_DOMAIN_NET_TYPE_NETWORK] = true,
    [VIR_DOMAIN_NET_TYPE_ETHERNET] = true,
    [VIR_DOMAIN_NET_TYPE_DIRECT] = true,
    [VIR_DOMAIN_NET_TYPE_USER] = true, /* a SLIRP of its own */
};


/* Devices whose host side a second process of the same domain cannot
 * have at the same time. */
int
qemuMigrationLocalCheckDevices(virDomainDef *oldDef,
                               virDomainDef *newDef,
                               bool backendTransfer)
{
    size_t i;

    for (i = 0; i < newDef->nnets; i++) {
        virDomainNetDef *net = newDef->nets[i];
        const char *alias = net->info.alias ? net->info.alias : net->ifname;

        /* its TAP, whatever its name, goes to the new process */
        if (backendTransfer && qemuMigrationLocalNetIsHandedOver(net))
            continue;

        if (!qemuMigrationLocalNetNewBackend[virDomainNetGetActualType(net)]) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("interface '%1$s' of type '%2$s' cannot have a second backend for a local migration"),
                           NULLSTR(alias),
                           virDomainNetTypeToString(virDomainNetGetActualType(net)));
            return -1;
        }

        /* passt is a per-domain daemon with a socket of its own */
        if (net->backend.type == VIR_DOMAIN_NET_BACKEND_PASST) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("interface '%1$s' uses passt, which cannot serve two processes of a local migration"),
                           NULLSTR(alias));
            return -1;
        }

        if (net->managed_tap == VIR_TRISTATE_BOOL_NO) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("interface '%1$s' uses the unmanaged TAP '%2$s', which cannot be re-created for the new process; hand it over with backend transfer (--local-backend-transfer)"),
                           NULLSTR(alias), NULLSTR(net->ifname));
            return -1;
        }

        /* auto-generated names were dropped when the definition was
         * parsed; what is left was chosen by the user */
        if (net->ifname) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("interface '%1$s' has the fixed TAP name '%2$s', which the new process cannot create while the old one uses it; hand it over with backend transfer (--local-backend-transfer)"),
                           NULLSTR(alias), net->ifname);
            return -1;
        }
    }

    for (i = 0; i < newDef->ntpms; i++) {
        if (newDef->tpms[i]->type == VIR_DOMAIN_TPM_TYPE_EMULATOR) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                           _("an emulated TPM cannot be shared by two processes of a local migration"));
            return -1;
        }
    }

    for (i = 0; i < newDef->nfss; i++) {
        if (newDef->fss[i]->fsdriver == VIR_DOMAIN_FS_DRIVER_TYPE_VIRTIOFS) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("virtiofs filesystem '%1$s' cannot be shared by two processes of a local migration"),
                           newDef->fss[i]->dst);
            return -1;
        }
    }

    for (i = 0; i < newDef->ngraphics; i++) {
        virDomainGraphicsDef *gr = newDef->graphics[i];

        if (gr->type == VIR_DOMAIN_GRAPHICS_TYPE_VNC &&
            !gr->data.vnc.autoport && gr->data.vnc.port > 0) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                           _("VNC display has the fixed port %1$d, which the old process still listens on; use autoport or a UNIX socket for a local migration"),
                           gr->data.vnc.port);
            return -1;
        }
        if (gr->type == VIR_DOMAIN_GRAPHICS_TYPE_SPICE &&
            !gr->data.spice.autoport &&
            (gr->data.spice.port > 0 || gr->data.spice.tlsPort > 0)) {
            virReportError(VIR_ERR_OPERATION_UNSUPPORTED, "%s",
                           _("SPICE display has a fixed port, which the old process still listens on; use autoport for a local migration"));
            return -1;
        }
    }

    /* a listening UNIX socket of the old process is unlinked when the
     * old process goes away */
    if (virDomainChrDefForeach(oldDef, false,
                               qemuMigrationLocalCheckChr, newDef) < 0)
        return -1;

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
qemuMigrationLocalNameTaps(virDomainDef *def)
{
    size_t i;

    for (i = 0; i < def->nnets; i++) {
        virDomainNetDef *net = def->nets[i];
        virDomainNetType type = virDomainNetGetActualType(net);

        if (QEMU_DOMAIN_NETWORK_PRIVATE(net)->incomingFds ||
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
                                virDomainObj *shadow,
                                unsigned int flags)
{
    if (qemuMigrationJobStart(shadow, VIR_ASYNC_JOB_MIGRATION_IN, flags) < 0)
        return -1;

    if (qemuProcessInit(driver, shadow, NULL, VIR_ASYNC_JOB_MIGRATION_IN,
                        true, 0) < 0 ||
        qemuProcessPrepareDomain(driver, shadow, 0) < 0 ||
        qemuProcessPrepareHost(driver, shadow, 0) < 0 ||
        qemuMigrationLocalNameTaps(shadow->def) < 0)
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
 * paused, reading the stream from @fd. */
static int
qemuMigrationLocalLaunch(virQEMUDriver *driver,
                         virDomainObj *shadow,
                         int fd,
                         qemuMigrationParams *dstParams,
                         unsigned int flags)
{
    qemuProcessIncomingDef *incoming = NULL;
    g_autoptr(virBitmap) noCaps = virBitmapNew(QEMU_MIGRATION_CAP_LAST);
    int ret = -1;

    if (!(incoming = qemuProcessIncomingDefNew(driver, shadow, NULL, "stdio",
                                               &fd, NULL, NULL, NULL)))
        goto cleanup;

    if (qemuProcessLaunch(NULL, driver, shadow, VIR_ASYNC_JOB_MIGRATION_IN,
                          incoming, NULL,
                          VIR_NETDEV_VPORT_PROFILE_OP_MIGRATE_IN_START,
                          0) < 0)
        goto cleanup;

    qemuMigrationLocalTestStop("launch");

    /* the source enables no capability that needs this side's consent */
    if (qemuMigrationParamsCheck(shadow, VIR_ASYNC_JOB_MIGRATION_IN,
                                 dstParams, noCaps, noCaps) < 0 ||
        qemuMigrationDstRun(shadow, incoming->uri, VIR_ASYNC_JOB_MIGRATION_IN,
                            dstParams, flags) < 0)
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
        qemuMigrationLocalNet *net;

        /* a macvtap gets its name only when it is created */
        if (QEMU_DOMAIN_NETWORK_PRIVATE(newDef->nets[i])->incomingFds ||
            !newDef->nets[i]->ifname)
            continue;

        if (!(net = qemuMigrationLocalFindNet(local, oldDef->nets[i]->info.alias)))
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

        if (net->newIfname) {
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
    bool adopted = false;
    virErrorPtr orig_err = NULL;
    int ret = -1;

    VIR_DEBUG("vm=%s, dconnuri=%s, uri=%s, flags=0x%x",
              vm->def->name, NULLSTR(dconnuri), NULLSTR(uri), flags);

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
        qemuMigrationLocalCheckDevices(vm->def, def, backendTransfer) < 0)
        goto endjob;
    qemuMigrationLocalKeepSeclabels(vm->def, def);

    if (backendTransfer &&
        qemuMigrationLocalSetupBackendTransfer(vm, def, newCaps, dstParams,
                                               migParams, &generation) < 0)
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
        qemuMigrationLocalLaunchPrepare(driver, shadow, useFlags) < 0) {
        if (shadow)
            qemuMigrationLocalProcessRecord(&local->target, shadow);
        goto rollback;
    }
    qemuMigrationLocalProcessRecord(&local->target, shadow);
    qemuMigrationLocalRecordNets(local, vm->def, shadow->def);
    qemuMigrationLocalSetPhase(vm, local, QEMU_MIGRATION_LOCAL_PHASE_LAUNCH);

    virObjectUnlock(vm);
    if (qemuMigrationLocalLaunch(driver, shadow, fds[1], dstParams,
                                 useFlags) < 0) {
        qemuMigrationLocalProcessRecord(&local->target, shadow);
        virObjectUnlock(shadow);
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
    if (qemuMigrationSrcRunLocal(driver, vm, fds[0], useFlags, resource,
                                 migParams) < 0) {
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
    qemuMigrationLocalDropHandedOver(local, shadow->def);
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
    qemuMigrationLocalSetOwner(local, QEMU_MIGRATION_LOCAL_NET_OWNER_SOURCE);
    qemuMigrationLocalSetPhase(vm, local, QEMU_MIGRATION_LOCAL_PHASE_ROLLBACK);
    qemuMigrationLocalTestStop("rollback");
    if (shadow && !adopted)
        qemuMigrationLocalDropHandedOver(local, shadow->def);
    if (shadow && !adopted)
        qemuProcessStop(driver, shadow, VIR_DOMAIN_SHUTOFF_FAILED,
                        VIR_ASYNC_JOB_MIGRATION_IN,
                        VIR_QEMU_PROCESS_STOP_MIGRATED |
                        VIR_QEMU_PROCESS_STOP_NO_RELABEL);
    if (virDomainObjIsActive(vm)) {
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
    g_autoptr(virNetwork) net = NULL;
    g_autoptr(virNetworkPort) netPort = NULL;

    if (!port->network)
        return;

    if (!(conn = virGetConnectNetwork()) ||
        !(net = virNetworkLookupByName(conn, port->network)) ||
        !(netPort = virNetworkPortLookupByUUIDString(net, port->id)) ||
        virNetworkPortDelete(netPort, 0) < 0) {
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
    size_t i;

    if (job->asyncJob != VIR_ASYNC_JOB_MIGRATION_OUT || !local)
        return 0;

    adopted = local->phase == QEMU_MIGRATION_LOCAL_PHASE_CLEANUP;
    other = adopted ? &local->source : &local->target;

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

    /* its TAPs went away with it; what is left is the <downscript> */
    for (i = 0; i < local->nnets; i++) {
        const char *tap = adopted ? local->nets[i].ifname : local->nets[i].newIfname;
        size_t j;

        if (!created[i] ||
            local->nets[i].owner != QEMU_MIGRATION_LOCAL_NET_OWNER_SOURCE)
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
        if (local->nets[i].newIfname)
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

    if (!adopted)
        return 0;

    if (virDomainObjGetState(vm, NULL) == VIR_DOMAIN_PAUSED &&
        qemuProcessStartCPUs(driver, vm, VIR_DOMAIN_RUNNING_MIGRATED,
                             VIR_ASYNC_JOB_NONE) < 0)
        return -1;

    return 1;
}
