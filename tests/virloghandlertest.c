/*
 * virloghandlertest.c: streams of virtlogd's log handler
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

#include <config.h>

#include <sys/stat.h>
#include <unistd.h>

#include "testutils.h"
#include "log_handler.h"
#include "virerror.h"
#include "virevent.h"
#include "virfile.h"
#include "viruuid.h"

#define VIR_FROM_THIS VIR_FROM_NONE

static const unsigned char uuidA[VIR_UUID_BUFLEN] = "domain-A-uuid-xx";
static const unsigned char uuidB[VIR_UUID_BUFLEN] = "domain-B-uuid-xx";

static char *testDir;
static int inhibitions;

static void
testInhibitor(bool inhibit, void *opaque G_GNUC_UNUSED)
{
    inhibitions += inhibit ? 1 : -1;
}


typedef struct {
    virLogDaemonConfig config;
    virLogHandler *handler;
    char *path;
} testLog;

static int
testLogInit(testLog *log, const char *name)
{
    memset(log, 0, sizeof(*log));
    log->config.max_size = 1024 * 1024;
    log->config.max_backups = 3;
    log->path = g_strdup_printf("%s/%s.log", testDir, name);
    unlink(log->path);
    if (!(log->handler = virLogHandlerNew(true, &log->config,
                                          testInhibitor, NULL)))
        return -1;
    return 0;
}

static void
testLogClear(testLog *log)
{
    g_clear_pointer(&log->handler, virObjectUnref);
    if (log->path)
        unlink(log->path);
    g_clear_pointer(&log->path, g_free);
}

/* A stream of @uuid's process into @log's file, as virtlogd opens one
 * for each QEMU process. Returns the write end of its pipe. */
static int
testLogOpen(testLog *log,
            const char *driver,
            const unsigned char *uuid,
            bool trunc)
{
    ino_t inode;
    off_t offset;

    return virLogHandlerDomainOpenLogFile(log->handler, driver, uuid, "dom",
                                          log->path, trunc, &inode, &offset);
}

static void
testTick(int timer G_GNUC_UNUSED, void *opaque G_GNUC_UNUSED)
{
}

/* Run the daemon's event loop until @done holds, for at most a second: an
 * iteration may end on an internal wakeup before it reads a pipe. */
static int
testLogRunUntil(bool (*done)(testLog *log, size_t want),
                testLog *log,
                size_t want)
{
    int timer = virEventAddTimeout(10, testTick, NULL, NULL);
    size_t i;
    int ret = -1;

    for (i = 0; i < 100 && !done(log, want); i++) {
        if (virEventRunDefaultImpl() < 0)
            break;
    }
    if (done(log, want))
        ret = 0;
    else
        fprintf(stderr, "the daemon did not get there in time\n");
    virEventRemoveTimeout(timer);
    return ret;
}

static bool
testLogHasSize(testLog *log, size_t want)
{
    struct stat sb;

    return stat(log->path, &sb) == 0 && sb.st_size == want;
}

static bool
testLogHasStreams(testLog *log, size_t want)
{
    return log->handler->nfiles == want;
}

/* What a process writes: the daemon reads it in its event loop. */
static int
testLogWrite(testLog *log, int fd, const char *text)
{
    struct stat sb;

    if (stat(log->path, &sb) < 0 ||
        safewrite(fd, text, strlen(text)) < 0) {
        fprintf(stderr, "write: %s\n", g_strerror(errno));
        return -1;
    }
    return testLogRunUntil(testLogHasSize, log, sb.st_size + strlen(text));
}

/* A process goes away: the daemon sees its pipe close. */
static int
testLogEnd(testLog *log, int *fd)
{
    VIR_FORCE_CLOSE(*fd);
    return testLogRunUntil(testLogHasStreams, log, log->handler->nfiles - 1);
}

static int
testLogExpect(testLog *log, const char *want)
{
    g_autofree char *got = NULL;

    if (virFileReadAll(log->path, 1024 * 1024, &got) < 0)
        return -1;
    if (STRNEQ(got, want)) {
        virTestDifference(stderr, want, got);
        return -1;
    }
    return 0;
}


