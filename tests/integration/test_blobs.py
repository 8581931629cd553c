"""Saving and loading blobs: sizes, the empty blob, dedup, a 512 MiB blob,
parallel writers, and a save error reported by close().

The tests marked `backends` run on each backend (local and memory); the
others measure DATADIR (dedup, the 512 MiB blob, a failing disk) and stay
local."""

import errno
import hashlib
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from blobfs_test.common import run
from blobfs_test.files import (EMPTY_SHA256, XATTR_SHA256, allocated_bytes, assert_receipt,
                               du_bytes, expect_errno, read_exact, read_file, save, set_immutable,
                               write_all)
from blobfs_test.mounting import vm_hwm_kib

MiB = 1 << 20


@pytest.mark.backends
@pytest.mark.parametrize('size', [1, 2, 4095, 4096, 4097, 65535, 65536, 65537,
                                  131072, 131073, MiB - 1, MiB, MiB + 1, MiB + 7,
                                  5 * MiB - 1])
def test_save_and_read_back(blobfs, store, size):
    data = os.urandom(size)
    h = save(blobfs.mnt, store, data)
    assert h == hashlib.sha256(data).hexdigest()
    assert read_file(blobfs.path(store, h)) == data
    assert sorted(os.listdir(blobfs.path(store))) == sorted([h, 'incoming'])


@pytest.mark.backends
def test_empty_blob(blobfs, store):
    h = save(blobfs.mnt, store, b'')
    assert h == EMPTY_SHA256
    st = os.stat(blobfs.path(store, h))
    assert st.st_size == 0
    assert oct(st.st_mode & 0o777) == oct(0o444)
    assert read_file(blobfs.path(store, h)) == b''
    r = run(['sha256sum', blobfs.path(store, h)], text=True)
    assert r.stdout.split()[0] == EMPTY_SHA256
    # saving it again is a no-op, deleting it works
    assert save(blobfs.mnt, store, b'', name='again') == h
    assert sorted(os.listdir(blobfs.path(store))) == sorted([h, 'incoming'])
    os.unlink(blobfs.path(store, h))
    expect_errno(errno.ENOENT, os.stat, blobfs.path(store, h))


