"""The security issue's hostile user: a second, unprivileged user of one
`-o allow_other` mount (blobfs_test_user, made for the session as in
test_owners.py) tries to make the daemon hold without bound, while the
mounting user (root, this process) keeps working. The daemon's bounds
(`blobfs --help`): store_max, handle_max (a quarter per user other than root
and the mounting user), node_max, receipt_max, writer_memory; the root's
`user.blobfs.stat` shows them. Small bounds keep it quick: store_max=500,
handle_max=4000 (a share of 1000), node_max=2000, receipt_max=20000 (under
ASan, BLOBFS_SANITIZED=1, the first three and the counts below at 2/5).

test_hostile_user_against_the_bounds -- as the user, in child processes
(/usr/bin/python3 under setpriv, RLIMIT_NOFILE raised to the hard limit):
  1. stores until mkdir fails: ENOSPC once store_max stores exist (root's
     mkdir too: store_max counts every store; root may remove one and make
     one again);
  2. a tree 300 directories deep in its store's incoming/, a file at the
     bottom read back;
  3. stat of every blob of a root-owned 0755 store of 5,000 blobs (2.5 times
     node_max), twice: each stat succeeds or fails with ENFILE only, and
     blob_nodes (sampled all along) never goes beyond node_max * 4;
  4. listing loops of the mount root, that store and its own in 4 threads of
     another process, during 1-3;
  5. sparse files in incoming/ (ftruncate to 1 MiB - 1), kept open, until
     open fails: EMFILE at handle_max/4 exactly; then opendir fails with
     EMFILE too, also from another process of the same user (the share is the
     user's, not the process's).
  Meanwhile root saves blobs into its own 0700 store, reads each back (root
  and the mounting user are never refused a lookup by node_max: none may be
  ENFILE) and removes its receipt; while the user sits at its share root opens 1,500 blobs
  (more than the share), reads them, opens directories, and saves again. The daemon's VmRSS (sampled every 50 ms) stays
  under 200 MB (the bound of test_hostile_load.py; not checked under ASan,
  BLOBFS_SANITIZED=1). After the user's processes exit: handles=0, RSS under
  the bound, every save of root's is there with its content, and the user's
  1,000 files were saved (one blob, 1,000 receipts).

test_handle_share_is_per_user -- handle_max=400: the user holds 100 (then
EMFILE, from any of its processes); root opens 150 more, then up to
handle_max: ENFILE at exactly 400 handles in all; one closed, root opens again
and the user still gets EMFILE; all closed: handles=0.

test_pinned_names_do_not_lock_out_the_mounting_user -- with O_PATH
descriptors (no FUSE open, so no handle) the user pins node_max * 4 blob
names (then its own lookups fail with ENFILE); root's lookup of a blob it has
just saved still works (root and the mounting user are never refused for
node_max).
"""

import errno
import hashlib
import json
import os
import resource
import selectors
import subprocess
import threading
import time

import pytest

import test_owners

# The session's second user (made by test_owners.py's fixture, removed at the
# end of the session if made there).
test_user = test_owners.test_user
shared_mount = test_owners.shared_mount

SANITIZED = bool(os.environ.get('BLOBFS_SANITIZED'))
# How long a step of the user's may take: a sanitized daemon is 2-3x slower, and more on a
# machine busy with other work (CI saw the stat storm pass 120 s there once).
SLOW = 3 if SANITIZED else 1
RSS_BOUND_MB = 200            # as test_hostile_load.py
# Under the sanitizers the same bounds at 2/5 of the scale, in the same
# ratios (100 s there at full scale, the longest test of scripts/test).
SCALE = 0.4 if SANITIZED else 1
STORE_MAX = int(500 * SCALE)
HANDLE_MAX = int(4000 * SCALE)
SHARE = HANDLE_MAX // 4
NODE_MAX = int(2000 * SCALE)
NODE_HARD = NODE_MAX * 4
RECEIPT_MAX = 20000
PUBLIC_BLOBS = int(5000 * SCALE)
SPARSE = (1 << 20) - 1
XATTR_STAT = 'user.blobfs.stat'

