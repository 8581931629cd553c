"""Helpers for the blobfs integration tests.

The Mount class runs a real blobfs daemon in the foreground (``-f``) on a
data directory and a mount point, both inside the test's tmp_path, in the
spirit of libfuse's own test/util.py: it waits for the mount to appear in
/proc/self/mountinfo, notices a daemon that dies before mounting, unmounts
with fusermount3 and insists that the daemon exits with status 0.
"""

import ctypes
import errno
import fcntl
import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Seconds to wait for a mount to show up / for the daemon to exit.
MOUNT_TIMEOUT = float(os.environ.get('BLOBFS_MOUNT_TIMEOUT', '20'))
EXIT_TIMEOUT = float(os.environ.get('BLOBFS_EXIT_TIMEOUT', '60'))
# A test that is still running after this many seconds is considered hung:
# the watchdog kills the daemon (which makes every pending syscall on the
# mount fail with ENOTCONN) so that the test fails instead of blocking.
WATCHDOG_TIMEOUT = float(os.environ.get('BLOBFS_TEST_TIMEOUT', '180'))

EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()
# Messages of ASan/UBSan/LSan builds that did not abort the daemon.
SANITIZER_REPORT = re.compile(r'runtime error:|ERROR: (Address|Leak|Undefined)Sanitizer')
HEX64 = re.compile(r'^[0-9a-f]{64}$')


def blobfs_bin():
    """Path of the daemon binary: $BLOBFS_BIN or <repo>/build/blobfs."""
    return os.environ.get('BLOBFS_BIN') or str(REPO_ROOT / 'build' / 'blobfs')


def bpath(*parts):
    """Join path components. The result is bytes if any component is bytes
    (store names may be any bytes), else str."""
    if any(isinstance(p, bytes) for p in parts):
        return os.path.join(*[os.fsencode(p) for p in parts])
    return os.path.join(*[os.fspath(p) for p in parts])


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

    Attributes: .data, .mnt (real paths, str), .pid (while running),
    .proc (subprocess.Popen), .exit_codes (one per finished daemon run).
    """

    def __init__(self, data, mnt, logdir, extra_args=(), mount_word=False,
                 foreground_flag=True):
        self.data = os.path.realpath(data)
        self.mnt = os.path.realpath(mnt)
        self.logdir = Path(logdir)
        self.extra_args = list(extra_args)
        self.mount_word = mount_word
        self.foreground_flag = foreground_flag
        self.proc = None
        self.exit_codes = []
        self.log_files = []
        self.watchdog_fired = False
        self._watchdog = None
        self._watchdog_timeout = WATCHDOG_TIMEOUT
        os.makedirs(self.data, exist_ok=True)
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
                                         stdout=log, stderr=log)
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
        return self

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
# file helpers


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def save(mnt, store, data, name='f'):
    """Drop `data` into mnt/store/incoming/name, close it, check that the
    blob exists with the right size and return its SHA-256 hex name."""
    path = bpath(mnt, store, 'incoming', name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
    hexname = hashlib.sha256(data).hexdigest()
    st = os.stat(bpath(mnt, store, hexname))
    assert stat.S_ISREG(st.st_mode)
    assert st.st_size == len(data)
    return hexname


def read_exact(fd, n, offset):
    """pread exactly n bytes at offset (fewer only at end of file)."""
    parts = []
    while n > 0:
        chunk = os.pread(fd, n, offset)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
        offset += len(chunk)
    return b''.join(parts)


def read_file(path):
    with open(path, 'rb') as f:
        return f.read()


def sha256_file(path, bufsize=1 << 20):
    h = hashlib.sha256()
    with open(path, 'rb', buffering=0) as f:
        while True:
            chunk = f.read(bufsize)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def expect_errno(expected, func, *args, **kwargs):
    """Call func and assert it raises OSError with errno in `expected`
    (an int or a tuple of ints). Closes a file descriptor that was returned
    by mistake."""
    if isinstance(expected, int):
        expected = (expected,)
    try:
        result = func(*args, **kwargs)
    except OSError as e:
        assert e.errno in expected, (
            f'{func.__name__}{args}: expected {"/".join(errno.errorcode[x] for x in expected)}, '
            f'got {errno.errorcode.get(e.errno, e.errno)} ({e})')
        return e
    if func is os.open and isinstance(result, int):
        os.close(result)
    raise AssertionError(
        f'{func.__name__}{args}: expected {"/".join(errno.errorcode[x] for x in expected)}, '
        f'but it succeeded (returned {result!r})')


def du_bytes(path):
    """Apparent size of a tree, as `du -sb` reports it."""
    r = subprocess.run(['du', '-sb', str(path)], capture_output=True, text=True,
                       check=True, timeout=60)
    return int(r.stdout.split()[0])


def allocated_bytes(path):
    """Sum of st_blocks * 512 over every file and directory of a tree."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def pack_files(datadir, store=None):
    base = Path(datadir) / 'stores'
    pattern = f'{store}/pack-*.pack' if store else '*/pack-*.pack'
    return sorted(base.glob(pattern))


FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x00000010


def set_immutable(tree, on):
    """chattr -R [+-]i, done in-process with ioctl(FS_IOC_SETFLAGS).

    No subprocess on purpose: a fork+exec while a file on the mount is open
    closes the child's copy of the descriptor, which sends a FUSE flush and
    so saves the incoming file early."""
    paths = [str(tree)]
    for root, dirs, files in os.walk(tree):
        paths += [os.path.join(root, n) for n in dirs + files]
    for p in paths:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            buf = bytearray(4)
            fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
            flags = int.from_bytes(buf, sys.byteorder)
            flags = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags.to_bytes(4, sys.byteorder))
        finally:
            os.close(fd)


def run(cmd, **kwargs):
    """subprocess.run with a timeout, text output and no stdin."""
    kwargs.setdefault('timeout', 120)
    kwargs.setdefault('capture_output', True)
    kwargs.setdefault('stdin', subprocess.DEVNULL)
    return subprocess.run(cmd, **kwargs)


# --------------------------------------------------------------------------
# crashes, damaged packs and small disks (test_crash, test_damage,
# test_fulldisk, test_hostile, test_compaction)

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


def env_int(name, default):
    """Integer from the environment variable `name`, else `default`."""
    value = os.environ.get(name, '')
    return int(value) if value.strip() else default


def mount_tmpfs(path, size):
    """mount -t tmpfs -o size=SIZE tmpfs PATH (PATH is created). Pair with
    umount_tmpfs() in a finally block."""
    os.makedirs(path, exist_ok=True)
    r = run(['mount', '-t', 'tmpfs', '-o', f'size={size},mode=0755', 'tmpfs', str(path)],
            text=True)
    assert r.returncode == 0, f'mount -t tmpfs failed: {r.stderr.strip()}'
    return os.path.realpath(path)


def umount_tmpfs(path):
    """Unmount a tmpfs made by mount_tmpfs (lazily if it is still busy)."""
    path = os.path.realpath(str(path))
    if not is_mounted(path):
        return 'not-mounted'
    for attempt in range(5):
        if run(['umount', path]).returncode == 0 or not is_mounted(path):
            return 'clean'
        time.sleep(0.2 * (attempt + 1))
    run(['umount', '-l', path])
    return 'lazy'


def free_bytes(path):
    """Bytes available to unprivileged users on the file system of `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def pack_bytes(datadir, store=None):
    """Total size of the pack files of a DATADIR (or of one store)."""
    return sum(p.stat().st_size for p in pack_files(datadir, store))


def blob_names(mnt, store):
    """The blob names (str) listed in mnt/store, without `incoming`."""
    return sorted(os.fsdecode(n) for n in os.listdir(bpath(mnt, store))
                  if os.fsdecode(n) != 'incoming')


def read_blob_checked(path, expected=None, chunk=1 << 17):
    """Read a blob sequentially from start to end with os.read.

    Returns the bytes. When `expected` is given, every piece is compared with
    the expected bytes at its offset as soon as it arrives, so that wrong
    bytes are reported even if a later read fails: an AssertionError names
    the first differing offset. OSErrors (ENOENT, EIO, ...) propagate."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        pos = 0
        while True:
            piece = os.read(fd, chunk)
            if not piece:
                break
            if expected is not None and piece != expected[pos:pos + len(piece)]:
                bad = next((i for i in range(len(piece))
                            if pos + i >= len(expected) or piece[i] != expected[pos + i]),
                           len(piece))
                raise AssertionError(f'{path}: wrong bytes at offset {pos + bad} '
                                     f'(read {len(piece)} bytes at {pos}, blob size '
                                     f'{len(expected)})')
            parts.append(piece)
            pos += len(piece)
        return b''.join(parts)
    finally:
        os.close(fd)


