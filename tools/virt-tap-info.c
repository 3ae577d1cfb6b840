/*
 * virt-tap-info.c: which processes hold a TAP, and how it is set up
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
 * After a local migration with backend transfer the new QEMU process must
 * hold the very TAP the old one had. This tool shows it: for each TAP of a
 * domain (or a TAP named on the command line) the processes holding one of
 * its queue fds, from /proc/PID/fdinfo ("iff:"), its ifindex, its bridge
 * port, and the vnet header length and flags of each queue. Those are read
 * with "get" ioctls on a duplicate of the holder's own fd (pidfd_getfd(2)):
 * attaching a new fd to the TAP would add a queue to it.
 */

#include <config.h>

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <linux/if_tun.h>
#include <net/if.h>

#include "internal.h"
#include "virfile.h"
#include "virgettext.h"

#define VIRT_TAP_INFO_IFF "iff:\t"


/* A duplicate of fd @fd of process @pid, or -1. */
static int
virtTapInfoDupFD(pid_t pid,
                 int fd)
{
    int pidfd;
    int dup;

    if ((pidfd = syscall(SYS_pidfd_open, pid, 0)) < 0)
        return -1;
    dup = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    VIR_FORCE_CLOSE(pidfd);
    return dup;
}


/* Is the TAP behind fd @fd of process @pid a device of this network
 * namespace? fdinfo names the device only, and other namespaces (other
 * hosts' worth of guests) may have a TAP of the same name. Without the
 * ioctl (Linux < 5.2) the name has to do. */
static bool
virtTapInfoIsHere(pid_t pid,
                  int fd,
                  const struct stat *here)
{
    struct stat sb;
    int dup;
    int ns;
    bool ret = true;

    if ((dup = virtTapInfoDupFD(pid, fd)) < 0)
        return true;

    if ((ns = ioctl(dup, TUNGETDEVNETNS)) >= 0) {
        ret = fstat(ns, &sb) == 0 &&
              sb.st_dev == here->st_dev && sb.st_ino == here->st_ino;
        VIR_FORCE_CLOSE(ns);
    }
    VIR_FORCE_CLOSE(dup);
    return ret;
}


/* The queue fds of @tap held by process @pid, appended to @fds. */
static void
virtTapInfoScanProcess(const char *pid,
                       const char *tap,
                       const struct stat *here,
                       GArray *fds)
{
    g_autofree char *dir = g_strdup_printf("/proc/%s/fdinfo", pid);
    g_autofree char *want = g_strdup_printf(VIRT_TAP_INFO_IFF "%s\n", tap);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;

    if (!d)
        return;

    while ((name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_autofree char *info = NULL;
        int fd;

        /* processes and fds come and go while we look */
        if (!g_file_get_contents(path, &info, NULL, NULL) ||
            !strstr(info, want))
            continue;

        fd = g_ascii_strtoll(name, NULL, 10);
        if (virtTapInfoIsHere(g_ascii_strtoll(pid, NULL, 10), fd, here))
            g_array_append_val(fds, fd);
    }
}


/* Settings of the TAP queue behind fd @fd of process @pid. */
static void
virtTapInfoPrintQueue(pid_t pid,
                      int fd)
{
    struct ifreq ifr = { 0 };
    int hdr = 0;
    int dup;

    if ((dup = virtTapInfoDupFD(pid, fd)) < 0) {
        printf(_("  fd %1$d: cannot duplicate: %2$s\n"), fd, g_strerror(errno));
        return;
    }

    if (ioctl(dup, TUNGETIFF, &ifr) < 0 ||
        ioctl(dup, TUNGETVNETHDRSZ, &hdr) < 0) {
        printf("  fd %d: %s\n", fd, g_strerror(errno));
    } else {
        printf("  fd %d: vnet_hdr=%s vnet_hdr_len=%d multi_queue=%s\n",
               fd,
               (ifr.ifr_flags & IFF_VNET_HDR) ? "yes" : "no", hdr,
               (ifr.ifr_flags & IFF_MULTI_QUEUE) ? "yes" : "no");
    }
    VIR_FORCE_CLOSE(dup);
}


static char *
virtTapInfoSysfs(const char *tap,
                 const char *file)
{
    g_autofree char *path = g_strdup_printf("/sys/class/net/%s/%s", tap, file);
    char *value = NULL;

    if (!g_file_get_contents(path, &value, NULL, NULL))
        return NULL;
    return g_strstrip(value);
}


static int
virtTapInfoPrint(const char *tap)
{
    g_autofree char *ifindex = virtTapInfoSysfs(tap, "ifindex");
    g_autofree char *port = virtTapInfoSysfs(tap, "brport/port_no");
    g_autofree char *masterPath = g_strdup_printf("/sys/class/net/%s/master", tap);
    g_autofree char *master = g_file_read_link(masterPath, NULL);
    g_autoptr(GDir) proc = g_dir_open("/proc", 0, NULL);
    const char *pid;
    size_t nholders = 0;
    struct stat here;

    if (!ifindex) {
        fprintf(stderr, _("virt-tap-info: no network device '%1$s' here\n"), tap);
        return -1;
    }

    printf("tap: %s\n", tap);
    printf("ifindex: %s\n", ifindex);
    if (master)
        printf("master: %s (port %s)\n", strrchr(master, '/') + 1,
               port ? port : "?");
    else
        printf("master: none\n");

    if (stat("/proc/self/ns/net", &here) < 0) {
        fprintf(stderr, _("virt-tap-info: cannot read this network namespace: %1$s\n"),
                g_strerror(errno));
        return -1;
    }

    while (proc && (pid = g_dir_read_name(proc))) {
        g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));
        g_autofree char *commPath = NULL;
        g_autofree char *comm = NULL;
        size_t i;

        if (!g_ascii_isdigit(pid[0]))
            continue;

        virtTapInfoScanProcess(pid, tap, &here, fds);
        if (fds->len == 0)
            continue;

        commPath = g_strdup_printf("/proc/%s/comm", pid);
        if (g_file_get_contents(commPath, &comm, NULL, NULL))
            g_strstrip(comm);
        printf("holder: %s (%s) queues=%u\n", pid, comm ? comm : "?", fds->len);
        for (i = 0; i < fds->len; i++)
            virtTapInfoPrintQueue(g_ascii_strtoll(pid, NULL, 10),
                                  g_array_index(fds, int, i));
        nholders++;
    }

    if (nholders == 0)
        printf("holder: none\n");
    return 0;
}