# The user's side: one process that takes commands (one JSON object a line)
# on stdin and answers each with one JSON line on stdout.
_HOSTILE = r'''
import errno, json, os, resource, sys, threading
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
listing = {'stop': threading.Event(), 'threads': [], 'rounds': 0, 'errors': []}

def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))

def reply(**kw):
    sys.stdout.write(json.dumps(kw) + '\n')
    sys.stdout.flush()

def stores(a):
    n = 0
    while n < a.get('most', 1 << 30):
        try:
            os.mkdir(os.path.join(a['mnt'], '%s%05d' % (a['prefix'], n)))
        except OSError as e:
            return {'made': n, 'errno': name(e)}
        n += 1
    return {'made': n}

def deep(a):
    path = a['top']
    for i in range(a['depth']):
        path = os.path.join(path, 'd%03d' % i)
        os.mkdir(path)
    with open(os.path.join(path, 'bottom'), 'wb') as f:
        f.write(b'at the bottom')
    with open(os.path.join(path, 'bottom'), 'rb') as f:
        return {'read': f.read().decode()}

def stats(a):
    names = sorted(n for n in os.listdir(a['dir']) if n != 'incoming')
    ok, errs = 0, {}
    for _ in range(a['passes']):
        for n in names:
            try:
                os.stat(os.path.join(a['dir'], n))
                ok += 1
            except OSError as e:
                errs[name(e)] = errs.get(name(e), 0) + 1
    return {'names': len(names), 'ok': ok, 'errors': errs}

def lister(paths):
    try:
        while not listing['stop'].is_set():
            for p in paths:
                os.listdir(p)
            listing['rounds'] += 1
    except OSError as e:
        listing['errors'].append(name(e))

def list_start(a):
    for _ in range(a['threads']):
        t = threading.Thread(target=lister, args=(a['paths'],))
        t.start()
        listing['threads'].append(t)
    return {}

def list_stop(a):
    listing['stop'].set()
    for t in listing['threads']:
        t.join()
    return {'rounds': listing['rounds'], 'errors': listing['errors']}

def hold(a):
    while True:
        path = os.path.join(a['dir'], 'h%05d' % len(held))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            return {'held': len(held), 'errno': name(e)}
        held.append(fd)
        if a['size']:
            os.ftruncate(fd, a['size'])

def pin(a):
    for n in sorted(os.listdir(a['dir'])):
        if n == 'incoming':
            continue
        try:
            held.append(os.open(os.path.join(a['dir'], n), os.O_PATH))
        except OSError as e:
            return {'held': len(held), 'errno': name(e)}
    return {'held': len(held), 'errno': None}

def probe(a):
    out = {}
    for what, path, flags in (('file', os.path.join(a['dir'], 'probe'),
                                os.O_WRONLY | os.O_CREAT),
                               ('dir', a['dir'], os.O_RDONLY | os.O_DIRECTORY)):
        try:
            os.close(os.open(path, flags, 0o644))
            out[what] = 'ok'
        except OSError as e:
            out[what] = name(e)
    try:
        os.stat(a['dir'])
        out['stat'] = 'ok'
    except OSError as e:
        out['stat'] = name(e)
    return out

def release(a):
    failed = []
    while held:
        try:
            os.close(held.pop())
        except OSError as e:
            failed.append(name(e))
    return {'close_errors': failed}

ops = dict(stores=stores, deep=deep, stats=stats, list_start=list_start,
           list_stop=list_stop, hold=hold, pin=pin, probe=probe, release=release)
for line in sys.stdin:
    cmd = json.loads(line)
    try:
        reply(ok=ops[cmd['op']](cmd))
    except Exception as e:
        reply(error=repr(e))
'''


