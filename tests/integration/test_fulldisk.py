"""A full disk: DATADIR on a small tmpfs, mounted with -o min_free=1M.

The contract under test: saves fail with ENOSPC (at write() or at close()),
a write that failed poisons its file (close() fails too, nothing is saved),
nothing already stored is lost or damaged, the space of the failed save is
given back once the file is closed, the daemon keeps serving reads, listings
and deletes, deletes free space (online compaction of packs more than half
dead), and saves work again afterwards.
"""

import errno
import hashlib
import os
import time
from pathlib import Path

import pytest

from blobfs_test import common, files, mounting, packs
from blobfs_test.files import expect_errno, read_blob_checked
from blobfs_test.packs import pack_bytes
from blobfs_test.tmpfs import tmpfs_disk

KiB = 1 << 10
MiB = 1 << 20

# A failed save may leave a few pages of metadata behind (directory entries,
# the marker); its data must come back.
SLACK = 64 * KiB


def _free(path):
    return files.free_bytes(path)


def _try_save(m, store, data, name, chunk=64 * KiB):
    """Write data into incoming/name and close it. Returns (None, hex) on
    success or ((where, errno), hex) on failure; where is 'write' or 'close'.
    A close after a failed write must fail too (the file is poisoned)."""
    h = hashlib.sha256(data).hexdigest()
    fd = os.open(m.path(store, 'incoming', name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    failed = None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view[:chunk]):]
    except OSError as e:
        failed = ('write', e.errno)
    try:
        os.close(fd)
    except OSError as e:
        if failed is None:
            failed = ('close', e.errno)
        else:
            failed = failed + (e.errno,)
    else:
        if failed is not None:
            failed = failed + (0,)
    return failed, h


def _check_failure(failed, where):
    """ENOSPC, at write() (then close() fails too) or at close()."""
    assert failed[1] == errno.ENOSPC, (
        f'{where}: {failed[0]}() failed with {errno.errorcode.get(failed[1])}, expected ENOSPC')
    if failed[0] == 'write':
        assert failed[2] != 0, (f'{where}: write() failed with ENOSPC but close() returned 0: '
                                f'a failed write must poison its file')
        assert failed[2] in (errno.ENOSPC, errno.EIO), (
            f'{where}: close() after the failed write gave '
            f'{errno.errorcode.get(failed[2])}, expected ENOSPC (or EIO)')


def _wait_space_back(paths, before, timeout=5.0):
    """Poll until free space on each path is back to `before` (within
    SLACK). The kernel sends FUSE RELEASE after close() returns, so allow
    it a moment. Returns {path: free}."""
    deadline = time.monotonic() + timeout
    while True:
        now = {p: _free(p) for p in paths}
        if all(now[p] >= before[p] - SLACK for p in paths) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def _check_all(m, store, saved, where):
    listed = set(files.blob_names(m.mnt, store))
    assert listed == set(saved), (f'{where}: listing differs: missing '
                                  f'{sorted(set(saved) - listed)}, '
                                  f'extra {sorted(listed - set(saved))}')
    for h, data in saved.items():
        assert read_blob_checked(m.path(store, h), data) == data, f'{where}: {h}'


