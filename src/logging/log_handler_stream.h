/*
 * log_handler_stream.h: several streams of one domain into one log file
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

#include "log_handler.h"

int
virLogHandlerStreamJoin(virLogHandler *handler,
                        const char *driver,
                        const unsigned char *domuuid,
                        const char *path,
                        bool trunc,
                        virRotatingFileWriter **writer);

bool
virLogHandlerStreamShared(virLogHandler *handler,
                          virLogHandlerLogFile *file);

void
virLogHandlerStreamRelease(virLogHandler *handler,
                           virLogHandlerLogFile *file);