class Hostile:
    """One process of the test user running _HOSTILE."""

    def __init__(self, user, spawn_lock):
        uid, gid, _ = user
        with spawn_lock:   # no fork while root has an incoming file open
            self.proc = subprocess.Popen(
                ['setpriv', f'--reuid={uid}', f'--regid={gid}', '--init-groups',
                 '/usr/bin/python3', '-c', _HOSTILE],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd='/', env={'PATH': '/usr/bin:/bin', 'LC_ALL': 'C.UTF-8'})
        self.pending = None

    def send(self, op, **args):
        assert self.pending is None
        self.proc.stdin.write((json.dumps({'op': op, **args}) + '\n').encode())
        self.proc.stdin.flush()
        self.pending = op

    def wait(self, timeout=60):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout)
        sel.close()
        op, self.pending = self.pending, None
        assert ready, f'the user process did not answer {op} within {timeout}s'
        line = self.proc.stdout.readline()
        assert line, f'the user process died during {op}: {self.proc.stderr.read()!r}'
        out = json.loads(line)
        assert 'ok' in out, f'{op}: {out["error"]}'
        return out['ok']

    def call(self, op, timeout=60, **args):
        self.send(op, **args)
        return self.wait(timeout)

    def exit(self, timeout=60):
        """Closes stdin (its files close as it exits) and waits."""
        self.proc.stdin.close()
        rc = self.proc.wait(timeout)
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        assert rc == 0, f'the user process exited with {rc}: {err!r}'

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


@pytest.fixture
def hostile(test_user):
    """Factory of the user's processes; every one is killed at teardown."""
    made = []
    lock = threading.Lock()

    def factory():
        h = Hostile(test_user, lock)
        made.append(h)
        return h
    factory.spawn_lock = lock
    try:
        yield factory
    finally:
        for h in made:
            h.kill()


@pytest.fixture
def bounded_mount(shared_mount):
    """Factory: a blobfs with -o allow_other and the given -o options whose
    mount point the user can reach (test_owners.py's shared_mount)."""
    return shared_mount


def daemon_stat(m):
    """The root's user.blobfs.stat as {field: int}."""
    line = os.getxattr(m.mnt, XATTR_STAT).decode()
    return {k: int(v) for k, v in (f.split('=') for f in line.split())}


def rss_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    raise AssertionError('no VmRSS')