/* A local migration's new process opens the domain's log while the old
 * one still writes to it: both streams land in the file, in order. */
static int
testSecondStream(const void *opaque G_GNUC_UNUSED)
{
    testLog log;
    VIR_AUTOCLOSE a = -1;
    VIR_AUTOCLOSE b = -1;
    int ret = -1;

    if (testLogInit(&log, "second") < 0 ||
        (a = testLogOpen(&log, "qemu", uuidA, false)) < 0 ||
        testLogWrite(&log, a, "old 1\n") < 0)
        goto cleanup;

    if ((b = testLogOpen(&log, "qemu", uuidA, false)) < 0) {
        fprintf(stderr, "second stream refused: %s\n", virGetLastErrorMessage());
        goto cleanup;
    }

    if (testLogWrite(&log, b, "new 1\n") < 0 ||
        testLogWrite(&log, a, "old 2\n") < 0 ||
        testLogWrite(&log, b, "new 2\n") < 0 ||
        testLogExpect(&log, "old 1\nnew 1\nold 2\nnew 2\n") < 0)
        goto cleanup;

    if (log.handler->nfiles != 2 ||
        log.handler->files[0]->file != log.handler->files[1]->file) {
        fprintf(stderr, "the two streams do not share one writer\n");
        goto cleanup;
    }

    /* the old process goes away; the new one keeps writing */
    if (testLogEnd(&log, &a) < 0 ||
        testLogWrite(&log, b, "new 3\n") < 0 ||
        testLogExpect(&log, "old 1\nnew 1\nold 2\nnew 2\nnew 3\n") < 0 ||
        testLogEnd(&log, &b) < 0)
        goto cleanup;

    ret = 0;
 cleanup:
    testLogClear(&log);
    return ret;
}


/* Another domain (or driver) still cannot write into an open log file. */
static int
testRefused(const void *opaque G_GNUC_UNUSED)
{
    testLog log;
    VIR_AUTOCLOSE a = -1;
    VIR_AUTOCLOSE other = -1;
    int ret = -1;

    if (testLogInit(&log, "refused") < 0 ||
        (a = testLogOpen(&log, "qemu", uuidA, false)) < 0)
        goto cleanup;

    if ((other = testLogOpen(&log, "qemu", uuidB, false)) >= 0) {
        fprintf(stderr, "another domain joined the log\n");
        goto cleanup;
    }
    if (!strstr(virGetLastErrorMessage(), "Device or resource busy")) {
        fprintf(stderr, "unexpected error: %s\n", virGetLastErrorMessage());
        goto cleanup;
    }
    if ((other = testLogOpen(&log, "lxc", uuidA, false)) >= 0) {
        fprintf(stderr, "another driver joined the log\n");
        goto cleanup;
    }
    if (log.handler->nfiles != 1 || testLogWrite(&log, a, "still here\n") < 0 ||
        testLogExpect(&log, "still here\n") < 0)
        goto cleanup;

    ret = 0;
 cleanup:
    virResetLastError();
    testLogClear(&log);
    return ret;
}


/* A character device's log without append='on' asks for truncation; the
 * domain's next process gets the file as it is, the old output kept. */
static int
testNoTruncate(const void *opaque G_GNUC_UNUSED)
{
    testLog log;
    VIR_AUTOCLOSE a = -1;
    VIR_AUTOCLOSE b = -1;
    int ret = -1;

    if (testLogInit(&log, "truncate") < 0 ||
        (a = testLogOpen(&log, "qemu", uuidA, true)) < 0 ||
        testLogWrite(&log, a, "old 1\n") < 0 ||
        (b = testLogOpen(&log, "qemu", uuidA, true)) < 0 ||
        testLogWrite(&log, b, "new 1\n") < 0 ||
        testLogWrite(&log, a, "old 2\n") < 0 ||
        testLogExpect(&log, "old 1\nnew 1\nold 2\n") < 0)
        goto cleanup;

    /* once no process writes, truncation is as before */
    if (testLogEnd(&log, &a) < 0 || testLogEnd(&log, &b) < 0 ||
        (a = testLogOpen(&log, "qemu", uuidA, true)) < 0 ||
        testLogExpect(&log, "") < 0)
        goto cleanup;

    ret = 0;
 cleanup:
    virResetLastError();
    testLogClear(&log);
    return ret;
}


