/*
 * localmigstatefuzz.c: libFuzzer target for the status XML of a local
 * migration job (<localMigration> in <job>)
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
 * A restarted daemon reads this state from a file it wrote itself, but
 * whatever the file holds (a truncated write, a later version, a hand
 * edit) must end in a parsed state or a clean refusal: never a crash, a
 * leak, or a state that formats into something that reads back
 * differently. The input is a whole status document (the corpus is the
 * status XML of the unit tests) or a bare <job>.
 */

#include <config.h>

#include <stdlib.h>

#include "qemu/qemu_migration_local_state.h"
#include "virerror.h"
#include "virxml.h"

#define VIR_FROM_THIS VIR_FROM_NONE

static void
localmigFuzzSilence(void *opaque G_GNUC_UNUSED,
                    virErrorPtr err G_GNUC_UNUSED)
{
}


static char *
localmigFuzzFormat(qemuMigrationLocal *local)
{
    g_auto(virBuffer) buf = VIR_BUFFER_INITIALIZER;

    virBufferAddLit(&buf, "<job>\n");
    virBufferAdjustIndent(&buf, 2);
    qemuMigrationLocalFormat(&buf, local);
    virBufferAdjustIndent(&buf, -2);
    virBufferAddLit(&buf, "</job>\n");

    return virBufferContentAndReset(&buf);
}


static qemuMigrationLocal *
localmigFuzzParse(const char *xml,
                  bool *ok)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctxt = NULL;
    qemuMigrationLocal *local = NULL;
    xmlNodePtr job;

    *ok = false;
    if (!(doc = virXMLParseStringCtxt(xml, "(fuzz)", &ctxt)))
        return NULL;

    if ((job = virXPathNode("//job", ctxt)))
        ctxt->node = job;

    if (qemuMigrationLocalParseState(ctxt, &local) < 0) {
        if (local)
            abort(); /* a refusal returns no state */
        return NULL;
    }

    *ok = true;
    return local;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data,
                       size_t size)
{
    g_autofree char *xml = g_strndup((const char *) data, size);
    g_autoptr(qemuMigrationLocal) local = NULL;
    g_autoptr(qemuMigrationLocal) again = NULL;
    g_autofree char *first = NULL;
    g_autofree char *second = NULL;
    bool ok;

    virSetErrorFunc(NULL, localmigFuzzSilence);
    xmlSetGenericErrorFunc(NULL, (xmlGenericErrorFunc) localmigFuzzSilence);

    local = localmigFuzzParse(xml, &ok);
    virResetLastError();
    if (!ok || !local)
        return 0;

    /* what the daemon writes, it must read back as the same state */
    first = localmigFuzzFormat(local);
    if (!(again = localmigFuzzParse(first, &ok)) || !ok)
        abort();
    second = localmigFuzzFormat(again);
    if (STRNEQ(first, second))
        abort();

    return 0;
}
