"""Regression tests for the races and bounds a review of the receipts change
found (each was reproduced against the daemon before its fix):

- a write whose bytes land while another descriptor's close is saving is
  still saved at the last close;
- a hard link to a receipt (or to a blob) keeps the blob when the file that
  saved it tentatively supersedes that save;
- a receipt name that expired early (receipt_max) while the kernel still
  cached it does not swallow a new write;
- truncate(2) by name of receipts that expire meanwhile is safe, and leaves
  no writer (descriptor) behind;
- a mount under many superseding saves, listed at the same time, does not
  deadlock (kernel invalidations come from a thread of their own);
- a create never evicts its own directory at receipt_max.
"""

import hashlib
import os
import subprocess
import threading
import time

import pytest

from blobfs_test.files import read_file, save
from blobfs_test.trees import XATTR, blob_set, sha256


def inc(m, store, *parts):
    return m.path(store, 'incoming', *parts)


def save_at_bound(m, store, data, name):
    """save() at receipt_max: the name closed just before may not be idle
    yet (the kernel's release comes after close() returns)."""
    for _ in range(100):
        try:
            return save(m.mnt, store, data, name=name)
        except OSError as e:
            assert e.errno == 28  # ENOSPC
            time.sleep(0.01)
    raise AssertionError('ENOSPC for 1 s at receipt_max')


@pytest.mark.backends
def test_write_landing_during_a_save_is_saved(blobfs, store):
    path = inc(blobfs, store, 'log')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    h = hashlib.sha256()
    stop = threading.Event()

    def closer():  # another descriptor of the same open file, closed over and over
        while not stop.is_set():
            os.close(os.dup(fd))

    t = threading.Thread(target=closer)
    t.start()
    try:
        for k in range(3000):
            line = b'line %d\n' % k
            assert os.write(fd, line) == len(line)
            h.update(line)
    finally:
        stop.set()
        t.join()
        os.close(fd)
    assert os.getxattr(path, XATTR).decode() == h.hexdigest()
    assert h.hexdigest() in blob_set(blobfs.mnt, store)


@pytest.mark.backends
def test_link_keeps_a_tentative_blob(blobfs, store):
    d = blobfs.path(store)
    script = f'''
        set -e
        cd "{d}"
        exec 3> incoming/log
        sh -c 'echo one >&3'
        ln incoming/log incoming/keep
        ln $(getfattr -n {XATTR} --only-values incoming/log) incoming/keep2
        sh -c 'echo two >&3'
        exec 3>&-
    '''
    subprocess.run(['sh', '-c', script], check=True)
    one = sha256(b'one\n')
    assert one in blob_set(blobfs.mnt, store), 'the linked blob was taken back'
    assert read_file(inc(blobfs, store, 'keep')) == b'one\n'
    assert read_file(inc(blobfs, store, 'keep2')) == b'one\n'
    assert read_file(inc(blobfs, store, 'log')) == b'one\ntwo\n'


def test_write_through_an_expired_cached_name_is_saved(make_mount):
    m = make_mount(extra_args=['-o', 'receipt_max=1'])
    os.mkdir(m.path('s'))
    save(m.mnt, 's', b'first\n', name='x')
    save_at_bound(m, 's', b'other\n', 'y')  # x goes early to make room
    with open(inc(m, 's', 'x'), 'wb') as f:  # the kernel may still trust the name x
        f.write(b'important\n')
    assert sha256(b'important\n') in blob_set(m.mnt, 's')
    assert read_file(inc(m, 's', 'x')) == b'important\n'


