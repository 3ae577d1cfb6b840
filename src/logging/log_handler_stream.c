/*
 * log_handler_stream.c: several streams of one domain into one log file
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
 * A log file has one stream (a pipe read by the daemon) per process that
 * writes to it. A domain normally has one process at a time, but a local
 * migration starts the domain's next QEMU process while the current one
 * still runs and writes: the new process's stream joins the open file.
 * Both streams then append through the same rotating writer, so their
 * lines land in the file in the order the daemon reads them, and the
 * file rotates once, whoever's write fills it. The writer goes away with
 * the last stream. A request to truncate the file (a character device
 * log without append='on') does not truncate it under the process still
 * writing: the domain's output goes on. A stream for any other domain or
 * driver is still refused.
 */

#include <config.h>

#include "log_handler_stream.h"
#include "virerror.h"
#include "virlog.h"
#include "viruuid.h"

#define VIR_FROM_THIS VIR_FROM_LOGGING

VIR_LOG_INIT("logging.log_handler_stream");


/**
 * virLogHandlerStreamJoin:
 * @handler: the log handler (locked)
 * @driver, @domuuid: who asks for a stream
 * @path: the log file
 * @trunc: whether the file is to be truncated; an open one is not
 * @writer: set to the open file's writer to share, or NULL
 *
 * Returns 0 with @writer set when the new stream may use @path (sharing
 * @writer if the file is open already), -1 with an error if another
 * domain's or driver's stream holds the file.
 */
int
virLogHandlerStreamJoin(virLogHandler *handler,
                        const char *driver,
                        const unsigned char *domuuid,
                        const char *path,
                        bool trunc,
                        virRotatingFileWriter **writer)
{
    size_t i;

    *writer = NULL;

    for (i = 0; i < handler->nfiles; i++) {
        virLogHandlerLogFile *file = handler->files[i];

        if (!file || !file->file ||
            STRNEQ(virRotatingFileWriterGetPath(file->file), path))
            continue;

        if (STRNEQ(file->driver, driver) ||
            memcmp(file->domuuid, domuuid, VIR_UUID_BUFLEN) != 0) {
            virReportSystemError(EBUSY,
                                 _("Cannot open log file: '%1$s'"),
                                 path);
            return -1;
        }

        /* the domain's output goes on: the file is not truncated under
         * the process still writing to it */
        VIR_DEBUG("stream of domain '%s' joins open log file %s%s",
                  file->domname, path, trunc ? " (not truncated)" : "");
        *writer = file->file;
        return 0;
    }

    return 0;
}


/**
 * virLogHandlerStreamShared:
 *
 * Whether another stream of @handler than @file writes through @file's
 * writer. @file itself may or may not be in the handler's list.
 */
bool
virLogHandlerStreamShared(virLogHandler *handler,
                          virLogHandlerLogFile *file)
{
    size_t i;

    if (!file->file)
        return false;

    for (i = 0; i < handler->nfiles; i++) {
        if (handler->files[i] && handler->files[i] != file &&
            handler->files[i]->file == file->file)
            return true;
    }

    return false;
}


/**
 * virLogHandlerStreamRelease:
 *
 * Before @file is freed: leave its writer to the other streams that
 * share it, so that only the last one closes the file.
 */
void
virLogHandlerStreamRelease(virLogHandler *handler,
                           virLogHandlerLogFile *file)
{
    if (file && virLogHandlerStreamShared(handler, file))
        file->file = NULL;
}
