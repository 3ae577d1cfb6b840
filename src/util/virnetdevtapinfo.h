/*
 * virnetdevtapinfo.h: which processes hold a TAP, and how its queues are set up
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
#include "virjson.h"

/* One queue of a TAP, as the fd of its holder has it set up. */
typedef struct _virNetDevTapQueueInfo virNetDevTapQueueInfo;
struct _virNetDevTapQueueInfo {
    int fd;          /* the fd in the holder */
    int error;       /* errno when the queue could not be read, else 0 */
    bool vnetHdr;
    int vnetHdrLen;
    bool multiQueue;
};

/* A process holding queues of a TAP. */
typedef struct _virNetDevTapHolder virNetDevTapHolder;
struct _virNetDevTapHolder {
    pid_t pid;
    char *comm;      /* NULL if it could not be read */
    size_t nqueues;
    virNetDevTapQueueInfo *queues;
};

typedef struct _virNetDevTapInfo virNetDevTapInfo;
struct _virNetDevTapInfo {
    char *name;
    unsigned int ifindex;
    char *master;    /* the bridge it is a port of, NULL if none */
    char *port;      /* its port number on that bridge, NULL if unknown */
    size_t nholders;
    virNetDevTapHolder *holders;
};

virNetDevTapInfo *
virNetDevTapInfoGet(const char *tap);

void
virNetDevTapInfoFree(virNetDevTapInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(virNetDevTapInfo, virNetDevTapInfoFree);

virJSONValue *
virNetDevTapInfoToJSON(const virNetDevTapInfo *info);
