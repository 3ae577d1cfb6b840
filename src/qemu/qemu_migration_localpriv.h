/*
 * qemu_migration_localpriv.h: checks of a local migration request,
 *                             exported for the tests
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

#ifndef LIBVIRT_QEMU_MIGRATION_LOCALPRIV_H_ALLOW
# error "qemu_migration_localpriv.h may only be included by the local migration module (qemu_migration_local*.c) or test suites"
#endif /* LIBVIRT_QEMU_MIGRATION_LOCALPRIV_H_ALLOW */

#pragma once

#include "qemu_migration_local.h"
#include "qemu_capabilities.h"
#include "qemu_conf.h"

int
qemuMigrationLocalCheckFlags(unsigned int flags,
                             unsigned int *useFlags);

int
qemuMigrationLocalCheckParams(virDomainObj *vm,
                              const char *graphicsuri,
                              const char *listenAddress,
                              const char **migrate_disks,
                              int nbdPort,
                              const char *nbdURI,
                              const char *dname);

bool
qemuMigrationLocalIsThisHostName(const char *server,
                                 const char *hostname);

int
qemuMigrationLocalCheckURI(virDomainObj *vm,
                           const char *dconnuri);

int
qemuMigrationLocalCheckDevices(virDomainDef *oldDef,
                               virDomainDef *newDef,
                               bool backendTransfer);

/* Whom a field of qemuDomainObjPrivate belongs to in a local migration. */
typedef enum {
    QEMU_MIGRATION_LOCAL_PRIV_PROCESS, /* the QEMU process: the new one's */
    QEMU_MIGRATION_LOCAL_PRIV_DOMAIN,  /* the domain: kept */
    QEMU_MIGRATION_LOCAL_PRIV_SPECIAL, /* handled by qemuMigrationLocalSwap */
} qemuMigrationLocalPrivKind;

typedef struct {
    const char *name;
    size_t offset;
    size_t size;
    qemuMigrationLocalPrivKind kind;
} qemuMigrationLocalPrivField;

extern const qemuMigrationLocalPrivField qemuMigrationLocalPrivFields[];
extern const size_t qemuMigrationLocalNPrivFields;

void
qemuMigrationLocalSwap(virDomainObj *vm,
                       virDomainObj *shadow);

void
qemuMigrationLocalKeepSeclabels(const virDomainDef *oldDef,
                                virDomainDef *newDef);

virQEMUCaps *
qemuMigrationLocalLookupCaps(virQEMUDriver *driver,
                             const char *emulator);

typedef struct _qemuMigrationLocalDialect qemuMigrationLocalDialect;

/* One generation of QEMU's interface for handing a TAP over: what it
 * needs of each binary and does on each side. */
struct _qemuMigrationLocalDialect {
    qemuMigrationLocalGeneration generation;
    /* what a domain's process needs from its binary at start for an
     * interface with <backend transfer='on'/>, and the device and netdev
     * properties set on then (NULL: none) */
    virQEMUCapsFlags startCaps[2];
    const char *startDeviceProp;
    const char *startNetdevProp;
    /* the running process sends the TAP */
    virQEMUCapsFlags sourceCaps[3];
    /* the new process: its netdev waits for it */
    virQEMUCapsFlags targetCaps[4];
    qemuMigrationParam param; /* set on both sides; _LAST: none */
    /* set on the new process's tap (NULL: none) */
    const char *incomingNetdevProp;
    /* the new process's netdev may only exist once the parameter is
     * set: the netdev and its device are added over the monitor then,
     * before the incoming migration starts */
    bool deferNic;
    /* the TAP goes in the CPR state of cpr-transfer, not in the stream:
     * no parameter, no incoming-fds */
    bool cpr;
};

const qemuMigrationLocalDialect *
qemuMigrationLocalDialectGet(qemuMigrationLocalGeneration generation);

const qemuMigrationLocalDialect *
qemuMigrationLocalDialectSelect(virQEMUCaps *srcCaps,
                                const char *srcBinary,
                                qemuMigrationLocalGeneration srcTook,
                                virQEMUCaps *dstCaps,
                                const char *dstBinary,
                                bool cpr);

int
qemuMigrationLocalAddDeferredNics(virDomainObj *vm,
                                  qemuMonitor *mon);

const char *
qemuMigrationLocalDialectName(const qemuMigrationLocalDialect *dialect);

int
qemuMigrationLocalPrepareHandover(qemuMigrationLocal *local,
                                  virDomainDef *oldDef,
                                  virDomainDef *newDef);

/* qemu_migration_local_handover.c */
bool
qemuMigrationLocalNetIsHandedOver(const virDomainNetDef *net);

int
qemuMigrationLocalCheckHandover(virDomainDef *def);

void
qemuMigrationLocalSetOwner(qemuMigrationLocal *local,
                           qemuMigrationLocalNetOwner owner);

bool
qemuMigrationLocalMayTearDown(const qemuMigrationLocalNet *net,
                              qemuMigrationLocalWhich which);

void
qemuMigrationLocalKeepOut(qemuMigrationLocal *local,
                          virDomainDef *def,
                          qemuMigrationLocalWhich which);

void
qemuMigrationLocalEndHandover(virDomainDef *def);

/* qemu_migration_local_memory.c */
/* How the new process gets the guest's RAM. */
typedef enum {
    QEMU_MIGRATION_LOCAL_MEMORY_COPY = 0, /* a copy, in the stream */
    QEMU_MIGRATION_LOCAL_MEMORY_FILE,     /* the same file: x-ignore-shared */
    QEMU_MIGRATION_LOCAL_MEMORY_MEMFD,    /* the memfds: cpr-transfer */
} qemuMigrationLocalMemory;

qemuMigrationLocalMemory
qemuMigrationLocalMemoryOf(const virDomainDef *def,
                           const char **why);

int
qemuMigrationLocalCheckMemory(virDomainObj *vm,
                              const virDomainDef *newDef);

void
qemuMigrationLocalShareMemory(virDomainObj *vm,
                              virDomainObj *shadow);

int
qemuMigrationLocalCheckMemoryTarget(virDomainObj *shadow);

bool
qemuMigrationLocalMayRemoveMemory(const char *dir,
                                  const char *keptDir);

void
qemuMigrationLocalKeepMemoryOut(virDomainObj *vm,
                                virDomainObj *discarded);

/* qemu_migration_local_cpr.c */
typedef struct _qemuMigrationLocalCpr qemuMigrationLocalCpr;

bool
qemuMigrationLocalIsCpr(virDomainObj *vm);

char *
qemuMigrationLocalCprPath(virDomainObj *vm);

char *
qemuMigrationLocalCprMainPath(virDomainObj *vm,
                              bool uri);

qemuMigrationLocalCpr *
qemuMigrationLocalCprStart(virQEMUDriver *driver,
                           virDomainObj *vm,
                           virDomainObj *shadow,
                           unsigned int flags,
                           unsigned long resource,
                           qemuMigrationParams *migParams);

int
qemuMigrationLocalCprJoin(qemuMigrationLocalCpr **cprp,
                          bool kill,
                          bool cause);

void
qemuMigrationLocalCprReset(virDomainObj *vm,
                           virDomainAsyncJob asyncJob);

int
qemuMigrationLocalCheckCprNets(virDomainObj *vm,
                               bool backendTransfer);
