/*
 * virnetdevtapinfo.c: which processes hold a TAP, and how its queues are set up
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
 * A TAP's holders are the processes with one of its queue fds, found in
 * /proc/PID/fdinfo ("iff:"). Each queue is read with "get" ioctls on a
 * duplicate of the holder's own fd (pidfd_getfd(2)): attaching a new fd
 * to the TAP would add a queue to it. Nothing here knows of domains.
 */

#include <config.h>

#ifdef __linux__
# include <sys/ioctl.h>
# include <sys/stat.h>
# include <sys/syscall.h>
# include <linux/if_tun.h>
# include <net/if.h>
#endif

#include "virnetdevtapinfo.h"
#include "viralloc.h"
#include "virerror.h"
#include "virfile.h"
#include "virlog.h"
#include "virnetdev.h"

#define VIR_FROM_THIS VIR_FROM_NONE

VIR_LOG_INIT("util.netdevtapinfo");

#define VIR_NET_DEV_TAP_INFO_IFF "iff:\t"


static void
virNetDevTapHolderClear(virNetDevTapHolder *holder)
{
    g_free(holder->comm);
    g_free(holder->queues);
}


void
virNetDevTapInfoFree(virNetDevTapInfo *info)
{
    size_t i;

    if (!info)
        return;

    for (i = 0; i < info->nholders; i++)
        virNetDevTapHolderClear(&info->holders[i]);
    g_free(info->holders);
    g_free(info->name);
    g_free(info->master);
    g_free(info->port);
    g_free(info);
}


#if defined(__linux__) && defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)

/* A duplicate of fd @fd of process @pid, or -1 with errno set. */
static int
virNetDevTapInfoDupFD(pid_t pid,
                      int fd)
{
    int pidfd;
    int dup;
    int saved;

    if ((pidfd = syscall(SYS_pidfd_open, pid, 0)) < 0)
        return -1;
    dup = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    saved = errno;
    VIR_FORCE_CLOSE(pidfd);
    errno = saved;
    return dup;
}


/* Is the TAP behind fd @fd of process @pid a device of the network
 * namespace @here? fdinfo names the device only, and another namespace may
 * have a TAP of the same name. Without the ioctl (Linux < 5.2) the name
 * has to do. */
static bool
virNetDevTapInfoIsHere(pid_t pid,
                       int fd,
                       const struct stat *here)
{
    struct stat sb;
    int dup;
    int ns;
    bool ret = true;

    if ((dup = virNetDevTapInfoDupFD(pid, fd)) < 0)
        return true;

    if ((ns = ioctl(dup, TUNGETDEVNETNS)) >= 0) {
        ret = fstat(ns, &sb) == 0 &&
              sb.st_dev == here->st_dev && sb.st_ino == here->st_ino;
        VIR_FORCE_CLOSE(ns);
    }
    VIR_FORCE_CLOSE(dup);
    return ret;
}


static void
virNetDevTapInfoReadQueue(pid_t pid,
                          virNetDevTapQueueInfo *queue)
{
    struct ifreq ifr = { 0 };
    int dup;

    if ((dup = virNetDevTapInfoDupFD(pid, queue->fd)) < 0) {
        queue->error = errno;
        return;
    }

    if (ioctl(dup, TUNGETIFF, &ifr) < 0 ||
        ioctl(dup, TUNGETVNETHDRSZ, &queue->vnetHdrLen) < 0) {
        queue->error = errno;
    } else {
        queue->vnetHdr = !!(ifr.ifr_flags & IFF_VNET_HDR);
        queue->multiQueue = !!(ifr.ifr_flags & IFF_MULTI_QUEUE);
    }
    VIR_FORCE_CLOSE(dup);
}


/* The queues of @tap that process @pid holds, added to @info as a holder
 * when there are any. */