def test_dedup_second_save_does_not_grow_disk_usage(blobfs, store, metric):
    data = os.urandom(4 * MiB)
    du0 = du_bytes(blobfs.data)
    h = save(blobfs.mnt, store, data, name='first')
    du1, alloc1 = du_bytes(blobfs.data), allocated_bytes(blobfs.data)
    assert du1 - du0 >= len(data), (du0, du1)   # the measurement sees the blob
    # same content, same write pattern, other name
    assert save(blobfs.mnt, store, data, name='second') == h
    # same content written backwards in 64 KiB pieces
    fd = os.open(blobfs.path(store, 'incoming', 'third'), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for off in range(len(data) - 65536, -1, -65536):
            os.pwrite(fd, data[off:off + 65536], off)
    finally:
        os.close(fd)
    # A duplicate's staging file goes at its release, which the kernel sends
    # after close() has returned: wait for it, not for anything else.
    deadline = time.monotonic() + 10
    while du_bytes(blobfs.data) != du1 and time.monotonic() < deadline:
        time.sleep(0.05)
    du2, alloc2 = du_bytes(blobfs.data), allocated_bytes(blobfs.data)
    metric(f'du -sb DATADIR: {du0} empty, {du1} after first save, {du2} after two more '
           f'saves of the same 4 MiB; allocated {alloc1} -> {alloc2}')
    assert du2 == du1, f'disk usage grew from {du1} to {du2} bytes on duplicate saves'
    assert alloc2 <= alloc1, f'allocated bytes grew from {alloc1} to {alloc2}'
    assert sorted(os.listdir(blobfs.path(store))) == sorted([h, 'incoming'])
    # three receipts of the one blob; they take no space in DATADIR (du2 == du1)
    assert sorted(os.listdir(blobfs.path(store, 'incoming'))) == ['first', 'second', 'third']
    for name in ('first', 'second', 'third'):
        assert_receipt(blobfs.path(store, 'incoming', name), data)
    assert read_file(blobfs.path(store, h)) == data


@pytest.mark.backends
def test_resave_after_delete(blobfs, store):
    data = os.urandom(50000)
    h = save(blobfs.mnt, store, data)
    os.unlink(blobfs.path(store, h))
    expect_errno(errno.ENOENT, os.stat, blobfs.path(store, h))
    assert save(blobfs.mnt, store, data) == h
    assert read_file(blobfs.path(store, h)) == data
    assert sorted(os.listdir(blobfs.path(store))) == sorted([h, 'incoming'])


@pytest.mark.backends
def test_same_content_in_two_stores_is_independent(blobfs):
    os.mkdir(blobfs.path('one'))
    os.mkdir(blobfs.path('two'))
    data = os.urandom(100000)
    h = save(blobfs.mnt, 'one', data)
    assert save(blobfs.mnt, 'two', data) == h
    os.unlink(blobfs.path('one', h))
    expect_errno(errno.ENOENT, os.stat, blobfs.path('one', h))
    assert read_file(blobfs.path('two', h)) == data
    r = run(['rm', '-r', blobfs.path('two')])
    assert r.returncode == 0, r.stderr
    assert os.listdir(blobfs.mnt) == ['one']
    assert os.listdir(blobfs.path('one')) == ['incoming']


def _chunk(base, i):
    """The i-th 1 MiB piece of the big blob: distinct for every i."""
    return i.to_bytes(8, 'little') + base[8:]


@pytest.mark.slow
@pytest.mark.parametrize('order', ['sequential', 'shuffled'])
def test_512mib_blob_with_bounded_memory(blobfs, store, metric, order):
    """512 MiB through incoming, saved and read back, with the daemon's peak
    RSS (VmHWM) under 128 MiB. 'shuffled' writes the 1 MiB pieces in random
    order, so the content cannot be hashed on the fly while it arrives."""
    blobfs.arm_watchdog(1800)
    nchunks = 512
    size = nchunks * MiB
    base = os.urandom(MiB)
    digest = hashlib.sha256()
    for i in range(nchunks):
        digest.update(_chunk(base, i))
    h = digest.hexdigest()
    order_list = list(range(nchunks))
    if order == 'shuffled':
        random.Random(512).shuffle(order_list)
    path = blobfs.path(store, 'incoming', 'big')

    t0 = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for i in order_list:
            c = _chunk(base, i)
            assert os.pwrite(fd, c, i * MiB) == len(c)
        t1 = time.monotonic()
    finally:
        os.close(fd)            # hashing and saving happen here at the latest
    t2 = time.monotonic()
    st = os.stat(blobfs.path(store, h))
    assert st.st_size == size
    # the name stays as a receipt of the blob; it must hold no copy of the
    # content (the peak RSS and du checks below are taken with it present)
    assert os.stat(path).st_size == size
    assert os.getxattr(path, XATTR_SHA256) == h.encode()

    fd = os.open(blobfs.path(store, h), os.O_RDONLY)
    try:
        for i in range(nchunks):
            assert read_exact(fd, MiB, i * MiB) == _chunk(base, i), f'content differs in MiB #{i}'
        assert os.pread(fd, 1, size) == b''
        for off in (size - 1, size - 4097, 123 * MiB + 4095, 1):   # a few unaligned reads
            want = _chunk(base, off // MiB)[off % MiB:off % MiB + 10]
            assert os.pread(fd, len(want), off) == want
    finally:
        os.close(fd)
    fd = os.open(path, os.O_RDONLY)     # the receipt reads as the blob
    try:
        for i in (0, 255, nchunks - 1):
            assert read_exact(fd, MiB, i * MiB) == _chunk(base, i), f'receipt differs in MiB #{i}'
    finally:
        os.close(fd)
    t3 = time.monotonic()

    hwm = vm_hwm_kib(blobfs.pid)
    du = du_bytes(blobfs.data)
    metric(f'512 MiB blob ({order}): write {t1 - t0:.1f}s, close/save {t2 - t1:.1f}s, '
           f'read back {t3 - t2:.1f}s; daemon VmHWM {hwm} KiB ({hwm / 1024:.1f} MiB); '
           f'du -sb DATADIR {du}')
    if os.environ.get('BLOBFS_SANITIZED'):
        metric('sanitizer build: peak RSS not checked (shadow memory inflates it)')
    else:
        assert hwm < 128 * 1024, f'daemon peak RSS {hwm} KiB is not under 128 MiB'
    # stored once, with small overhead, and no leftover staging copy
    assert size <= du < size * 1.05 + 4 * MiB, du


@pytest.mark.backends
def test_large_incoming_truncated_to_small(blobfs, store):
    """An incoming file that grows past the large-blob size and is then cut
    back (and the other way round) is saved with its final content."""
    path = blobfs.path(store, 'incoming', 'shrink')
    data = os.urandom(3 * MiB)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        write_all(fd, data)
        os.ftruncate(fd, 1000)
        assert os.pread(fd, 2000, 0) == data[:1000]
    finally:
        os.close(fd)
    h = hashlib.sha256(data[:1000]).hexdigest()
    assert read_file(blobfs.path(store, h)) == data[:1000]

    path = blobfs.path(store, 'incoming', 'grow')
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        write_all(fd, data[:5000])
        os.pwrite(fd, data[-1000:], 2 * MiB)
    finally:
        os.close(fd)
    want = data[:5000] + bytes(2 * MiB - 5000) + data[-1000:]
    h2 = hashlib.sha256(want).hexdigest()
    assert read_file(blobfs.path(store, h2)) == want
    assert sorted(os.listdir(blobfs.path(store))) == sorted([h, h2, 'incoming'])


@pytest.mark.backends
def test_parallel_writers(blobfs, store, metric):
    writers, per_writer = 4, 50
    rng = random.Random(20240601)
    sizes = [0, 1, 100, 4096, 10000, 65536, 65537, 200000, 300001]
    payloads = [[f'{w}/{i}:'.encode() + os.urandom(rng.choice(sizes))
                 for i in range(per_writer)] for w in range(writers)]

    def writer(w):
        return [save(blobfs.mnt, store, data, name=f'w{w}-{i}')
                for i, data in enumerate(payloads[w])]

    t0 = time.monotonic()
    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(writer, range(writers)))
    elapsed = time.monotonic() - t0
    total = writers * per_writer
    nbytes = sum(len(d) for p in payloads for d in p)
    metric(f'{writers} writers x {per_writer} blobs: {total} blobs, {nbytes / MiB:.1f} MiB '
           f'in {elapsed:.2f}s = {total / elapsed:.0f} blobs/s')

    expected = {}
    for w in range(writers):
        for i, data in enumerate(payloads[w]):
            assert results[w][i] == hashlib.sha256(data).hexdigest()
            expected[results[w][i]] = data
    assert len(expected) == total
    assert sorted(os.listdir(blobfs.path(store))) == sorted(list(expected) + ['incoming'])
    assert sorted(os.listdir(blobfs.path(store, 'incoming'))) == sorted(
        f'w{w}-{i}' for w in range(writers) for i in range(per_writer))
    for h, data in expected.items():
        assert read_file(blobfs.path(store, h)) == data, h
    for w in range(writers):
        for i, data in enumerate(payloads[w]):
            assert_receipt(blobfs.path(store, 'incoming', f'w{w}-{i}'), data)


def test_parallel_saves_of_identical_content(blobfs, store):
    data = os.urandom(MiB)
    h = hashlib.sha256(data).hexdigest()
    du0 = du_bytes(blobfs.data)

    def writer(w):
        return [save(blobfs.mnt, store, data, name=f'same{w}-{i}') for i in range(20)]

    with ThreadPoolExecutor(4) as pool:
        results = [x for r in pool.map(writer, range(4)) for x in r]
    assert set(results) == {h}
    assert sorted(os.listdir(blobfs.path(store))) == [h, 'incoming']
    assert read_file(blobfs.path(store, h)) == data
    grown = du_bytes(blobfs.data) - du0
    assert grown < 2 * len(data), f'80 saves of one 1 MiB blob grew DATADIR by {grown} bytes'


@pytest.mark.backends
def test_parallel_readers_and_writers(blobfs, store):
    """Readers of existing blobs run while writers save and delete others."""
    base = {save(blobfs.mnt, store, os.urandom(150000), name=f'b{i}') for i in range(8)}
    contents = {h: read_file(blobfs.path(store, h)) for h in base}

    def reader(_):
        for _ in range(10):
            for h, data in contents.items():
                assert read_file(blobfs.path(store, h)) == data
        return True

    def churner(w):
        for i in range(25):
            d = os.urandom(20000 + i)
            h = save(blobfs.mnt, store, d, name=f'c{w}-{i}')
            assert read_file(blobfs.path(store, h)) == d
            os.unlink(blobfs.path(store, h))
        return True

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(reader, 0), pool.submit(reader, 1),
                   pool.submit(churner, 0), pool.submit(churner, 1)]
        assert all(f.result() for f in futures)
    assert sorted(os.listdir(blobfs.path(store))) == sorted(list(base) + ['incoming'])


