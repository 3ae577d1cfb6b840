/*
 * qemu_migration_local_check.c: the checks of a local migration request before anything starts
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
#include "datatypes.h"
#include "virerror.h"
#include "virlog.h"
#include "virsocketaddr.h"
#include "virutil.h"
#include "viruri.h"
#include "viruuid.h"
#include "virxml.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

VIR_LOG_INIT("qemu.qemu_migration_local_check");


/*
 * What a local migration is asked to do is checked before anything
 * starts: a refusal leaves the domain untouched.
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
    { VIR_MIGRATE_LOCAL_SHARED_MEMORY, "VIR_MIGRATE_LOCAL_SHARED_MEMORY",
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
/* @name without the trailing dot of a fully qualified name. */
static char *
qemuMigrationLocalHostNameBare(const char *name)
{
    char *bare = g_strdup(name);
    size_t len = strlen(bare);

    if (len > 1 && bare[len - 1] == '.')
        bare[len - 1] = '\0';
    return bare;
}


bool
qemuMigrationLocalIsThisHostName(const char *server,
                                 const char *hostname)
{
    g_autofree char *name = NULL;
    g_autofree char *host = NULL;
    size_t len;

    if (!server || !*server)
        return true;

    name = qemuMigrationLocalHostNameBare(server);

    if (STRCASEEQ(name, "localhost") ||
        STRCASEEQ(name, "localhost.localdomain") ||
        qemuMigrationLocalIsLoopback(name))
        return true;

    if (!hostname || !*hostname)
        return false;

    host = qemuMigrationLocalHostNameBare(hostname);

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