def _record_bytes(n):
    return 64 + n + 4 * ((n + 65535) // 65536) + 16


def test_full_disk_small_blobs(make_mount, tmp_path, metric):
    with tmpfs_disk(tmp_path / 'disk', '24m') as d:
        m = make_mount(data=Path(d.disk) / 'data', extra_args=['-o', 'min_free=1M,pack_size=2M'])
        d.mounts.append(m)
        os.mkdir(m.path('s'))
        saved = {}
        size = 200 * KiB
        failed = None
        for i in range(400):
            data = os.urandom(size)
            before = {d.disk: _free(d.disk), m.mnt: _free(m.mnt)}
            failed, h = _try_save(m, 's', data, f'f{i}')
            if failed:
                break
            saved[h] = data
        assert failed, 'a 24 MiB disk took 80 MB of blobs without ENOSPC'
        where = f'save #{i + 1} ({size} bytes, {len(saved)} saved before)'
        first_failure = f'{len(saved)} blobs of {size} B saved, then {failed[0]}() failed'
        _check_failure(failed, where)
        after = _wait_space_back([d.disk, m.mnt], before)
        for p in (d.disk, m.mnt):
            assert after[p] >= before[p] - SLACK, (
                f'{where}: statvfs({p}) shows {before[p]} bytes free before the failed save '
                f'and {after[p]} after its close: {before[p] - after[p]} bytes not given back\n'
                f'files in the store: {sorted(os.listdir(Path(d.disk, "data", "stores", "s")))}')
        expect_errno(errno.ENOENT, os.stat, m.path('s', h))
        assert h not in files.blob_names(m.mnt, 's')
        # the failed file's name went at close; the saved ones left receipts
        assert sorted(os.listdir(m.path('s', 'incoming'))) == sorted(f'f{k}' for k in range(i))
        # everything stored is intact and the daemon still serves reads and ls
        _check_all(m, 's', saved, where)
        r = common.run(['ls', '-l', m.path('s')], text=True)
        assert r.returncode == 0 and len(r.stdout.splitlines()) == len(saved) + 2, r
        # trying again still fails cleanly
        before = {d.disk: _free(d.disk)}
        failed2, h2 = _try_save(m, 's', os.urandom(size), 'again')
        assert failed2, 'a save on the full disk succeeded after the first ENOSPC'
        _check_failure(failed2, 'second save on the full disk')
        after = _wait_space_back([d.disk], before)
        assert after[d.disk] >= before[d.disk] - SLACK, (before, after)
        full_free = _free(d.disk)
        # deletes work on the full disk. In every pack, 3 records in 10 stay:
        # each pack is 70% dead, and compacting one needs room for its 30%
        # (the min_free reserve is there for this)
        victims = []
        for recs in packs.parse_store(Path(d.disk, 'data'), 's').values():
            hashes = [r.hash for r in recs if r.is_blob and r.hash in saved]
            victims += [h for k, h in enumerate(hashes) if k % 10 not in (0, 4, 7)]
        for h in victims:
            os.unlink(m.path('s', h))
            del saved[h]
        _check_all(m, 's', saved, 'after the deletes')
        # background compaction gives the space back: every pack but the one
        # being appended to ends up at most half dead
        live = sum(_record_bytes(len(v)) for v in saved.values())
        bound = 2 * live + 2 * MiB + 2 * _record_bytes(size) + 64 * KiB
        packs0 = pack_bytes(Path(d.disk, 'data'))
        deadline = time.monotonic() + 20
        while pack_bytes(Path(d.disk, 'data')) > bound and time.monotonic() < deadline:
            time.sleep(0.25)
        packs1 = pack_bytes(Path(d.disk, 'data'))
        assert packs1 <= bound, (f'packs hold {packs1} bytes 20 s after deleting '
                                 f'{len(victims)} of {len(victims) + len(saved)} blobs '
                                 f'({packs0} right after the deletes, {live} bytes live); '
                                 f'expected at most {bound}\n{m.log_tail(20)}')
        freed_free = _free(d.disk)
        assert freed_free > full_free + 4 * MiB, (full_free, freed_free)
        _check_all(m, 's', saved, 'after compaction')
        # saves work again
        for j in range(10):
            data = os.urandom(size)
            failed, h = _try_save(m, 's', data, f'later{j}')
            assert not failed, f'save {j} after the deletes and compaction failed: {failed}'
            saved[h] = data
        m.remount()
        _check_all(m, 's', saved, 'after a remount')
        m.umount()
        r = mounting.fsck_datadir(Path(d.disk, 'data'))
        assert r.returncode == 0, r.stdout + r.stderr
        metric(f'24 MiB tmpfs, min_free=1M: {first_failure}; packs {packs0} -> {packs1} B '
               f'after deleting {len(victims)}; free {full_free} -> {freed_free} B')


@pytest.mark.parametrize('write_size', [64 * KiB, 1 * MiB])
def test_full_disk_large_blob(make_mount, tmp_path, write_size, metric):
    with tmpfs_disk(tmp_path / 'disk', '24m') as d:
        m = make_mount(data=Path(d.disk) / 'data', extra_args=['-o', 'min_free=1M'])
        d.mounts.append(m)
        os.mkdir(m.path('s'))
        saved = {}
        for i in range(3):
            data = os.urandom(3 * MiB + i)
            failed, h = _try_save(m, 's', data, f'big{i}')
            assert not failed, failed
            saved[h] = data
        small = os.urandom(5000)
        failed, hs = _try_save(m, 's', small, 'small')
        assert not failed, failed
        saved[hs] = small
        before = {d.disk: _free(d.disk), m.mnt: _free(m.mnt)}
        too_big = os.urandom(before[d.disk] + 2 * MiB)
        failed, h = _try_save(m, 's', too_big, 'too-big', chunk=write_size)
        assert failed, f'a {len(too_big)}-byte blob fitted in {before[d.disk]} free bytes'
        where = f'{len(too_big)}-byte blob with {before[d.disk]} bytes free'
        _check_failure(failed, where)
        after = _wait_space_back([d.disk, m.mnt], before)
        for p in (d.disk, m.mnt):
            assert after[p] >= before[p] - SLACK, (
                f'{where}: statvfs({p}): {before[p]} bytes free before, {after[p]} after the '
                f'close: {before[p] - after[p]} bytes not given back\nfiles in the store: '
                f'{sorted(os.listdir(Path(d.disk, "data", "stores", "s")))}')
        expect_errno(errno.ENOENT, os.stat, m.path('s', h))
        assert 'too-big' not in os.listdir(m.path('s', 'incoming')), 'a failed save left a receipt'
        _check_all(m, 's', saved, where)
        # the space is really usable: a blob of most of it fits now
        fits = os.urandom(before[d.disk] - 3 * MiB)
        failed_fit, hf = _try_save(m, 's', fits, 'fits', chunk=write_size)
        assert not failed_fit, (f'a {len(fits)}-byte blob does not fit after the failed save '
                                f'gave back its space ({_free(d.disk)} bytes free): {failed_fit}')
        saved[hf] = fits
        # deletes work and free the large blob's pack at once
        os.unlink(m.path('s', hf))
        del saved[hf]
        _check_all(m, 's', saved, 'after the delete')
        m.remount()
        _check_all(m, 's', saved, 'after a remount')
        metric(f'write size {write_size}: {len(too_big)}-byte blob on a 24 MiB tmpfs with '
               f'{before[d.disk]} B free failed at {failed[0]}() with ENOSPC; free after close '
               f'{after[d.disk]} B')


def test_failed_write_poisons_the_file(make_mount, tmp_path):
    """A write that failed with ENOSPC: later writes to the same descriptor
    that would fit must not resurrect the file: close() fails, nothing of it
    is saved, not even the bytes written before the failure."""
    with tmpfs_disk(tmp_path / 'disk', '16m') as d:
        m = make_mount(data=Path(d.disk) / 'data', extra_args=['-o', 'min_free=1M'])
        d.mounts.append(m)
        os.mkdir(m.path('s'))
        free0 = _free(d.disk)
        head = os.urandom(MiB + 5)          # a large blob: written in place as it arrives
        fd = os.open(m.path('s', 'incoming', 'poisoned'), os.O_WRONLY | os.O_CREAT, 0o644)
        write_error = None
        try:
            files.write_all(fd, head)
            chunk = os.urandom(MiB)
            pos = len(head)
            while pos < free0 + 4 * MiB:
                try:
                    os.pwrite(fd, chunk, pos)
                except OSError as e:
                    write_error = e
                    break
                pos += len(chunk)
            assert write_error is not None, 'writing past the size of the disk never failed'
            assert write_error.errno == errno.ENOSPC, write_error
            # shrink the file back to what was written first: it would fit now
            try:
                os.ftruncate(fd, len(head))
            except OSError:
                pass
        finally:
            close_error = None
            try:
                os.close(fd)
            except OSError as e:
                close_error = e
        assert close_error is not None, ('close() returned 0 after a write failed with ENOSPC '
                                         '(the file must be poisoned)')
        assert close_error.errno in (errno.ENOSPC, errno.EIO), close_error
        assert files.blob_names(m.mnt, 's') == [], files.blob_names(m.mnt, 's')
        assert 'poisoned' not in os.listdir(m.path('s', 'incoming')), 'a failed save left a receipt'
        expect_errno(errno.ENOENT, os.stat, m.path('s', hashlib.sha256(head).hexdigest()))
        after = _wait_space_back([d.disk], {d.disk: free0})
        assert after[d.disk] >= free0 - SLACK, (
            f'{free0} bytes free before the poisoned file, {after[d.disk]} after its close: '
            f'{free0 - after[d.disk]} bytes not given back\nfiles in the store: '
            f'{sorted(os.listdir(Path(d.disk, "data", "stores", "s")))}, incoming: '
            f'{os.listdir(m.path("s", "incoming"))}')
        # the store still works
        h = files.save(m.mnt, 's', head, name='clean')
        assert files.read_file(m.path('s', h)) == head