def wait_for(what, cond, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, f'{what}: not within {timeout}s'
        time.sleep(0.05)


class Sampler(threading.Thread):
    """Samples the daemon's VmRSS and user.blobfs.stat every 50 ms."""

    def __init__(self, m):
        super().__init__()
        self.m = m
        self.stop = threading.Event()
        self.rss_peak = 0
        self.peak = {}
        self.errors = []

    def run(self):
        while not self.stop.is_set():
            try:
                self.rss_peak = max(self.rss_peak, rss_mb(self.m.pid))
                for k, v in daemon_stat(self.m).items():
                    self.peak[k] = max(self.peak.get(k, 0), v)
            except Exception as e:   # reported by the test
                self.errors.append(repr(e))
                return
            self.stop.wait(0.05)

    def finish(self):
        self.stop.set()
        self.join()
        assert not self.errors, self.errors
        self.rss_peak = max(self.rss_peak, rss_mb(self.m.pid))


class RootSaver(threading.Thread):
    """Root's work: saves distinct blobs into `store` one after the other,
    reads each back and removes its receipt, until stopped. No fork while
    an incoming file is open (its copy closing would save it early)."""

    def __init__(self, m, store, tag, spawn_lock):
        super().__init__()
        self.m, self.store, self.tag, self.lock = m, store, tag, spawn_lock
        self.stop = threading.Event()
        self.saved = {}
        self.errors = []
        self.enfile = 0

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                data = b'%s %d ' % (self.tag, i) * (1 + i % 300)
                receipt = self.m.path(self.store, 'incoming', f'{self.tag.decode()}{i}')
                with self.lock:
                    with open(receipt, 'wb') as f:
                        f.write(data)
                h = hashlib.sha256(data).hexdigest()
                assert self.read_back(h) == data, f'blob {h} reads back wrong'
                os.unlink(receipt)   # the blob stays; receipt_max is left to the user
                self.saved[h] = data
                i += 1
                self.stop.wait(0.002)   # a steady client, not a flood
        except Exception as e:
            self.errors.append(repr(e))

    def read_back(self, h):
        """The blob's content. Its lookup needs a new blob node, which fails
        with ENFILE while the kernel holds node_max * 1.25 blob names (the
        user's stat storm: the kernel has not yet forgotten what it was asked
        to): counted and tried again, for at most 10 s."""
        deadline = time.monotonic() + 10
        while True:
            try:
                with open(self.m.path(self.store, h), 'rb') as f:
                    return f.read()
            except OSError as e:
                if e.errno != errno.ENFILE or time.monotonic() > deadline:
                    raise
                self.enfile += 1
                time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.join()
        assert not self.errors, self.errors
        return len(self.saved)


def test_hostile_user_against_the_bounds(bounded_mount, hostile, test_user, metric):
    t0 = time.monotonic()
    uid, gid, _ = test_user
    m = bounded_mount(f'store_max={STORE_MAX}', f'handle_max={HANDLE_MAX}',
                      f'node_max={NODE_MAX}', f'receipt_max={RECEIPT_MAX}')
    st = daemon_stat(m)
    assert (st['store_max'], st['handle_max'], st['node_max'], st['receipt_max']) == \
        (STORE_MAX, HANDLE_MAX, NODE_MAX, RECEIPT_MAX)
    assert st['handles'] == 0 and st['stores'] == 0

    # Root's stores: 'mine' (0700, its saves), 'pub' (0755, 5,000 blobs).
    os.mkdir(m.path('mine'), 0o700)
    os.mkdir(m.path('pub'), 0o755)
    public = {}
    for i in range(PUBLIC_BLOBS):
        data = b'public blob %d' % i
        with open(m.path('pub', 'incoming', f'p{i}'), 'wb') as f:
            f.write(data)
        public[hashlib.sha256(data).hexdigest()] = data
    assert len(public) == PUBLIC_BLOBS
    rss_before = rss_mb(m.pid)
    t_setup = time.monotonic() - t0

    sampler = Sampler(m)
    sampler.start()
    saver = RootSaver(m, 'mine', b'root', hostile.spawn_lock)
    try:
        hog, walker = hostile(), hostile()
        # The user's store for its tree and files; then stores until refused.
        assert hog.call('stores', mnt=m.mnt, prefix='h', most=1) == {'made': 1}
        # (1..4) at once: stores + tree + stat storm in one process, listing
        # loops in another, root's saves in a thread.
        saver.start()
        walker.call('list_start', threads=4,
                    paths=[m.mnt, m.path('pub'), m.path('h00000', 'incoming')])
        t1 = time.monotonic()
        made = hog.call('stores', mnt=m.mnt, prefix='x')
        tree = hog.call('deep', top=m.path('h00000', 'incoming'), depth=300)
        storm = hog.call('stats', dir=m.path('pub'), passes=2, timeout=120 * SLOW)
        listed = walker.call('list_stop')
        t_flood = time.monotonic() - t1

        # 1. store_max: the user stopped at ENOSPC with 500 stores in all.
        assert made == {'made': STORE_MAX - 3, 'errno': 'ENOSPC'}
        assert daemon_stat(m)['stores'] == STORE_MAX
        # It counts every store: root's mkdir is refused the same way...
        with pytest.raises(OSError) as e:
            os.mkdir(m.path('root-more'))
        assert e.value.errno == errno.ENOSPC
        # ...until a store goes (root may remove the user's, once empty).
        os.rmdir(m.path('x%05d' % (STORE_MAX - 4)))
        os.mkdir(m.path('root-more'), 0o700)
        assert os.stat(m.path('root-more')).st_uid == 0
        assert daemon_stat(m)['stores'] == STORE_MAX
        # 2. the deep tree.
        assert tree == {'read': 'at the bottom'}
        # 3. node_max: every stat answered, none with anything but ENFILE.
        assert storm['names'] == PUBLIC_BLOBS
        assert set(storm['errors']) <= {'ENFILE'}, storm
        assert storm['ok'] + storm['errors'].get('ENFILE', 0) == 2 * PUBLIC_BLOBS
        assert storm['ok'] >= PUBLIC_BLOBS, storm   # most succeed: the kernel forgets
        st = daemon_stat(m)
        assert st['blob_nodes'] <= NODE_HARD, st
        assert sampler.peak['blob_nodes'] <= NODE_HARD, sampler.peak
        # 4. the listing loops ran and never failed.
        assert listed['errors'] == [] and listed['rounds'] > 0, listed
        walker.exit()
        assert not saver.errors, saver.errors

        # 5. the user's share of handles: sparse files kept open.
        handles_before = daemon_stat(m)['handles']
        t2 = time.monotonic()
        held = hog.call('hold', dir=m.path('h00000', 'incoming'), size=SPARSE, timeout=120 * SLOW)
        t_hold = time.monotonic() - t2
        assert held == {'held': SHARE, 'errno': 'EMFILE'}
        st = daemon_stat(m)
        assert st['handles'] >= SHARE and st['handles'] <= SHARE + handles_before + 2, st
        # Its other handles are refused too: a directory, and from another
        # process of the same user; stat needs no handle.
        assert hog.call('probe', dir=m.path('pub')) == \
            {'file': 'EACCES', 'dir': 'EMFILE', 'stat': 'ok'}
        other = hostile()
        assert other.call('probe', dir=m.path('h00000', 'incoming')) == \
            {'file': 'EMFILE', 'dir': 'EMFILE', 'stat': 'ok'}
        other.exit()

        # Root is not held to the share: 1,500 blobs open at once, read.
        names = sorted(public)[:SHARE + SHARE // 2]
        fds = []
        try:
            for h in names:
                fds.append(os.open(m.path('pub', h), os.O_RDONLY))
            assert daemon_stat(m)['handles'] >= SHARE + len(names)
            for h, fd in zip(names, fds):
                assert os.pread(fd, 100, 0) == public[h]
            opendirs = [os.open(m.path(d), os.O_RDONLY | os.O_DIRECTORY)
                        for d in ('mine', 'pub', 'h00000')]
            for fd in opendirs:
                os.close(fd)
        finally:
            for fd in fds:
                os.close(fd)
        # and root's saves go on (the saver thread), also while it waits.
        before = len(saver.saved)
        wait_for('root saves while the user holds its share',
                 lambda: len(saver.saved) >= before + 50, timeout=60)
        rss_held = rss_mb(m.pid)
        fds_held = len(os.listdir(f'/proc/{m.pid}/fd'))

        # The user goes: its files close (and are saved as it exits).
        t3 = time.monotonic()
        assert hog.call('release', timeout=120 * SLOW) == {'close_errors': []}
        hog.exit()
        t_release = time.monotonic() - t3
        saves = saver.finish()
    finally:
        saver.stop.set()
        if saver.is_alive():
            saver.join()
        sampler.stop.set()
        if sampler.is_alive():
            sampler.join()
    sampler.finish()

    st = wait_for('handles back to 0',
                  lambda: (lambda s: s if s['handles'] == 0 else None)(daemon_stat(m)))
    rss_after = rss_mb(m.pid)
    # Everything root saved is there, with its content.
    listing = set(os.listdir(m.path('mine'))) - {'incoming'}
    assert listing == set(saver.saved)
    for h, data in saver.saved.items():
        with open(m.path('mine', h), 'rb') as f:
            assert f.read() == data
    # The user's files were saved too: 1,000 receipts of one blob of zeros.
    zeros = hashlib.sha256(bytes(SPARSE)).hexdigest()
    assert os.stat(m.path('h00000', zeros)).st_size == SPARSE
    receipts = [n for n in os.listdir(m.path('h00000', 'incoming')) if n.startswith('h')]
    assert len(receipts) == SHARE
    assert os.stat(m.path('h00000', 'incoming', receipts[0])).st_uid == uid

    metric(f'stores made by the user: {made["made"]} (then {made["errno"]}); '
           f'held open: {held["held"]} (then {held["errno"]}); '
           f'stat storm: {storm["ok"]} ok, {storm["errors"]} of {2 * PUBLIC_BLOBS}; '
           f'listing rounds: {listed["rounds"]}; root saves: {saves} '
           f'(read-back lookups refused with ENFILE and retried: {saver.enfile})')
    metric(f'peaks: {sampler.peak}; daemon fds while held: {fds_held}')
    metric(f'RSS MB: before {rss_before:.1f}, held {rss_held:.1f}, '
           f'peak {sampler.rss_peak:.1f}, after {rss_after:.1f} (bound {RSS_BOUND_MB}, '
           f'{"not checked: sanitized" if SANITIZED else "checked"})')
    metric(f'seconds: setup {t_setup:.1f}, flood {t_flood:.1f}, hold {t_hold:.1f}, '
           f'release {t_release:.1f}, total {time.monotonic() - t0:.1f}')
    assert st['blob_nodes'] <= NODE_HARD
    assert saver.enfile == 0   # root is never refused for node_max
    if not SANITIZED:
        assert sampler.rss_peak < RSS_BOUND_MB
        assert rss_after < RSS_BOUND_MB
    m.umount()


def test_handle_share_is_per_user(bounded_mount, hostile, metric):
    max_ = 400
    share = max_ // 4
    m = bounded_mount(f'handle_max={max_}')
    os.mkdir(m.path('pub'), 0o755)
    os.mkdir(m.path('u'))
    os.chmod(m.path('u'), 0o777)
    hog = hostile()
    other = hostile()
    held = hog.call('hold', dir=m.path('u', 'incoming'), size=0)
    assert held == {'held': share, 'errno': 'EMFILE'}
    assert daemon_stat(m)['handles'] == share
    assert other.call('probe', dir=m.path('u', 'incoming')) == \
        {'file': 'EMFILE', 'dir': 'EMFILE', 'stat': 'ok'}

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= max_ + 50, f'RLIMIT_NOFILE {soft} is too low for this test'
    fds = []
    try:
        # Root: its share is not the user's -- 150 more than the user holds.
        for i in range(share + share // 2):
            fds.append(os.open(m.path('pub', 'incoming', f'r{i}'),
                               os.O_WRONLY | os.O_CREAT, 0o644))
        # Then up to handle_max, directories: ENFILE at exactly max_ in all.
        with pytest.raises(OSError) as e:
            while True:
                fds.append(os.open(m.path('pub'), os.O_RDONLY | os.O_DIRECTORY))
        assert e.value.errno == errno.ENFILE
        assert len(fds) == max_ - share
        assert daemon_stat(m)['handles'] == max_
        with pytest.raises(OSError) as e:
            os.open(m.path('pub', 'incoming', 'more'), os.O_WRONLY | os.O_CREAT, 0o644)
        assert e.value.errno == errno.ENFILE
        assert other.call('probe', dir=m.path('u', 'incoming')) == \
            {'file': 'ENFILE', 'dir': 'ENFILE', 'stat': 'ok'}
        # One closed: root opens again, the user is still at its share.
        os.close(fds.pop())
        wait_for('a handle back', lambda: daemon_stat(m)['handles'] == max_ - 1)
        assert other.call('probe', dir=m.path('u', 'incoming')) == \
            {'file': 'EMFILE', 'dir': 'EMFILE', 'stat': 'ok'}
        fds.append(os.open(m.path('pub'), os.O_RDONLY | os.O_DIRECTORY))
        assert daemon_stat(m)['handles'] == max_
    finally:
        for fd in fds:
            os.close(fd)
    wait_for('root closed its handles', lambda: daemon_stat(m)['handles'] == share)
    assert hog.call('release') == {'close_errors': []}
    hog.exit()
    other.exit()
    wait_for('handles back to 0', lambda: daemon_stat(m)['handles'] == 0)
    metric(f'handle_max={max_}: the user held {held["held"]} ({held["errno"]}), '
           f'root {max_ - share} (then ENFILE)')
    m.umount()


def test_pinned_names_do_not_lock_out_the_mounting_user(bounded_mount, hostile):
    """The kernel cannot forget a name a descriptor holds, and an O_PATH
    open sends no OPEN: handle_max does not count it. The user holds
    node_max * 4 blob names that way (then its lookups fail with ENFILE,
    as documented); root's saves still land, and looking up the blob it just
    saved is not refused because of what another user holds."""
    node_max = 200
    m = bounded_mount(f'node_max={node_max}')
    os.mkdir(m.path('pub'), 0o755)
    os.mkdir(m.path('mine'), 0o700)
    for i in range(node_max * 5):
        with open(m.path('pub', 'incoming', f'p{i}'), 'wb') as f:
            f.write(b'public %d' % i)
    user = hostile()
    pinned = user.call('pin', dir=m.path('pub'))
    assert pinned == {'held': node_max * 4, 'errno': 'ENFILE'}
    st = daemon_stat(m)
    assert st['handles'] == 0 and st['blob_nodes'] == node_max * 4, st
    data = b'saved by root while the names are pinned'
    with open(m.path('mine', 'incoming', 'r'), 'wb') as f:
        f.write(data)
    try:
        with open(m.path('mine', hashlib.sha256(data).hexdigest()), 'rb') as f:
            assert f.read() == data
    finally:
        assert user.call('release') == {'close_errors': []}
        user.exit()
        m.umount()
