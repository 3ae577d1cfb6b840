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
 * its queue fds, its ifindex, its bridge port, and the vnet header length
 * and flags of each queue (src/util/virnetdevtapinfo.c reads them), as
 * text or, with --json, as one JSON array for tools and tests.
 */

#include <config.h>

#include <getopt.h>
#include <stdio.h>

#include <libxml/parser.h>
#include <libxml/xpath.h>

#include "internal.h"
#include "virgettext.h"
#include "virjson.h"
#include "virnetdevtapinfo.h"


static void
virtTapInfoPrint(const virNetDevTapInfo *info)
{
    size_t i;
    size_t j;

    printf("tap: %s\n", info->name);
    printf("ifindex: %u\n", info->ifindex);
    if (info->master)
        printf("master: %s (port %s)\n", info->master, info->port ? info->port : "?");
    else
        printf("master: none\n");

    for (i = 0; i < info->nholders; i++) {
        const virNetDevTapHolder *holder = &info->holders[i];

        printf("holder: %lld (%s) queues=%zu\n", (long long) holder->pid,
               holder->comm ? holder->comm : "?", holder->nqueues);
        for (j = 0; j < holder->nqueues; j++) {
            const virNetDevTapQueueInfo *q = &holder->queues[j];

            if (q->error)
                printf("  fd %d: %s\n", q->fd, g_strerror(q->error));
            else
                printf("  fd %d: vnet_hdr=%s vnet_hdr_len=%d multi_queue=%s\n",
                       q->fd, q->vnetHdr ? "yes" : "no", q->vnetHdrLen,
                       q->multiQueue ? "yes" : "no");
        }
    }

    if (info->nholders == 0)
        printf("holder: none\n");
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
            _("Usage: virt-tap-info [--json] [-c URI] --domain DOMAIN\n"
              "       virt-tap-info [--json] TAP...\n"
              "\n"
              "Show which processes hold each TAP (from /proc/PID/fdinfo), its\n"
              "ifindex, bridge port, and the vnet header of every queue; with\n"
              "--json as a JSON array, one object per TAP.\n"));
}


int
main(int argc,
     char **argv)
{
    const char *uri = NULL;
    const char *domain = NULL;
    bool json = false;
    g_auto(GStrv) taps = NULL;
    g_autoptr(virJSONValue) array = virJSONValueNewArray();
    struct option opts[] = {
        { "connect", required_argument, NULL, 'c' },
        { "domain", required_argument, NULL, 'd' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int ret = EXIT_SUCCESS;
    int c;
    size_t i;

    /* the errors of util's functions need libvirt's error handling */
    if (virGettextInitialize() < 0 || virInitialize() < 0)
        return EXIT_FAILURE;

    while ((c = getopt_long(argc, argv, "c:d:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            uri = optarg;
            break;
        case 'd':
            domain = optarg;
            break;
        case 'j':
            json = true;
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
        g_autoptr(virNetDevTapInfo) info = NULL;
        g_autoptr(virJSONValue) obj = NULL;

        if (!(info = virNetDevTapInfoGet(taps[i]))) {
            fprintf(stderr, "virt-tap-info: %s\n", virGetLastErrorMessage());
            ret = EXIT_FAILURE;
            continue;
        }

        if (!json) {
            if (i > 0)
                printf("\n");
            virtTapInfoPrint(info);
        } else if (!(obj = virNetDevTapInfoToJSON(info)) ||
                   virJSONValueArrayAppend(array, &obj) < 0) {
            fprintf(stderr, "virt-tap-info: %s\n", virGetLastErrorMessage());
            return EXIT_FAILURE;
        }
    }

    if (json) {
        g_autofree char *out = virJSONValueToString(array, true);

        if (!out)
            return EXIT_FAILURE;
        printf("%s", out);
    }

    return ret;
}
