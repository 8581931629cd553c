"""pytest configuration and fixtures for the blobfs integration tests.

Run from the repository root (as root, /dev/fuse needed):

    /usr/bin/python3 -m pytest tests/integration            # everything
    /usr/bin/python3 -m pytest tests/integration -m 'not slow'  # skip 512 MiB
    BLOBFS_BIN=/path/to/blobfs /usr/bin/python3 -m pytest tests/integration

Environment: BLOBFS_BIN (daemon binary, default <repo>/build/blobfs),
BLOBFS_SANITIZED=1 (ASan/UBSan build: the 512 MiB test does not check the
peak RSS), BLOBFS_TEST_TIMEOUT (seconds before a hung test's daemon is
killed, default 180), BLOBFS_MOUNT_TIMEOUT, BLOBFS_EXIT_TIMEOUT.

Every test gets its own DATADIR and mount point under tmp_path. The
`blobfs` fixture always unmounts in its teardown, even when the test failed,
and then asserts that the daemon exited with status 0. An autouse fixture
fails a test that leaves a mount or a process behind under its tmp_path.

Backends: the `blobfs` / `make_mount` fixtures mount the local backend (a
DATADIR) unless the test is marked `backends`: then it runs once per backend
of BLOBFS_BACKENDS (default "local,memory"; "s3" too, which scripts/test
runs in a pass of its own), with ids [local] / [memory] / [s3]; a memory
mount is `blobfs -f memory: MNT`, run in an empty directory of the test; an
s3 mount is a prefix of its own in the bucket of scripts/ceph-dev's radosgw
(the session fixture `s3_cluster` starts it when it is not running), with a
cache directory in the test's tmp_path. Tests that look at DATADIR, persistence, fsck, compaction, damage or
a full disk stay local-only. The tests of test_memory.py run when memory is
in BLOBFS_BACKENDS.
"""

import os
import shutil
import subprocess
import time

import pytest

from blobfs_test import ceph, common, mounting

_metrics = []


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: long-running test (the 512 MiB blob); deselect with -m "not slow"')
    config.addinivalue_line(
        'markers', 'backends: run the test on every backend of BLOBFS_BACKENDS '
        '(default local,memory), as test[local] and test[memory]')


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker('backends') and 'backend' in metafunc.fixturenames:
        names = mounting.backends()
        metafunc.parametrize('backend', names, ids=names, indirect=True)


@pytest.fixture
def backend(request):
    """The backend `blobfs` and `make_mount` mount: 'local', or each of
    BLOBFS_BACKENDS for a test marked `backends`."""
    return getattr(request, 'param', 'local')


@pytest.fixture
def memory_backend():
    """For the tests of the memory backend only: skipped (with the reason)
    when BLOBFS_BACKENDS leaves memory out."""
    if 'memory' not in mounting.backends():
        pytest.skip(f'memory is not in BLOBFS_BACKENDS={os.environ.get("BLOBFS_BACKENDS")!r}')
    return 'memory'


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, 'rep_' + rep.when, rep)


def pytest_terminal_summary(terminalreporter):
    if _metrics:
        terminalreporter.section('blobfs measurements')
        for line in _metrics:
            terminalreporter.write_line(line)


@pytest.fixture
def metric(request):
    """metric('text') prints a measurement now (visible with -s) and again
    in the terminal summary at the end of the run."""
    def record(text):
        line = f'{request.node.name}: {text}'
        print(line, flush=True)
        _metrics.append(line)
    return record


@pytest.fixture(scope='session')
def blobfs_bin():
    path = common.blobfs_bin()
    if not os.access(path, os.X_OK):
        pytest.fail(f'blobfs binary not found at {path}: build it with '
                    f'"meson setup build && ninja -C build" or set BLOBFS_BIN',
                    pytrace=False)
    if shutil.which('fusermount3') is None:
        pytest.fail('fusermount3 not found (install fuse3)', pytrace=False)
    if not os.path.exists('/dev/fuse'):
        pytest.skip('/dev/fuse is not available')
    return path


def _test_failed(request):
    rep = getattr(request.node, 'rep_call', None)
    return rep is None or rep.failed


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path):
    """Fail the test if it leaves a mount or a live process under tmp_path."""
    yield
    problems = []
    for mp in mounting.mounts_under(tmp_path):
        mounting.unmount_path(mp)
        problems.append(f'mount left behind: {mp}')
    if problems:
        time.sleep(2)   # give daemons of unmounted file systems time to exit
    for pid, argv in mounting.processes_mentioning(str(tmp_path)):
        problems.append(f'process left behind: {pid} {argv}')
        # We started it (its argv names our private tmp_path): end it.
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    assert not problems, '\n'.join(problems)


