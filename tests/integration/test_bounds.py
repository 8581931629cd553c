"""The daemon's bounds on what clients make it hold (README "Security",
"Bounds"), as the mounting user, read through the root's user.blobfs.stat:

- node_max: a stat of every blob of a store ten times larger than the
  bound works, three times over, and the blob nodes stay below twice
  node_max (the kernel forgets what it is asked to, a little behind a fast
  walk; past twice node_max the store's unused names go at once) and come
  back to node_max after; blobs held open by the mounting user are not
  refused and go once closed (the hard bound for other users:
  test_hostile_user.py);
- handle_max: open files and directories together; one more open is ENFILE
  (with a log line), and the count comes back to 0 after the closes;
- store_max: one more mkdir is ENOSPC; after an rmdir a store can be made;
- handles the kernel never released (the daemon ended while they were
  open) are freed by the daemon at exit.
(The per-user share of handles: test_hostile_user.py.)
"""

import errno
import hashlib
import os
import signal
import time

import pytest

STAT = 'user.blobfs.stat'


def figures(m):
    return dict(kv.split('=', 1) for kv in os.getxattr(m.mnt, STAT).decode().split())


def save_blobs(m, store, count):
    os.mkdir(m.path(store))
    names = []
    for i in range(count):
        data = b'blob %d' % i
        with open(m.path(store, 'incoming', f'f{i}'), 'wb') as f:
            f.write(data)
        names.append(hashlib.sha256(data).hexdigest())
    return names


def stat_works(path):
    try:
        return os.stat(path).st_size > 0
    except OSError as e:
        assert e.errno == errno.ENFILE, e
        return False


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.backends
def test_root_stat_names_every_bound(make_mount):
    m = make_mount(extra_args=['-o', 'node_max=1000,handle_max=64,store_max=7'])
    f = figures(m)
    assert {k: f[k] for k in ('stores', 'store_max', 'node_max', 'handles', 'handle_max',
                              'blob_nodes', 'receipt_max')} == {
        'stores': '0', 'store_max': '7', 'node_max': '1000', 'handles': '0',
        'handle_max': '64', 'blob_nodes': '0', 'receipt_max': '100000'}
    assert set(f) >= {'nodes', 'incoming_names', 'writer_memory'}