/* Replace every "pipefd" of @state with a duplicate, as if the daemon's
 * exec kept them, so that the old handler can go away with its own. */
static int
testDupPipes(virJSONValue *state)
{
    virJSONValue *files = virJSONValueObjectGetArray(state, "files");
    size_t i;

    for (i = 0; i < virJSONValueArraySize(files); i++) {
        virJSONValue *file = virJSONValueArrayGet(files, i);
        int fd;

        if (virJSONValueObjectGetNumberInt(file, "pipefd", &fd) < 0 ||
            (fd = dup(fd)) < 0)
            return -1;
        virJSONValueObjectRemoveKey(file, "pipefd", NULL);
        if (virJSONValueObjectAppendNumberInt(file, "pipefd", fd) < 0)
            return -1;
    }
    return 0;
}


/* virtlogd re-executes itself (SIGUSR1, an upgrade) in the middle of a
 * local migration: both streams survive, still into one writer. */
static int
testReExec(const void *opaque G_GNUC_UNUSED)
{
    testLog log;
    g_autoptr(virJSONValue) state = NULL;
    virLogHandler *restarted = NULL;
    VIR_AUTOCLOSE a = -1;
    VIR_AUTOCLOSE b = -1;
    int ret = -1;

    if (testLogInit(&log, "reexec") < 0 ||
        (a = testLogOpen(&log, "qemu", uuidA, false)) < 0 ||
        (b = testLogOpen(&log, "qemu", uuidA, false)) < 0 ||
        testLogWrite(&log, a, "old 1\n") < 0 ||
        testLogWrite(&log, b, "new 1\n") < 0)
        goto cleanup;

    if (!(state = virLogHandlerPreExecRestart(log.handler)) ||
        testDupPipes(state) < 0)
        goto cleanup;
    g_clear_pointer(&log.handler, virObjectUnref);

    if (!(restarted = virLogHandlerNewPostExecRestart(state, true, &log.config,
                                                      testInhibitor, NULL)))
        goto cleanup;
    log.handler = restarted;

    if (restarted->nfiles != 2 ||
        restarted->files[0]->file != restarted->files[1]->file) {
        fprintf(stderr, "the restored streams do not share one writer\n");
        goto cleanup;
    }

    if (testLogWrite(&log, b, "new 2\n") < 0 ||
        testLogWrite(&log, a, "old 2\n") < 0 ||
        testLogExpect(&log, "old 1\nnew 1\nnew 2\nold 2\n") < 0)
        goto cleanup;

    ret = 0;
 cleanup:
    testLogClear(&log);
    return ret;
}


static int
mymain(void)
{
    g_autofree char *tmpl = g_strdup_printf("%s/virloghandlertest-XXXXXX",
                                            g_get_tmp_dir());
    int ret = 0;

    if (!(testDir = g_mkdtemp(tmpl)))
        return EXIT_FAILURE;

    virEventRegisterDefaultImpl();

    if (virTestRun("second stream of a domain joins its log", testSecondStream, NULL) < 0)
        ret = -1;
    if (virTestRun("other domains and drivers refused", testRefused, NULL) < 0)
        ret = -1;
    if (virTestRun("an open log is not truncated", testNoTruncate, NULL) < 0)
        ret = -1;
    if (virTestRun("shared log survives re-exec", testReExec, NULL) < 0)
        ret = -1;
    if (inhibitions != 0) {
        fprintf(stderr, "shutdown inhibited %d more times than released\n",
                inhibitions);
        ret = -1;
    }

    rmdir(testDir);
    return ret == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

VIR_TEST_MAIN(mymain)