# -- the pack format (docs/FORMAT.md), for tests that damage packs on purpose

PACK_HEADER_SIZE = 32
RECORD_HEADER_SIZE = 64
RECORD_TRAILER_SIZE = 16
RECORD_MAGIC = 0x31434552
TRAILER_MAGIC = 0x31444E45
MARKER_NAME = 'durable'


class PackRecord:
    """One record of a pack as laid out on disk (offsets within the file)."""

    def __init__(self, pack, offset, kind, chunk_shift, seq, length, hexhash):
        self.pack = pack            # Path of the pack file
        self.offset = offset        # header start
        self.kind = kind            # 1 blob, 2 tombstone
        self.chunk_shift = chunk_shift
        self.seq = seq
        self.length = length
        self.hash = hexhash
        nchunks = (length + (1 << chunk_shift) - 1) >> chunk_shift
        self.data_offset = offset + RECORD_HEADER_SIZE
        self.table_offset = self.data_offset + length
        self.trailer_offset = self.table_offset + 4 * nchunks
        self.end = self.trailer_offset + RECORD_TRAILER_SIZE

    @property
    def is_blob(self):
        return self.kind == 1

    def region(self, offset):
        """Which part of the record a file offset falls in."""
        if offset < self.data_offset:
            return 'header'
        if offset < self.table_offset:
            return 'data'
        if offset < self.trailer_offset:
            return 'chunk table'
        return 'trailer'

    def __repr__(self):
        return (f'<record {self.pack.name}@{self.offset}..{self.end} '
                f'{"blob" if self.is_blob else "tombstone"} {self.hash[:12]} len {self.length} '
                f'seq {self.seq}>')


def parse_pack(path):
    """Records of an undamaged pack file, in file order. Raises
    AssertionError when the file does not follow the format (only meant for
    packs written by a healthy daemon; it does not check the CRCs)."""
    import struct
    path = Path(path)
    data = path.read_bytes()
    assert data[:8] == b'BLOBPAK1', f'{path}: bad pack magic {data[:8]!r}'
    records = []
    off = PACK_HEADER_SIZE
    while off < len(data):
        assert off + RECORD_HEADER_SIZE <= len(data), f'{path}: short header at {off}'
        magic, kind, shift, _r0, seq, length = struct.unpack_from('<IBBHQQ', data, off)
        assert magic == RECORD_MAGIC, f'{path}: bad record magic at {off}'
        hexhash = data[off + 24:off + 56].hex()
        rec = PackRecord(path, off, kind, shift, seq, length, hexhash)
        assert rec.end <= len(data), f'{path}: record at {off} runs past the end'
        tmagic, _tcrc, tseq = struct.unpack_from('<IIQ', data, rec.trailer_offset)
        assert tmagic == TRAILER_MAGIC and tseq == seq, f'{path}: bad trailer of record at {off}'
        records.append(rec)
        off = rec.end
    return records


def parse_store(datadir, store):
    """{pack Path: [PackRecord...]} for every pack of a store."""
    return {p: parse_pack(p) for p in pack_files(datadir, store)}


class tmpfs_disk:
    """with tmpfs_disk(path, '24m') as disk: a small file system for tests
    of a full disk. Every Mount appended to .mounts is unmounted (exit
    status checked) before the tmpfs itself is unmounted, even when the body
    failed."""

    def __init__(self, path, size):
        self.path = path
        self.size = size
        self.mounts = []
        self.disk = None

    def __enter__(self):
        self.disk = mount_tmpfs(self.path, self.size)
        return self

    def __exit__(self, *exc):
        try:
            for m in self.mounts:
                if m.proc is not None:
                    m.umount(check=exc[0] is None)
                elif m.mounted:
                    unmount_path(m.mnt)
        finally:
            umount_tmpfs(self.disk)
        return False