def test_save_error_is_returned_by_close(blobfs, store):
    """Make DATADIR immutable (root cannot write there either), so that
    saving fails: close() must fail with EIO and no blob may appear. The
    daemon keeps working once the disk is writable again."""
    save(blobfs.mnt, store, b'warm up: the store has a pack')
    data = os.urandom(300000)
    h = hashlib.sha256(data).hexdigest()
    fd = os.open(blobfs.path(store, 'incoming', 'doomed'), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        write_all(fd, data)
    except BaseException:
        os.close(fd)
        raise
    try:
        set_immutable(blobfs.data, True)
    except OSError as e:
        set_immutable(blobfs.data, False)
        os.close(fd)
        pytest.skip(f'cannot set the immutable flag here: {e}')
    try:
        expect_errno(errno.EIO, os.close, fd)
        expect_errno(errno.ENOENT, os.stat, blobfs.path(store, h))
    finally:
        set_immutable(blobfs.data, False)
    assert h not in os.listdir(blobfs.path(store))
    # a failed save leaves no receipt
    assert 'doomed' not in os.listdir(blobfs.path(store, 'incoming'))
    # the daemon recovers
    assert save(blobfs.mnt, store, data, name='retry') == h
    assert read_file(blobfs.path(store, h)) == data
    blobfs.umount()
    r = run([blobfs.command()[0], 'fsck', blobfs.data], text=True)
    assert r.returncode == 0, f'fsck after a failed save: rc {r.returncode}\n{r.stdout}{r.stderr}'
