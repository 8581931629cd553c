"""Mounting blobfs and watching its processes.

The Mount class runs a real blobfs daemon in the foreground (``-f``) on a
data directory (or ``memory:``) and a mount point, both inside the test's
tmp_path, in the spirit of libfuse's own test/util.py: it waits for the
mount to appear in /proc/self/mountinfo, notices a daemon that dies before
mounting, unmounts with fusermount3 and insists that the daemon exits with
status 0. Also: mountinfo and /proc helpers, crashing a daemon on purpose,
and running the offline commands (fsck, compact).
"""

import ctypes
import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .common import blobfs_bin, bpath, run


# Seconds to wait for a mount to show up / for the daemon to exit.


# Seconds to wait for a mount to show up / for the daemon to exit.
MOUNT_TIMEOUT = float(os.environ.get('BLOBFS_MOUNT_TIMEOUT', '20'))

EXIT_TIMEOUT = float(os.environ.get('BLOBFS_EXIT_TIMEOUT', '60'))

# A test that is still running after this many seconds is considered hung:
# the watchdog kills the daemon (which makes every pending syscall on the
# mount fail with ENOTCONN) so that the test fails instead of blocking.
WATCHDOG_TIMEOUT = float(os.environ.get('BLOBFS_TEST_TIMEOUT', '180'))

# Messages of ASan/UBSan/LSan builds that did not abort the daemon.
SANITIZER_REPORT = re.compile(r'runtime error:|ERROR: (Address|Leak|Undefined)Sanitizer')


# The location that selects the in-memory backend, and the backends the
# tests marked `backends` run on: BLOBFS_BACKENDS, a comma-separated list
# (default "local,memory").
MEMORY = 'memory:'
KNOWN_BACKENDS = ('local', 'memory', 's3')


def backends():
    """The backends of BLOBFS_BACKENDS, in order (default local, memory)."""
    names = [b.strip() for b in os.environ.get('BLOBFS_BACKENDS', 'local,memory').split(',')
             if b.strip()]
    unknown = [b for b in names if b not in KNOWN_BACKENDS]
    if unknown:
        raise ValueError(f'BLOBFS_BACKENDS: unknown backend(s) {unknown}; '
                         f'known: {", ".join(KNOWN_BACKENDS)}')
    return names


# --------------------------------------------------------------------------
# mountinfo / processes


def _unescape_mountinfo(field):
    # The kernel escapes space, tab, newline and backslash as \ooo.
    return re.sub(rb'\\([0-7]{3})', lambda m: bytes([int(m.group(1), 8)]), field)


def mounts():
    """{mount point (str): fstype} for every entry of /proc/self/mountinfo."""
    result = {}
    with open('/proc/self/mountinfo', 'rb') as f:
        for line in f:
            fields = line.split()
            sep = fields.index(b'-')
            mp = os.fsdecode(_unescape_mountinfo(fields[4]))
            result[mp] = os.fsdecode(fields[sep + 1])
    return result


def is_mounted(path):
    """True if `path` (already a real path) is a mount point.

    Reads mountinfo instead of calling os.path.ismount(), which would stat
    the mount point and could block on a hung daemon.
    """
    return str(path) in mounts()


def mounts_under(prefix):
    prefix = str(prefix).rstrip('/') + '/'
    return [mp for mp in mounts() if mp.startswith(prefix)]


def proc_argv(pid):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            raw = f.read()
    except OSError:
        return None
    return [os.fsdecode(a) for a in raw.split(b'\0')[:-1]]


def proc_state(pid):
    """Single-letter state of `pid` (R, S, D, Z, ...) or None if it is gone."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: the state follows the last ')'.
    return data[data.rindex(b')') + 2:data.rindex(b')') + 3].decode()


def proc_ppid(pid):
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b')') + 2:].split()[1])


def pid_alive(pid):
    state = proc_state(pid)
    return state is not None and state not in ('Z', 'X')


def all_pids():
    return [int(d) for d in os.listdir('/proc') if d.isdigit()]


def find_daemon_pids(*needles):
    """Live processes whose argv contains every string in `needles` and
    whose executable is a blobfs binary (the same way `pgrep -f` would
    find them, but matching whole arguments)."""
    found = []
    for pid in all_pids():
        if pid == os.getpid():
            continue
        argv = proc_argv(pid)
        if not argv or not pid_alive(pid):
            continue
        if os.path.basename(argv[0]) != os.path.basename(blobfs_bin()):
            continue
        if all(n in argv for n in needles):
            found.append(pid)
    return found


def processes_mentioning(text):
    """Live processes (other than us) with `text` somewhere in their argv."""
    found = []
    for pid in all_pids():
        if pid == os.getpid():
            continue
        argv = proc_argv(pid)
        if argv and pid_alive(pid) and any(text in a for a in argv):
            found.append((pid, argv))
    return found


def vm_hwm_kib(pid):
    """Peak resident set size (VmHWM) of `pid`, in KiB."""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    raise AssertionError(f'no VmHWM in /proc/{pid}/status')


def set_child_subreaper(on):
    """Make this process the reaper of orphaned descendants, so that a
    daemonized blobfs becomes our child and we can collect its exit status.
    Returns False when prctl is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        return libc.prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1 if on else 0),
                          ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0
    except (OSError, AttributeError):
        return False