def test_truncate_by_name_while_receipts_expire(make_mount):
    m = make_mount(extra_args=['-o', 'receipt_max=1'])
    os.mkdir(m.path('s'))
    big = os.urandom(3 << 20)
    fds_before = len(os.listdir(f'/proc/{m.pid}/fd'))
    errors = []
    for i in range(30):
        p = inc(m, 's', f'x{i}')
        for _ in range(100):
            try:
                with open(p, 'wb') as f:
                    f.write(big)
                break
            except OSError as e:  # y{i-1}'s release (asynchronous) not in yet
                assert e.errno == 28
                time.sleep(0.01)

        def truncate():
            try:
                os.truncate(p, 1 << 20)
            except FileNotFoundError:
                pass  # it expired first
            except OSError as e:
                errors.append(e)

        def create():
            try:
                open(inc(m, 's', f'y{i}'), 'wb').close()  # makes x{i} expire
            except OSError as e:
                if e.errno != 28:  # ENOSPC: x{i} was busy being truncated
                    errors.append(e)

        threads = [threading.Thread(target=truncate), threading.Thread(target=create)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert m.mounted
    # No writer (staging file, pack descriptor) stays behind a truncated receipt.
    assert len(os.listdir(f'/proc/{m.pid}/fd')) <= fds_before + 8


def test_no_deadlock_when_superseded_blobs_are_listed(make_mount):
    m = make_mount(extra_args=['-o', 'threads=1'])
    os.mkdir(m.path('s'))
    d = m.path('s')
    lister = subprocess.Popen(['sh', '-c', f'cd "{d}" && while :; do ls -f >/dev/null; '
                               'stat 00 >/dev/null 2>&1; done'])
    try:
        # each child's exit saves, the next write supersedes (and takes back)
        subprocess.run(['sh', '-c', f'exec 3> "{d}/incoming/log"; '
                        'for i in $(seq 300); do sh -c "echo $i >&3"; done'],
                       check=True, timeout=120)
    finally:
        lister.kill()
        lister.wait()
    want = ''.join(f'{i}\n' for i in range(1, 301)).encode()
    assert read_file(inc(m, 's', 'log')) == want
    assert blob_set(m.mnt, 's') == {sha256(want)}


def test_create_never_evicts_its_own_directory(make_mount):
    m = make_mount(extra_args=['-o', 'receipt_max=2'])
    os.mkdir(m.path('s'))
    os.mkdir(inc(m, 's', 'd'))       # idle (empty) first
    save_at_bound(m, 's', b'a\n', 'a')  # idle second; the bound is reached
    # a goes, not d; until a's release (asynchronous, after close() returned)
    # is in, a is busy and the create is refused with ENOSPC
    for _ in range(100):
        try:
            f = open(inc(m, 's', 'd', 'f'), 'wb')
            break
        except OSError as e:
            assert e.errno == 28  # ENOSPC
            time.sleep(0.01)
    else:
        raise AssertionError('ENOSPC for 1 s at receipt_max')
    with f:
        f.write(b'hello\n')
    assert read_file(inc(m, 's', 'd', 'f')) == b'hello\n'
    assert os.listdir(inc(m, 's')) == ['d']
    # every name in use (d holds f, f is open): the next one is refused
    with open(inc(m, 's', 'd', 'f'), 'rb'):
        with pytest.raises(OSError) as e:
            os.mkdir(inc(m, 's', 'e'))
        assert e.value.errno == 28  # ENOSPC


@pytest.mark.backends
def test_truncate_by_name_while_a_reader_is_open_is_saved(blobfs, store):
    path = inc(blobfs, store, 'r')
    save(blobfs.mnt, store, b'0123456789', name='r')
    with open(path, 'rb') as reader:  # a handle open: the truncate cannot save at once
        os.truncate(path, 4)
        assert reader.read() == b'0123'
    # the reader's release (the last) saves it
    for _ in range(100):
        if sha256(b'0123') in blob_set(blobfs.mnt, store):
            break
        time.sleep(0.01)
    assert sha256(b'0123') in blob_set(blobfs.mnt, store)
    assert os.getxattr(path, XATTR).decode() == sha256(b'0123')


@pytest.mark.backends
def test_rewrite_right_after_close_keeps_the_old_blob(blobfs, store):
    """close() returns before the kernel's release of that open file: a new
    open right after must not be taken for more writing to the old one (its
    last save is final, and the new open's truncation is not saved by the
    old one's release)."""
    path = inc(blobfs, store, 'r')
    for i in range(300):
        old, new = b'old %d\n' % i, b'new %d\n' % i
        save(blobfs.mnt, store, old, name='r')
        with open(path, 'wb') as f:  # O_TRUNC at once
            f.write(new)
        blobs = blob_set(blobfs.mnt, store)
        assert sha256(old) in blobs, f'round {i}: the old version was taken back'
        assert sha256(b'') not in blobs, f'round {i}: the truncated state was saved'
        assert sha256(new) in blobs

