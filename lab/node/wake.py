"""Blocking waits for the node simulators, so an idle lab node costs nothing (issue 23: a polling
kubelet took 4% of a core per node, and a 3+100 lab must idle under 10% of one): a Wake blocks
until a watched directory changes (inotify, through ctypes: the lab is standard library only), a
child process exits (a pidfd), a signal arrives (the signal wakeup fd) or a timeout passes."""
import ctypes
import errno
import os
import select
import signal
import sys

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
CHANGES = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
           | IN_DELETE_SELF | IN_MOVE_SELF)

POLL = 1.0
_libc = ctypes.CDLL(None, use_errno=True)


class Wake:
    def __init__(self, dirs=(), signals=(signal.SIGTERM,), quiet=False):
        """dirs: directories whose entries matter; one that does not exist yet (or is replaced) is
        watched again by watch(), which each wait calls, so a directory made later is followed.
        signals: those that wake a wait (none: the process's signal handling is left alone, as a
        short command's wait_until wants). quiet: no word on stderr when inotify is unavailable."""
        self.dirs = list(dirs)
        self.fd, self.poll, self.changed = None, None, False
        if self.dirs:  # an inotify instance only where there is something to watch: they are few per user
            fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd >= 0:
                self.fd = fd
            else:
                # Out of instances (fs.inotify.max_user_instances, 128 by default; `lab up` raises
                # it for a big lab when it may): poll the directories instead, as slowly as a test allows.
                self.poll = POLL
                if not quiet:
                    print(f"inotify unavailable ({os.strerror(ctypes.get_errno())}): polling every {POLL:g}s",
                          file=sys.stderr, flush=True)
        self.sig_r = self.sig_w = None
        if signals:
            self.sig_r, self.sig_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            signal.set_wakeup_fd(self.sig_w, warn_on_full_buffer=False)
        for s in signals:  # a handler must be set for the wakeup fd to see the signal
            if signal.getsignal(s) in (signal.SIG_DFL, signal.SIG_IGN, None):
                signal.signal(s, lambda *_: None)

    def watch(self):
        for d in self.dirs if self.fd is not None else ():
            # Adding a watch that exists returns the same descriptor: cheap, and it re-arms a
            # directory that was deleted and made again. The parent's watch (when listed too) sees
            # the directory appear.
            if _libc.inotify_add_watch(self.fd, os.fsencode(d), CHANGES) < 0 and ctypes.get_errno() not in (
                    errno.ENOENT, errno.ENOTDIR):
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {d}")

    def wait(self, timeout=None, fds=()):
        """Blocks for at most timeout seconds (None: until something happens). Returns the fds of
        `fds` that are readable; self.changed says whether a watched directory changed or a signal
        came (both queues are drained)."""
        self.watch()
        if self.poll is not None:
            timeout = self.poll if timeout is None else min(timeout, self.poll)
        if timeout is not None and timeout <= 0:
            timeout = 0
        own = [fd for fd in (self.fd, self.sig_r) if fd is not None]
        ready, _, _ = select.select([*own, *fds], [], [], timeout)
        self.changed = any(fd in ready for fd in own)
        for fd in own:
            if fd in ready:
                try:
                    while os.read(fd, 65536):
                        pass
                except BlockingIOError:
                    pass
        return [fd for fd in ready if fd in fds]

    def close(self):
        if self.sig_w is not None:
            signal.set_wakeup_fd(-1)
        for fd in (self.fd, self.sig_r, self.sig_w):
            if fd is not None:
                os.close(fd)
        self.fd = self.sig_r = self.sig_w = None


def exits(pid):
    """A pidfd that becomes readable when the process ends (None if it has already gone)."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None