@pytest.fixture(scope='session')
def s3_cluster():
    """The radosgw of scripts/ceph-dev (blobfs_test.ceph), started for the
    session when it is not running; skipped with BLOBFS_S3=0."""
    if not ceph.enabled():
        pytest.skip('BLOBFS_S3=0')
    cluster = ceph.Cluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def make_mount(request, tmp_path, blobfs_bin, backend):
    """Factory: make_mount(name='', backend=None, **Mount kwargs) -> mounted
    Mount.

    Each mount uses tmp_path/<name>data (local) or memory: run from the
    empty directory tmp_path/<name>cwd (memory), or a prefix of its own in
    the test bucket with the cache tmp_path/<name>cache (s3), and
    tmp_path/<name>mnt. backend=None means the test's `backend`. All of
    them are unmounted at teardown and must have exited with status 0."""
    created = []
    test_backend = backend

    def factory(name='', mount=True, data=None, backend=None, **kwargs):
        if (backend or test_backend) == 'memory' and data is None:
            data = mounting.MEMORY
            kwargs.setdefault('cwd', tmp_path / f'{name}cwd')
        if (backend or test_backend) == 's3' and data is None:
            cluster = request.getfixturevalue('s3_cluster')
            data = f's3://{ceph.BUCKET}/{cluster.new_prefix(request.node.name + name)}'
        if str(data).startswith('s3://'):
            # A cache of its own; the cluster's endpoint and keys.
            cluster = request.getfixturevalue('s3_cluster')
            kwargs['extra_args'] = ['-o', f'cache={tmp_path}/{name}cache'] + \
                list(kwargs.get('extra_args', ()))
            kwargs['env'] = {**cluster.env, **(kwargs.get('env') or {})}
        m = mounting.Mount(data or tmp_path / f'{name}data', tmp_path / f'{name}mnt',
                           tmp_path, **kwargs)
        created.append(m)
        if mount:
            m.mount()
        return m

    try:
        yield factory
    finally:
        errors = []
        for m in created:
            if _test_failed(request) and m.log_files:
                print(f'--- blobfs log ({m.mnt}) ---\n{m.log_tail(200)}')
            try:
                m.cleanup()
            except AssertionError as e:
                errors.append(str(e))
        assert not errors, '\n\n'.join(errors)


@pytest.fixture
def blobfs(make_mount):
    """A mounted blobfs (Mount object) on a fresh DATADIR, or on memory:
    for a test marked `backends` (see `backend`)."""
    return make_mount()


@pytest.fixture
def store(blobfs):
    """Create store 's' on the `blobfs` mount; returns its name."""
    os.mkdir(blobfs.path('s'))
    return 's'


class DaemonRunner:
    """Runs `blobfs [mount] DATADIR MNT` without -f and keeps track of the
    detached daemons so that they can be stopped and checked."""

    def __init__(self, tmp_path, binary):
        self.tmp_path = tmp_path
        self.binary = binary
        self.subreaper = mounting.set_child_subreaper(True)
        self.mnts = []       # real paths of mount points used
        self.mnt_args = []   # mount points as given on the command line
        self.pids = set()    # daemon pids seen
        self.runs = 0

    def run(self, args, mnt, cwd=None, timeout=30):
        """Run blobfs with `args`; return (returncode, stdout, stderr).
        Output goes to files, so a daemon that keeps the caller's stdout or
        stderr open cannot block this call."""
        self.runs += 1
        self.mnts.append(os.path.realpath(os.path.join(cwd or '.', str(mnt))))
        self.mnt_args.append(str(mnt))
        out_path = self.tmp_path / f'daemonize-{self.runs}.out'
        err_path = self.tmp_path / f'daemonize-{self.runs}.err'
        with open(out_path, 'wb') as out, open(err_path, 'wb') as err:
            r = subprocess.run([self.binary] + [str(a) for a in args], cwd=cwd,
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                               timeout=timeout)
        return (r.returncode, out_path.read_text(errors='replace'),
                err_path.read_text(errors='replace'))

    def daemon_pid(self, mnt_arg):
        """The pid of the (single) live blobfs daemon with `mnt_arg` in its
        argv (as `pgrep -f` would find it), re-parented to us when we are
        a subreaper."""
        pids = mounting.find_daemon_pids(str(mnt_arg))
        if self.subreaper:
            mine = [p for p in pids if mounting.proc_ppid(p) == os.getpid()]
            pids = mine or pids
        assert len(pids) == 1, f'expected one blobfs daemon for {mnt_arg}, found {pids}'
        self.pids.add(pids[0])
        return pids[0]

    def stop(self, mnt, pid, timeout=mounting.EXIT_TIMEOUT):
        """Unmount `mnt` and wait for the daemon. Returns its exit status
        when it is our child, 'gone' when it exited otherwise, None if it
        is still running after `timeout`."""
        how = mounting.unmount_path(os.path.realpath(str(mnt)))
        assert how == 'clean', f'unmount of {mnt}: {how}'
        return mounting.wait_pid_exit(pid, timeout)

    def cleanup(self):
        for mnt in self.mnts:
            mounting.unmount_path(mnt)
        # Only daemons this runner started: other mounts of the test (the
        # `blobfs` fixture) are still running and cleaned up by their owner.
        pids = set(self.pids)
        for arg in self.mnt_args:
            pids |= {p for p in mounting.find_daemon_pids(arg)
                     if not self.subreaper or mounting.proc_ppid(p) == os.getpid()}
        leftovers = []
        for pid in pids:
            if (mounting.pid_alive(pid)
                    and mounting.wait_pid_exit(pid, mounting.EXIT_TIMEOUT) is None):
                leftovers.append(pid)
                try:
                    os.kill(pid, 9)   # a daemon this test started and could not stop
                except ProcessLookupError:
                    pass
                mounting.wait_pid_exit(pid, 10)
        if self.subreaper:
            mounting.reap_zombie_children()
            mounting.set_child_subreaper(False)
        assert not leftovers, f'daemon(s) {leftovers} did not exit after unmount'


@pytest.fixture
def daemon_runner(tmp_path, blobfs_bin):
    runner = DaemonRunner(tmp_path, blobfs_bin)
    try:
        yield runner
    finally:
        runner.cleanup()