/* The TAPs of @name's interfaces, from its live XML. */
static char **
virtTapInfoDomainTaps(const char *uri,
                      const char *name)
{
    virConnectPtr conn = NULL;
    virDomainPtr dom = NULL;
    g_autofree char *xml = NULL;
    xmlDocPtr doc = NULL;
    xmlXPathContextPtr ctxt = NULL;
    xmlXPathObjectPtr obj = NULL;
    GPtrArray *taps = g_ptr_array_new();
    size_t i;

    if (!(conn = virConnectOpen(uri)) ||
        !(dom = virDomainLookupByName(conn, name)) ||
        !(xml = virDomainGetXMLDesc(dom, 0))) {
        fprintf(stderr, "virt-tap-info: %s\n", virGetLastErrorMessage());
        goto cleanup;
    }

    if (!(doc = xmlReadMemory(xml, strlen(xml), "domain.xml", NULL,
                              XML_PARSE_NONET)) ||
        !(ctxt = xmlXPathNewContext(doc)) ||
        !(obj = xmlXPathEval(BAD_CAST "/domain/devices/interface/target/@dev",
                             ctxt)))
        goto cleanup;

    for (i = 0; obj->nodesetval && i < (size_t) obj->nodesetval->nodeNr; i++) {
        xmlChar *dev = xmlNodeGetContent(obj->nodesetval->nodeTab[i]);

        g_ptr_array_add(taps, g_strdup((const char *) dev));
        xmlFree(dev);
    }

 cleanup:
    xmlXPathFreeObject(obj);
    xmlXPathFreeContext(ctxt);
    xmlFreeDoc(doc);
    if (dom)
        virDomainFree(dom);
    if (conn)
        virConnectClose(conn);
    g_ptr_array_add(taps, NULL);
    return (char **) g_ptr_array_free(taps, FALSE);
}


static void
virtTapInfoUsage(FILE *out)
{
    fprintf(out, "%s",
            _("Usage: virt-tap-info [-c URI] --domain DOMAIN\n"
              "       virt-tap-info TAP...\n"
              "\n"
              "Show which processes hold each TAP (from /proc/PID/fdinfo), its\n"
              "ifindex, bridge port, and the vnet header of every queue.\n"));
}


int
main(int argc,
     char **argv)
{
    const char *uri = NULL;
    const char *domain = NULL;
    g_auto(GStrv) taps = NULL;
    struct option opts[] = {
        { "connect", required_argument, NULL, 'c' },
        { "domain", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int ret = EXIT_SUCCESS;
    int c;
    size_t i;

    if (virGettextInitialize() < 0)
        return EXIT_FAILURE;

    while ((c = getopt_long(argc, argv, "c:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            uri = optarg;
            break;
        case 'd':
            domain = optarg;
            break;
        case 'h':
            virtTapInfoUsage(stdout);
            return EXIT_SUCCESS;
        default:
            virtTapInfoUsage(stderr);
            return EXIT_FAILURE;
        }
    }

    if (!!domain == (optind < argc)) {
        virtTapInfoUsage(stderr);
        return EXIT_FAILURE;
    }

    if (domain) {
        taps = virtTapInfoDomainTaps(uri, domain);
        if (!taps[0]) {
            fprintf(stderr, _("virt-tap-info: domain '%1$s' has no TAP\n"), domain);
            return EXIT_FAILURE;
        }
    } else {
        taps = g_strdupv(argv + optind);
    }

    for (i = 0; taps[i]; i++) {
        if (i > 0)
            printf("\n");
        if (virtTapInfoPrint(taps[i]) < 0)
            ret = EXIT_FAILURE;
    }

    return ret;
}
