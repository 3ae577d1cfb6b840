/*
 * qemu_migration_local.h: same-host live migration into a new QEMU process
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
#include "vircommand.h"
#include "virconftypes.h"
#include "virdomainjob.h"
#include "virenum.h"
#include "virjson.h"
#include "virxml.h"
#include "qemu_migration_params.h"
#include "qemu_monitor.h"
#include "qemu_capabilities.h"
#include "qemu_migration_local_state.h"

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
                          unsigned long resource);

int
qemuMigrationLocalRecover(virQEMUDriver *driver,
                          virDomainObj *vm,
                          virDomainJobObj *job);

char *
qemuMigrationLocalPidfilePath(const char *stateDir,
                              const virDomainDef *def);

int
qemuMigrationLocalValidateNet(const virDomainNetDef *net,
                              virQEMUCaps *caps);

int
qemuMigrationLocalNicDevProps(const virDomainNetDef *net,
                              virQEMUCaps *caps,
                              virJSONValue *props);

int
qemuMigrationLocalHostNetProps(const virDomainNetDef *net,
                               virQEMUCaps *caps,
                               virJSONValue *props);

int
qemuMigrationLocalDeferNic(virDomainObj *vm,
                           virDomainNetDef *net,
                           virJSONValue **netdev);

int
qemuMigrationLocalDstRun(virDomainObj *vm,
                         const char *uri,
                         virDomainAsyncJob asyncJob,
                         qemuMigrationParams *params,
                         unsigned int flags);

virJSONValue *
qemuMigrationLocalIncomingNetProps(virDomainObj *vm,
                                   virDomainNetDef *net,
                                   const char *vhostfdField,
                                   const char *vhostfdArg);

void
qemuMigrationLocalShadowEvent(virDomainObj *vm,
                              int eventType);

bool
qemuMigrationLocalSavesStop(virDomainObj *vm);

bool
qemuMigrationLocalMonitorEOFIsStale(virDomainObj *vm,
                                    qemuMonitor *mon);

void
qemuMigrationLocalMachineParams(virBuffer *buf,
                                const virDomainDef *def,
                                virQEMUCaps *caps);

int
qemuMigrationLocalBuildIncoming(virCommand *cmd,
                                virDomainObj *vm);