def wait_pid_exit(pid, timeout):
    """Wait for a process that is not necessarily our child to go away.

    Returns its exit status (int) if it is our child (e.g. thanks to
    set_child_subreaper), 'gone' if it disappeared otherwise, None on
    timeout.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid == pid:
                return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            if not pid_alive(pid):
                return 'gone'
        time.sleep(0.05)
    return None


def reap_zombie_children():
    """Collect zombies re-parented to us (with the subreaper flag set)."""
    me = os.getpid()
    for pid in all_pids():
        if proc_ppid(pid) == me and proc_state(pid) == 'Z':
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


# --------------------------------------------------------------------------
# the daemon


def fusermount_u(mnt, lazy=False):
    cmd = ['fusermount3', '-u'] + (['-z'] if lazy else []) + [str(mnt)]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=60)


def unmount_path(mnt, attempts=5):
    """fusermount3 -u with retries, lazy unmount as a last resort.
    Returns 'clean', 'lazy' or 'not-mounted'."""
    mnt = str(mnt)
    if not is_mounted(mnt):
        return 'not-mounted'
    for attempt in range(attempts):
        r = fusermount_u(mnt)
        if r.returncode == 0 or not is_mounted(mnt):
            return 'clean'
        time.sleep(0.2 * (attempt + 1))
    fusermount_u(mnt, lazy=True)
    return 'lazy'


class Mount:
    """One blobfs daemon running in the foreground on (data, mnt).

    Attributes: .backend ('local' or 'memory'), .data (the DATADIR's real
    path, or 'memory:'), .mnt (real path, str), .cwd (the daemon's working
    directory, None for ours), .env (variables added to the daemon's
    environment), .pid (while running), .proc
    (subprocess.Popen), .exit_codes (one per finished daemon run).
    """

    def __init__(self, data, mnt, logdir, extra_args=(), mount_word=False,
                 foreground_flag=True, cwd=None, env=None):
        # data: a DATADIR path (the local backend), MEMORY, or an s3:// location
        self.backend = ('memory' if str(data) == MEMORY else
                        's3' if str(data).startswith('s3://') else 'local')
        self.data = str(data) if self.backend != 'local' else os.path.realpath(data)
        self.mnt = os.path.realpath(mnt)
        self.logdir = Path(logdir)
        self.extra_args = list(extra_args)
        self.mount_word = mount_word
        self.foreground_flag = foreground_flag
        # the daemon's working directory (None: ours); for memory: an empty
        # directory of the test, so that whatever lands there is seen
        self.cwd = os.path.realpath(cwd) if cwd is not None else None
        self.env = dict(env) if env else None   # added to the daemon's environment
        self.proc = None
        self.exit_codes = []
        self.log_files = []
        self.watchdog_fired = False
        self._watchdog = None
        self._watchdog_timeout = WATCHDOG_TIMEOUT
        if self.backend == 'local':
            os.makedirs(self.data, exist_ok=True)
        if self.cwd is not None:
            os.makedirs(self.cwd, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)

    # -- information -------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def mounted(self):
        return is_mounted(self.mnt)

    def command(self):
        cmd = [blobfs_bin()]
        if self.mount_word:
            cmd.append('mount')
        if self.foreground_flag:
            cmd.append('-f')
        return cmd + self.extra_args + [self.data, self.mnt]

    def log(self):
        """Everything the daemon(s) wrote to stdout/stderr, all runs."""
        out = []
        for p in self.log_files:
            try:
                out.append(Path(p).read_text(errors='replace'))
            except OSError:
                pass
        return ''.join(out)

    def log_tail(self, lines=60):
        return '\n'.join(self.log().splitlines()[-lines:])

    def path(self, *parts):
        return bpath(self.mnt, *parts)

    # -- life cycle --------------------------------------------------------

    def mount(self, timeout=MOUNT_TIMEOUT):
        assert self.proc is None, 'already running'
        assert not self.mounted, f'{self.mnt} is already a mount point'
        logfile = self.logdir / f'blobfs-{len(self.log_files) + 1}.log'
        self.log_files.append(logfile)
        with open(logfile, 'wb') as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, cwd=self.cwd,
                                         env={**os.environ, **self.env} if self.env else None)
        deadline = time.monotonic() + timeout
        while not self.mounted:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                self.exit_codes.append(rc)
                raise AssertionError(
                    f'blobfs exited with status {rc} before the mount was up\n'
                    f'command: {self.command()}\n--- daemon log ---\n{self.log_tail()}')
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                unmount_path(self.mnt)
                raise AssertionError(
                    f'mount did not appear within {timeout}s\n'
                    f'--- daemon log ---\n{self.log_tail()}')
            time.sleep(0.01)
        self.arm_watchdog(self._watchdog_timeout)
        if self.backend == 'memory':
            self._check_memory_is_not_a_directory()
        return self

    def _check_memory_is_not_a_directory(self):
        """A blobfs without the memory backend takes "memory:" for a DATADIR
        path relative to its working directory and serves a local store from
        there: fail at once rather than test the local backend twice."""
        where = os.path.join(self.cwd or os.getcwd(), MEMORY)
        if os.path.lexists(where):
            self.umount(check=False)
            raise AssertionError(
                f'blobfs made a directory {where!r}: this binary has no memory '
                f'backend (set BLOBFS_BACKENDS=local to run the local tests only)\n'
                f'--- daemon log ---\n{self.log_tail()}')

    def arm_watchdog(self, seconds):
        """(Re)start the hang watchdog for this daemon run."""
        self._watchdog_timeout = seconds
        self._cancel_watchdog()
        if self.proc is None:
            return
        proc = self.proc

        def fire():
            if proc.poll() is None:
                self.watchdog_fired = True
                sys.stderr.write(f'\nblobfs test watchdog: test still running after '
                                 f'{seconds}s, killing daemon pid {proc.pid}\n')
                proc.send_signal(signal.SIGKILL)

        self._watchdog = threading.Timer(seconds, fire)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _cancel_watchdog(self):
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def umount(self, timeout=EXIT_TIMEOUT, check=True):
        """Unmount, wait for the daemon and (if check) assert it exited 0.
        Returns the exit status."""
        assert self.proc is not None, 'not running'
        self._cancel_watchdog()
        how = unmount_path(self.mnt)
        proc, self.proc = self.proc, None
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.exit_codes.append('hung')
            raise AssertionError(
                f'blobfs did not exit within {timeout}s after unmount (killed)\n'
                f'--- daemon log ---\n{self.log_tail()}')
        self.exit_codes.append(rc)
        if self.mounted:  # e.g. the daemon died and we could not unmount
            unmount_path(self.mnt)
        if how == 'lazy':
            sys.stderr.write(f'warning: {self.mnt} was busy, lazily unmounted\n')
        if check:
            if self.watchdog_fired:
                raise AssertionError(
                    f'test hung: watchdog killed the daemon after '
                    f'{self._watchdog_timeout}s\n--- daemon log ---\n{self.log_tail()}')
            assert rc == 0, (f'blobfs exited with status {rc} (expected 0)\n'
                             f'--- daemon log ---\n{self.log_tail()}')
            m = SANITIZER_REPORT.search(self.log())
            assert not m, f'sanitizer report in the daemon log:\n{self.log_tail(80)}'
        return rc

    def remount(self):
        self.umount()
        return self.mount()

    def cleanup(self):
        """Always safe to call: unmount if needed and check the exit code."""
        self._cancel_watchdog()
        if self.proc is not None:
            self.umount()
        elif self.mounted:
            unmount_path(self.mnt)
            raise AssertionError(f'{self.mnt} was still mounted without a daemon')


# --------------------------------------------------------------------------
# crashes (test_crash, test_damage, test_compaction) and the offline commands


# What a syscall on the mount may fail with once its daemon was killed:
# ENOTCONN for requests sent after the connection died, ECONNABORTED for
# requests that were in flight, EIO for some paths of the kernel.
DEAD_MOUNT_ERRNOS = (errno.ENOTCONN, errno.ECONNABORTED, errno.EIO)


def kill_daemon(m, sig=signal.SIGKILL, timeout=EXIT_TIMEOUT):
    """Crash the daemon of Mount `m` (SIGKILL by default) and wait for it.

    The run is recorded in m.exit_codes as ('killed', status) and its exit
    status is not checked; the dead mount stays until unmount_dead_mount().
    Afterwards m.mount() starts a new daemon whose unmount is checked as
    usual. Returns the exit status (-sig)."""
    assert m.proc is not None, 'not running'
    m._cancel_watchdog()
    proc, m.proc = m.proc, None
    proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
        m.exit_codes.append(('killed', rc))
        raise AssertionError(f'blobfs pid {proc.pid} did not die within {timeout}s of '
                             f'signal {sig}')
    m.exit_codes.append(('killed', rc))
    return rc


def unmount_dead_mount(mnt):
    """`fusermount3 -u MNT` of a mount whose daemon died, as a user would.
    Returns the CompletedProcess (the caller asserts returncode 0)."""
    r = fusermount_u(mnt)
    if r.returncode != 0 and is_mounted(os.path.realpath(str(mnt))):
        time.sleep(0.5)   # a process of ours may still be leaving the mount
        r = fusermount_u(mnt)
    return r


def blobfs_tool(*args, timeout=300):
    """Run `blobfs ARGS...` (fsck, fsck --repair, compact): CompletedProcess
    with text stdout/stderr."""
    return run([blobfs_bin()] + [str(a) for a in args], text=True, timeout=timeout)


def fsck_datadir(datadir, repair=False, timeout=300):
    args = ['fsck'] + (['--repair'] if repair else []) + [datadir]
    return blobfs_tool(*args, timeout=timeout)