@pytest.mark.backends
def test_a_walk_of_many_blobs_keeps_nodes_bounded(make_mount, metric):
    m = make_mount(extra_args=['-o', 'node_max=500'])
    names = save_blobs(m, 's', 3000)
    peak = 0
    for i, n in enumerate(names):
        assert os.stat(m.path('s', n)).st_size > 0
        if i % 100 == 0:
            peak = max(peak, int(figures(m)['blob_nodes']))
    # find(1) over it too, twice.
    for _ in range(2):
        assert sum(1 for _ in os.scandir(m.path('s'))) == 3001
        for i, e in enumerate(os.scandir(m.path('s'))):
            e.stat()
            if i % 100 == 0:
                peak = max(peak, int(figures(m)['blob_nodes']))
    assert peak < 4 * 500
    assert wait_for(lambda: int(figures(m)['blob_nodes']) <= 500 + 500 // 16 + 1)
    metric(f'node_max=500: stat of 3000 blobs (3 rounds), blob nodes at most {peak}, '
           f'then {figures(m)["blob_nodes"]}')


def test_blobs_held_open_by_the_mounting_user_are_not_refused(make_mount):
    """Names in use cannot be forgotten; the mounting user (and root) is
    never refused for them (another user is: test_hostile_user.py), and
    once closed they go when the kernel is asked."""
    m = make_mount(extra_args=['-o', 'node_max=16,handle_max=256'])
    names = save_blobs(m, 's', 100)
    held = [open(m.path('s', n), 'rb') for n in names]
    assert int(figures(m)['blob_nodes']) == 100
    for f in held:
        f.close()
    for n in names:
        assert os.stat(m.path('s', n)).st_size > 0
    assert wait_for(lambda: int(figures(m)['blob_nodes']) <= 2 * 16)


@pytest.mark.backends
def test_handle_max_is_enfile_and_handles_come_back(make_mount):
    m = make_mount(extra_args=['-o', 'handle_max=50'])
    names = save_blobs(m, 's', 30)
    fds = []
    try:
        for n in names:
            fds.append(os.open(m.path('s', n), os.O_RDONLY))
        for i in range(15):
            fds.append(os.open(m.path('s'), os.O_RDONLY | os.O_DIRECTORY))
        fds.append(os.open(m.path('s', 'incoming', 'new'), os.O_WRONLY | os.O_CREAT, 0o644))
        fds.append(os.open(m.mnt, os.O_RDONLY | os.O_DIRECTORY))
        fds.append(os.open(m.path('s', 'incoming', 'f0'), os.O_RDONLY))
        fds.append(os.open(m.path('s', 'incoming', 'f1'), os.O_RDONLY))
        fds.append(os.open(m.path('s', 'incoming', 'f2'), os.O_RDONLY))
        assert int(figures(m)['handles']) == 50
        for args in ((m.path('s', names[0]), os.O_RDONLY),
                     (m.path('s'), os.O_RDONLY | os.O_DIRECTORY),
                     (m.path('s', 'incoming', 'other'), os.O_WRONLY | os.O_CREAT, 0o644)):
            with pytest.raises(OSError) as e:
                fds.append(os.open(*args))
            assert e.value.errno == errno.ENFILE
    finally:
        for fd in fds:
            os.close(fd)
    assert wait_for(lambda: figures(m)['handles'] == '0')
    # A refused create left no name behind.
    assert 'other' not in os.listdir(m.path('s', 'incoming'))
    with open(m.path('s', 'incoming', 'other'), 'wb') as f:
        f.write(b'works again')
    assert 'handle_max files and directories are open' in m.log()


@pytest.mark.backends
def test_store_max_is_enospc(make_mount):
    m = make_mount(extra_args=['-o', 'store_max=3'])
    for s in ('a', 'b', 'c'):
        os.mkdir(m.path(s))
    with pytest.raises(OSError) as e:
        os.mkdir(m.path('d'))
    assert e.value.errno == errno.ENOSPC
    assert sorted(os.listdir(m.mnt)) == ['a', 'b', 'c']
    os.rmdir(m.path('b'))
    os.mkdir(m.path('d'))
    assert 'store_max stores exist' in m.log()


@pytest.mark.backends
def test_handles_never_released_are_freed_at_exit(make_mount):
    """SIGTERM while a directory, a blob, a receipt and a file being
    written are open: the kernel never releases them, and the daemon frees
    them itself (under ASan a leak would make its exit status 1)."""
    m = make_mount()
    names = save_blobs(m, 's', 2)
    fds = [os.open(m.path('s'), os.O_RDONLY | os.O_DIRECTORY),
           os.open(m.path('s', names[0]), os.O_RDONLY),
           os.open(m.path('s', 'incoming', 'f1'), os.O_RDONLY),
           os.open(m.path('s', 'incoming', 'new'), os.O_WRONLY | os.O_CREAT, 0o644)]
    os.write(fds[-1], b'never closed')
    assert int(figures(m)['handles']) == 4
    os.kill(m.pid, signal.SIGTERM)
    try:
        assert m.umount() == 0
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def test_refused_requests_do_not_flood_the_log(make_mount):
    """3,000 refused opens as fast as one process can: the log gets at most
    the burst (100 lines) and what refills meanwhile (20 a second), and the
    next line logged says how many were not."""
    m = make_mount()
    names = save_blobs(m, 's', 1)
    path = m.path('s', names[0])
    start = time.monotonic()
    for _ in range(3000):
        with pytest.raises(PermissionError):
            os.open(path, os.O_WRONLY)
    took = time.monotonic() - start
    time.sleep(0.2)   # a token for the next line
    with pytest.raises(PermissionError):
        os.open(path, os.O_WRONLY)
    log = m.log()
    lines = log.count('blobs are read-only')
    assert lines <= 100 + 20 * (took + 1) + 1, (lines, took)
    assert 'lines about refused requests were not logged' in log
