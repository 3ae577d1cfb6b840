/*
 * qemu_migration_local_state.h: the state of a local migration job and its XML
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

#pragma once

#include "internal.h"
#include "virbuffer.h"
#include "virenum.h"
#include "virxml.h"

typedef enum {
    QEMU_MIGRATION_LOCAL_PHASE_PREPARE = 0, /* checks; nothing exists yet */
    QEMU_MIGRATION_LOCAL_PHASE_LAUNCH,      /* new process starting */
    QEMU_MIGRATION_LOCAL_PHASE_MIGRATE,     /* state streaming old -> new */
    QEMU_MIGRATION_LOCAL_PHASE_SWITCHOVER,  /* new process being resumed */
    QEMU_MIGRATION_LOCAL_PHASE_CLEANUP,     /* old process being discarded */
    QEMU_MIGRATION_LOCAL_PHASE_ROLLBACK,    /* new process being discarded */

    QEMU_MIGRATION_LOCAL_PHASE_LAST
} qemuMigrationLocalPhase;
VIR_ENUM_DECL(qemuMigrationLocalPhase);

/* The generation of QEMU's interface a job hands TAPs over in, chosen
 * once from both binaries when it prepares (docs/localmig-generations.rst). */
typedef enum {
    QEMU_MIGRATION_LOCAL_GENERATION_NONE = 0, /* no TAP is handed over */
    QEMU_MIGRATION_LOCAL_GENERATION_V10,
    QEMU_MIGRATION_LOCAL_GENERATION_LOCAL, /* the upstream interface */
    QEMU_MIGRATION_LOCAL_GENERATION_CPR, /* tap cpr=on under cpr-transfer */

    QEMU_MIGRATION_LOCAL_GENERATION_LAST
} qemuMigrationLocalGeneration;
VIR_ENUM_DECL(qemuMigrationLocalGeneration);

/* Which process a network backend belongs to; see DESIGN section 6. */
typedef enum {
    QEMU_MIGRATION_LOCAL_NET_OWNER_SOURCE = 0, /* the running (old) process */
    QEMU_MIGRATION_LOCAL_NET_OWNER_HANDOVER,   /* in the stream: both hold it */
    QEMU_MIGRATION_LOCAL_NET_OWNER_TARGET,     /* the new process */

    QEMU_MIGRATION_LOCAL_NET_OWNER_LAST
} qemuMigrationLocalNetOwner;
VIR_ENUM_DECL(qemuMigrationLocalNetOwner);

/* The port a libvirt network gave an <interface type='network'>: a
 * restarted daemon that discards a process must give its port back. */
typedef struct _qemuMigrationLocalPort qemuMigrationLocalPort;
struct _qemuMigrationLocalPort {
    char *network;     /* name of the network; NULL: no port */
    char *id;          /* UUID of the port */
};

typedef struct _qemuMigrationLocalNet qemuMigrationLocalNet;
struct _qemuMigrationLocalNet {
    char *alias;       /* device alias of the <interface>, e.g. "net0" */
    char *ifname;      /* TAP of the old process */
    bool handover;     /* the old TAP goes to the new process in the
                        * stream; else each process has a TAP of its own */
    char *newIfname;   /* TAP created for the new process (NULL when it
                        * is handed over, or not named yet) */
    qemuMigrationLocalNetOwner owner; /* of a handed-over TAP */
    qemuMigrationLocalPort port;    /* of the old process's interface */
    qemuMigrationLocalPort newPort; /* of the new one's, when it has its own */
};

/* What identifies the new process until it becomes the domain's own. */
typedef struct _qemuMigrationLocalProcess qemuMigrationLocalProcess;
struct _qemuMigrationLocalProcess {
    pid_t pid;               /* 0 until the process exists */
    int id;                  /* domain id the new process runs under */
    char *monitor;           /* QMP socket path */
    char *libDir;
    char *channelTargetDir;
    char *memoryBackingDir;  /* the same for both processes when they
                              * share the guest's memory */
    char *emulator;
};

typedef struct _qemuMigrationLocal qemuMigrationLocal;
struct _qemuMigrationLocal {
    qemuMigrationLocalPhase phase;
    qemuMigrationLocalGeneration generation;
    qemuMigrationLocalProcess source; /* the old process, from SWITCHOVER on */
    qemuMigrationLocalProcess target;
    size_t nnets;
    qemuMigrationLocalNet *nets;
    bool adopting; /* the domain is moving to the new process and back if
                    * that fails; not in the XML (a restart ends it) */
};

qemuMigrationLocal *
qemuMigrationLocalNew(void);

void
qemuMigrationLocalFree(qemuMigrationLocal *local);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(qemuMigrationLocal, qemuMigrationLocalFree);

qemuMigrationLocalNet *
qemuMigrationLocalAddNet(qemuMigrationLocal *local,
                         const char *alias,
                         const char *ifname,
                         const char *newIfname);

qemuMigrationLocalNet *
qemuMigrationLocalFindNet(qemuMigrationLocal *local,
                          const char *alias);

/* A process of a local migration: the running one, or the new one. */
typedef enum {
    QEMU_MIGRATION_LOCAL_PROCESS_OLD = 0,
    QEMU_MIGRATION_LOCAL_PROCESS_NEW,

    QEMU_MIGRATION_LOCAL_PROCESS_LAST
} qemuMigrationLocalWhich;

void
qemuMigrationLocalPortSet(qemuMigrationLocalPort *port,
                          const char *network,
                          const unsigned char *id);

void
qemuMigrationLocalProcessClear(qemuMigrationLocalProcess *proc);

void
qemuMigrationLocalFormat(virBuffer *buf,
                         qemuMigrationLocal *local);

int
qemuMigrationLocalParseState(xmlXPathContextPtr ctxt,
                             qemuMigrationLocal **local);

int
qemuMigrationLocalParse(xmlXPathContextPtr ctxt,
                        qemuMigrationLocal **local);

void
qemuMigrationLocalFormatTook(virBuffer *buf,
                             int generation);

int
qemuMigrationLocalParseTook(xmlXPathContextPtr ctxt,
                            int *generation);