static void
virNetDevTapInfoScanProcess(virNetDevTapInfo *info,
                            const char *pidstr,
                            const struct stat *here)
{
    g_autofree char *dir = g_strdup_printf("/proc/%s/fdinfo", pidstr);
    g_autofree char *want = g_strdup_printf(VIR_NET_DEV_TAP_INFO_IFF "%s\n",
                                            info->name);
    g_autofree char *commPath = NULL;
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    virNetDevTapHolder holder = { .pid = g_ascii_strtoll(pidstr, NULL, 10) };
    const char *name;
    size_t i;

    if (!d)
        return;

    while ((name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_autofree char *fdinfo = NULL;
        virNetDevTapQueueInfo queue = { .fd = g_ascii_strtoll(name, NULL, 10) };

        /* processes and fds come and go while we look */
        if (!g_file_get_contents(path, &fdinfo, NULL, NULL) ||
            !strstr(fdinfo, want) ||
            !virNetDevTapInfoIsHere(holder.pid, queue.fd, here))
            continue;

        VIR_APPEND_ELEMENT(holder.queues, holder.nqueues, queue);
    }

    if (holder.nqueues == 0)
        return;

    for (i = 0; i < holder.nqueues; i++)
        virNetDevTapInfoReadQueue(holder.pid, &holder.queues[i]);

    commPath = g_strdup_printf("/proc/%s/comm", pidstr);
    if (g_file_get_contents(commPath, &holder.comm, NULL, NULL))
        g_strstrip(holder.comm);

    VIR_APPEND_ELEMENT(info->holders, info->nholders, holder);
}


/* Its port number on its bridge; NULL if it has none or it is unknown. */
static char *
virNetDevTapInfoBridgePort(const char *tap)
{
    g_autofree char *path = g_strdup_printf("/sys/class/net/%s/brport/port_no", tap);
    char *value = NULL;

    if (!g_file_get_contents(path, &value, NULL, NULL))
        return NULL;
    return g_strstrip(value);
}


/**
 * virNetDevTapInfoGet:
 * @tap: the name of a network device of this network namespace
 *
 * Returns what is known of @tap and its holders (the processes with one
 * of its queues, in this namespace), or NULL with an error when there is
 * no such device.
 */
virNetDevTapInfo *
virNetDevTapInfoGet(const char *tap)
{
    g_autoptr(virNetDevTapInfo) info = g_new0(virNetDevTapInfo, 1);
    g_autoptr(GDir) proc = NULL;
    const char *pid;
    struct stat here;
    int ifindex;

    if (virNetDevExists(tap) != 1) {
        virReportSystemError(ENODEV, _("no network device '%1$s' here"), tap);
        return NULL;
    }

    if (virNetDevGetIndex(tap, &ifindex) < 0 ||
        virNetDevGetMaster(tap, &info->master) < 0)
        return NULL;
    info->ifindex = ifindex;

    if (stat("/proc/self/ns/net", &here) < 0) {
        virReportSystemError(errno, "%s",
                             _("cannot read this network namespace"));
        return NULL;
    }

    info->name = g_strdup(tap);
    if (info->master)
        info->port = virNetDevTapInfoBridgePort(tap);

    if (!(proc = g_dir_open("/proc", 0, NULL))) {
        virReportSystemError(errno, "%s", _("cannot read /proc"));
        return NULL;
    }

    while ((pid = g_dir_read_name(proc))) {
        if (g_ascii_isdigit(pid[0]))
            virNetDevTapInfoScanProcess(info, pid, &here);
    }

    return g_steal_pointer(&info);
}

#else /* !(__linux__ && pidfd) */

virNetDevTapInfo *
virNetDevTapInfoGet(const char *tap G_GNUC_UNUSED)
{
    virReportSystemError(ENOSYS, "%s",
                         _("the holders of a TAP can be read on Linux only"));
    return NULL;
}

#endif /* !(__linux__ && pidfd) */


/**
 * virNetDevTapInfoToJSON:
 *
 * @info as a JSON object, for tools and tests to read instead of text:
 * {"tap", "ifindex", "master", "port", "holders": [{"pid", "comm",
 * "queues": [{"fd", "vnet_hdr", "vnet_hdr_len", "multi_queue"} or
 * {"fd", "error"}]}]}; "master" and "port" are null for no bridge.
 */
virJSONValue *
virNetDevTapInfoToJSON(const virNetDevTapInfo *info)
{
    g_autoptr(virJSONValue) holders = virJSONValueNewArray();
    g_autoptr(virJSONValue) obj = NULL;
    size_t i;
    size_t j;

    for (i = 0; i < info->nholders; i++) {
        const virNetDevTapHolder *holder = &info->holders[i];
        g_autoptr(virJSONValue) queues = virJSONValueNewArray();
        g_autoptr(virJSONValue) h = NULL;

        for (j = 0; j < holder->nqueues; j++) {
            const virNetDevTapQueueInfo *q = &holder->queues[j];
            g_autoptr(virJSONValue) qj = NULL;

            if (q->error) {
                if (virJSONValueObjectAdd(&qj,
                                          "i:fd", q->fd,
                                          "s:error", g_strerror(q->error),
                                          NULL) < 0)
                    return NULL;
            } else if (virJSONValueObjectAdd(&qj,
                                             "i:fd", q->fd,
                                             "b:vnet_hdr", q->vnetHdr,
                                             "i:vnet_hdr_len", q->vnetHdrLen,
                                             "b:multi_queue", q->multiQueue,
                                             NULL) < 0) {
                return NULL;
            }
            if (virJSONValueArrayAppend(queues, &qj) < 0)
                return NULL;
        }

        if (virJSONValueObjectAdd(&h,
                                  "i:pid", (int) holder->pid,
                                  "S:comm", holder->comm,
                                  "a:queues", &queues,
                                  NULL) < 0 ||
            virJSONValueArrayAppend(holders, &h) < 0)
            return NULL;
    }

    if (virJSONValueObjectAdd(&obj,
                              "s:tap", info->name,
                              "u:ifindex", info->ifindex,
                              NULL) < 0)
        return NULL;

    if ((info->master ?
         virJSONValueObjectAppendString(obj, "master", info->master) :
         virJSONValueObjectAppendNull(obj, "master")) < 0 ||
        (info->port ?
         virJSONValueObjectAppendString(obj, "port", info->port) :
         virJSONValueObjectAppendNull(obj, "port")) < 0 ||
        virJSONValueObjectAppend(obj, "holders", &holders) < 0)
        return NULL;

    return g_steal_pointer(&obj);
}
