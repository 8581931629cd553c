"""The namespace table, row by row, and every errno it promises.

    /            list of stores; mkdir/rmdir/rm -r; no regular files (EPERM)
    /S/          blobs + `incoming`; creating S/<hex> is a verified write;
                 nothing else can be created (EPERM)
    /S/<hex>     read-only blob (0444); unlink; no write/truncate (EACCES),
                 no rename within the store, chmod (EPERM); rename to
                 another store EXDEV; link into incoming/ makes a receipt;
                 other names ENOENT
    /S/incoming/ drop box: create/write/truncate freely, directories;
                 close() saves and leaves the name as a receipt

Every test runs on each backend (local and memory, see BLOBFS_BACKENDS).
"""

import errno
import hashlib
import os
import stat

import pytest

from blobfs_test import common
from blobfs_test.common import run
from blobfs_test.files import (EMPTY_SHA256, HEX64, assert_receipt, clear_incoming, expect_errno,
                               read_file, save, write_all)

pytestmark = pytest.mark.backends

# --------------------------------------------------------------------------
# /  (list of stores)


def test_root_is_an_empty_directory(blobfs):
    st = os.stat(blobfs.mnt)
    assert stat.S_ISDIR(st.st_mode)
    assert os.listdir(blobfs.mnt) == []


def test_mkdir_creates_store(blobfs):
    os.mkdir(blobfs.path('alpha'))
    os.mkdir(blobfs.path('beta'))
    assert sorted(os.listdir(blobfs.mnt)) == ['alpha', 'beta']
    for name in ('alpha', 'beta'):
        assert stat.S_ISDIR(os.stat(blobfs.path(name)).st_mode)
        assert os.listdir(blobfs.path(name)) == ['incoming']
        assert stat.S_ISDIR(os.stat(blobfs.path(name, 'incoming')).st_mode)
        assert os.listdir(blobfs.path(name, 'incoming')) == []


def test_mkdir_existing_store_is_eexist(blobfs, store):
    expect_errno(errno.EEXIST, os.mkdir, blobfs.path(store))
    assert os.listdir(blobfs.mnt) == [store]


@pytest.mark.parametrize('name', [
    b'a',                                  # shortest
    b'x' * 255,                            # longest
    b'with space',
    b'tab\tand\nnewline',
    'ünïcödé-名前'.encode(),
    b'\xff\xfe\x80 not utf-8',
    b'a.b',
    b'trailing.',
    b'-dash',
    b'incoming',                           # a store may be called incoming
    b'0123456789abcdef' * 4,               # looks like a blob name
    bytes(range(1, 47)) + bytes(range(48, 128)),  # every byte but NUL, '/', '.' first
], ids=lambda n: repr(n)[:40])
def test_store_name_any_bytes(blobfs, name):
    if blobfs.backend == 's3' and not common.s3_store_name_ok(name):
        # S3 keys are UTF-8, and XML answers carry no control characters.
        expect_errno(errno.EINVAL, os.mkdir, blobfs.path(name))
        assert os.listdir(os.fsencode(blobfs.mnt)) == []
        return
    os.mkdir(blobfs.path(name))
    assert os.listdir(os.fsencode(blobfs.mnt)) == [name]
    assert stat.S_ISDIR(os.stat(blobfs.path(name)).st_mode)
    hexname = save(blobfs.mnt, name, b'payload for ' + name)
    assert read_file(blobfs.path(name, hexname)) == b'payload for ' + name
    assert sorted(os.listdir(blobfs.path(name))) == sorted([os.fsencode(hexname), b'incoming'])


def test_store_name_too_long(blobfs):
    expect_errno((errno.ENAMETOOLONG, errno.EINVAL), os.mkdir, blobfs.path('y' * 256))
    assert os.listdir(blobfs.mnt) == []


@pytest.mark.parametrize('name', ['.hidden', '..x', '...', '.incoming', '.' + 'a' * 254])
def test_store_dot_name_is_einval(blobfs, name):
    expect_errno(errno.EINVAL, os.mkdir, blobfs.path(name))
    assert os.listdir(blobfs.mnt) == []
    expect_errno(errno.ENOENT, os.stat, blobfs.path(name))


def test_rmdir_empty_store(blobfs, store):
    os.rmdir(blobfs.path(store))
    assert os.listdir(blobfs.mnt) == []
    expect_errno(errno.ENOENT, os.stat, blobfs.path(store))


def test_rmdir_store_after_its_blobs_were_deleted(blobfs, store):
    h = save(blobfs.mnt, store, b'x')
    os.unlink(blobfs.path(store, h))
    expect_errno(errno.ENOTEMPTY, os.rmdir, blobfs.path(store))   # the receipt is left
    os.unlink(blobfs.path(store, 'incoming', 'f'))
    os.rmdir(blobfs.path(store))
    assert os.listdir(blobfs.mnt) == []


def test_rmdir_nonempty_store_is_enotempty(blobfs, store):
    h = save(blobfs.mnt, store, b'keep me')
    expect_errno(errno.ENOTEMPTY, os.rmdir, blobfs.path(store))
    assert os.listdir(blobfs.mnt) == [store]
    assert read_file(blobfs.path(store, h)) == b'keep me'


def test_rmdir_missing_store_is_enoent(blobfs):
    expect_errno(errno.ENOENT, os.rmdir, blobfs.path('nope'))


def test_rm_r_destroys_store_with_blobs(blobfs):
    os.mkdir(blobfs.path('doomed'))
    os.mkdir(blobfs.path('kept'))
    hexes = [save(blobfs.mnt, 'doomed', os.urandom(n)) for n in (0, 1, 5000, 200000)]
    kept = save(blobfs.mnt, 'kept', b'kept')
    r = run(['rm', '-r', blobfs.path('doomed')])
    assert r.returncode == 0, r.stderr
    assert os.listdir(blobfs.mnt) == ['kept']
    expect_errno(errno.ENOENT, os.stat, blobfs.path('doomed'))
    expect_errno(errno.ENOENT, os.stat, blobfs.path('doomed', hexes[0]))
    assert read_file(blobfs.path('kept', kept)) == b'kept'


def test_recreated_store_is_empty(blobfs, store):
    h = save(blobfs.mnt, store, b'old blob')
    r = run(['rm', '-r', blobfs.path(store)])
    assert r.returncode == 0, r.stderr
    os.mkdir(blobfs.path(store))
    assert os.listdir(blobfs.path(store)) == ['incoming']
    expect_errno(errno.ENOENT, os.stat, blobfs.path(store, h))


@pytest.mark.parametrize('flags', [
    os.O_WRONLY | os.O_CREAT,
    os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    os.O_RDWR | os.O_CREAT | os.O_TRUNC,
], ids=['creat', 'creat-excl', 'creat-trunc'])
def test_create_file_at_root_is_eperm(blobfs, flags):
    expect_errno(errno.EPERM, os.open, blobfs.path('file'), flags, 0o644)
    assert os.listdir(blobfs.mnt) == []


@pytest.mark.parametrize('kind', [stat.S_IFREG, stat.S_IFIFO], ids=['reg', 'fifo'])
def test_mknod_at_root_is_eperm(blobfs, kind):
    expect_errno(errno.EPERM, os.mknod, blobfs.path('node'), kind | 0o644)
    assert os.listdir(blobfs.mnt) == []


def test_many_stores(blobfs):
    """Enough stores that listing / takes several readdir calls."""
    names = sorted(f'store-{i:04d}-' + 'n' * 100 for i in range(300))
    for n in names:
        os.mkdir(blobfs.path(n))
    assert sorted(os.listdir(blobfs.mnt)) == names
    for n in names[::2]:
        os.rmdir(blobfs.path(n))
    assert sorted(os.listdir(blobfs.mnt)) == names[1::2]


def test_missing_store_is_enoent(blobfs):
    expect_errno(errno.ENOENT, os.stat, blobfs.path('nope'))
    expect_errno(errno.ENOENT, os.listdir, blobfs.path('nope'))
    expect_errno(errno.ENOENT, os.open, blobfs.path('nope', 'incoming', 'x'),
                 os.O_WRONLY | os.O_CREAT, 0o644)


# --------------------------------------------------------------------------
# /S/  (a store)


def test_store_lists_blobs_and_incoming(blobfs, store):
    assert os.listdir(blobfs.path(store)) == ['incoming']
    hexes = {save(blobfs.mnt, store, f'blob {i}'.encode(), name=f'n{i}') for i in range(20)}
    listing = os.listdir(blobfs.path(store))
    assert sorted(listing) == sorted(hexes | {'incoming'})
    assert all(HEX64.match(n) for n in listing if n != 'incoming')
    # and through ls(1)
    r = run(['ls', blobfs.path(store)], text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(hexes | {'incoming'})


@pytest.mark.parametrize('name', [
    'file', 'incoming2', '0' * 63, 'A' * 64, '.hidden',
], ids=['plain', 'incoming2', 'short-hex', 'upper-hex', 'dotname'])
def test_create_file_in_store_is_eperm(blobfs, store, name):
    expect_errno(errno.EPERM, os.open, blobfs.path(store, name),
                 os.O_WRONLY | os.O_CREAT, 0o644)
    assert os.listdir(blobfs.path(store)) == ['incoming']


def test_create_unstored_hex_name_in_store_is_a_verified_write(blobfs, store):
    fd = os.open(blobfs.path(store, '0' * 64), os.O_WRONLY | os.O_CREAT, 0o644)
    expect_errno(errno.EIO, os.close, fd)        # the empty content is not 000...0
    assert os.listdir(blobfs.path(store)) == ['incoming']
    data = b'named by its hash'
    h = hashlib.sha256(data).hexdigest()
    fd = os.open(blobfs.path(store, h), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
    assert sorted(os.listdir(blobfs.path(store))) == sorted([h, 'incoming'])
    assert read_file(blobfs.path(store, h)) == data
    assert os.listdir(blobfs.path(store, 'incoming')) == []


@pytest.mark.parametrize('kind', [stat.S_IFREG, stat.S_IFIFO], ids=['reg', 'fifo'])
def test_mknod_in_store_is_eperm(blobfs, store, kind):
    expect_errno(errno.EPERM, os.mknod, blobfs.path(store, 'node'), kind | 0o644)
    assert os.listdir(blobfs.path(store)) == ['incoming']


def test_mkdir_in_store_is_eperm(blobfs, store):
    expect_errno(errno.EPERM, os.mkdir, blobfs.path(store, 'sub'))
    expect_errno(errno.EPERM, os.mkdir, blobfs.path(store, 'f' * 64))
    assert os.listdir(blobfs.path(store)) == ['incoming']


def test_mkdir_incoming_is_eexist(blobfs, store):
    expect_errno(errno.EEXIST, os.mkdir, blobfs.path(store, 'incoming'))


def test_symlink_in_store_is_eperm(blobfs, store):
    h = save(blobfs.mnt, store, b'target')
    expect_errno(errno.EPERM, os.symlink, h, blobfs.path(store, 'link'))
    expect_errno(errno.EPERM, os.symlink, '/etc/passwd', blobfs.path(store, 'e' * 64))
    assert sorted(os.listdir(blobfs.path(store))) == sorted([h, 'incoming'])


def test_hard_link_of_blob_only_into_its_incoming(blobfs, store):
    os.mkdir(blobfs.path('other'))
    h = save(blobfs.mnt, store, b'linked')
    expect_errno(errno.EPERM, os.link, blobfs.path(store, h), blobfs.path(store, 'alias'))
    expect_errno(errno.EPERM, os.link, blobfs.path(store, h), blobfs.path('other', h))
    expect_errno(errno.EXDEV, os.link, blobfs.path(store, h),
                 blobfs.path('other', 'incoming', 'x'))
    expect_errno(errno.EPERM, os.link, blobfs.path(store, h), blobfs.path('l'))
    os.link(blobfs.path(store, h), blobfs.path(store, 'incoming', 'x'))
    assert_receipt(blobfs.path(store, 'incoming', 'x'), b'linked')
    assert sorted(os.listdir(blobfs.path(store))) == sorted([h, 'incoming'])
    assert sorted(os.listdir(blobfs.path(store, 'incoming'))) == ['f', 'x']
    assert os.listdir(blobfs.path('other')) == ['incoming']
    assert os.listdir(blobfs.path('other', 'incoming')) == []


def test_hard_link_of_incoming_file_into_store_is_eperm(blobfs, store):
    path = blobfs.path(store, 'incoming', 'open')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        write_all(fd, b'linked')
        expect_errno(errno.EPERM, os.link, path, blobfs.path(store, 'alias'))
        expect_errno(errno.EPERM, os.link, path,
                     blobfs.path(store, hashlib.sha256(b'linked').hexdigest()))
        assert os.listdir(blobfs.path(store)) == ['incoming']
    finally:
        os.close(fd)
    assert sorted(os.listdir(blobfs.path(store))) == sorted(
        [hashlib.sha256(b'linked').hexdigest(), 'incoming'])


def test_delete_blobs_while_listing(blobfs, store):
    """Unlinking entries while a readdir stream is open (offsets must stay
    valid): every blob is seen and deleted exactly once."""
    hexes = {save(blobfs.mnt, store, f'blob {i}'.encode(), name=str(i)) for i in range(500)}
    seen = []
    with os.scandir(blobfs.path(store)) as it:
        for entry in it:
            if entry.name != 'incoming':
                seen.append(entry.name)
                os.unlink(entry.path)
    assert sorted(seen) == sorted(hexes)
    assert os.listdir(blobfs.path(store)) == ['incoming']
    clear_incoming(blobfs.mnt, store)           # the 500 receipts
    os.rmdir(blobfs.path(store))


# --------------------------------------------------------------------------
# /S/<hex>  (a blob)


def test_blob_attributes_and_content(blobfs, store):
    data = os.urandom(12345)
    h = save(blobfs.mnt, store, data)
    assert h == hashlib.sha256(data).hexdigest()
    st = os.stat(blobfs.path(store, h))
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o444, oct(st.st_mode)
    assert st.st_size == len(data)
    assert read_file(blobfs.path(store, h)) == data
    r = run(['ls', '-l', blobfs.path(store, h)], text=True)
    assert r.stdout.startswith('-r--r--r--'), r.stdout


def test_blob_pread_at_offsets(blobfs, store):
    data = os.urandom(300000)
    h = save(blobfs.mnt, store, data)
    fd = os.open(blobfs.path(store, h), os.O_RDONLY)
    try:
        for off, n in [(0, 1), (1, 4096), (4095, 2), (65535, 70000), (131072, 131072),
                       (299999, 10), (300000, 10), (400000, 10), (0, 300000)]:
            assert os.pread(fd, n, off) == data[off:off + n], (off, n)
    finally:
        os.close(fd)


def test_unlink_blob(blobfs, store):
    keep = save(blobfs.mnt, store, b'keep', name='a')
    gone = save(blobfs.mnt, store, b'gone', name='b')
    os.unlink(blobfs.path(store, gone))
    expect_errno(errno.ENOENT, os.stat, blobfs.path(store, gone))
    expect_errno(errno.ENOENT, os.open, blobfs.path(store, gone), os.O_RDONLY)
    assert sorted(os.listdir(blobfs.path(store))) == sorted([keep, 'incoming'])
    expect_errno(errno.ENOENT, os.unlink, blobfs.path(store, gone))
    assert read_file(blobfs.path(store, keep)) == b'keep'


def test_blob_stays_readable_through_open_fd_after_unlink(blobfs, store):
    data = os.urandom(100000)
    h = save(blobfs.mnt, store, data)
    with open(blobfs.path(store, h), 'rb') as f:
        os.unlink(blobfs.path(store, h))
        expect_errno(errno.ENOENT, os.stat, blobfs.path(store, h))
        # POSIX semantics; FUSE does this for us unless the daemon breaks it.
        assert f.read() == data


@pytest.mark.parametrize('flags', [
    os.O_WRONLY,
    os.O_RDWR,
    os.O_WRONLY | os.O_APPEND,
    os.O_WRONLY | os.O_TRUNC,
    os.O_RDONLY | os.O_TRUNC,
    os.O_RDWR | os.O_CREAT,
], ids=['wronly', 'rdwr', 'append', 'wronly-trunc', 'rdonly-trunc', 'rdwr-creat'])
def test_open_blob_for_writing_is_eacces(blobfs, store, flags):
    data = b'immutable content'
    h = save(blobfs.mnt, store, data)
    expect_errno(errno.EACCES, os.open, blobfs.path(store, h), flags, 0o644)
    assert read_file(blobfs.path(store, h)) == data
    assert os.stat(blobfs.path(store, h)).st_size == len(data)


@pytest.mark.parametrize('length', [0, 1, 100])
def test_truncate_blob_is_eacces(blobfs, store, length):
    data = b'immutable content'
    h = save(blobfs.mnt, store, data)
    expect_errno(errno.EACCES, os.truncate, blobfs.path(store, h), length)
    assert read_file(blobfs.path(store, h)) == data
    assert os.stat(blobfs.path(store, h)).st_size == len(data)


def test_shell_redirect_onto_blob_fails(blobfs, store):
    h = save(blobfs.mnt, store, b'immutable')
    r = run(['sh', '-c', 'echo overwrite > "$1"', 'sh', blobfs.path(store, h)], text=True)
    assert r.returncode != 0
    assert 'Permission denied' in r.stderr, r.stderr
    assert read_file(blobfs.path(store, h)) == b'immutable'


def test_rename_blob_is_eperm(blobfs, store):
    os.mkdir(blobfs.path('other'))
    h = save(blobfs.mnt, store, b'rename me', name='a')
    h2 = save(blobfs.mnt, store, b'another', name='b')
    src = blobfs.path(store, h)
    for dst in [blobfs.path(store, 'newname'),
                blobfs.path(store, 'f' * 64),
                blobfs.path(store, h2),                  # over another blob
                blobfs.path(store, 'incoming', 'x'),
                blobfs.path('newstore')]:
        expect_errno(errno.EPERM, os.rename, src, dst)
    # another store: EXDEV, so that mv copies
    for dst in [blobfs.path('other', h), blobfs.path('other', 'incoming', 'x')]:
        expect_errno(errno.EXDEV, os.rename, src, dst)
    assert sorted(os.listdir(blobfs.path(store))) == sorted([h, h2, 'incoming'])
    assert sorted(os.listdir(blobfs.mnt)) == ['other', store]
    assert os.listdir(blobfs.path('other')) == ['incoming']
    assert os.listdir(blobfs.path('other', 'incoming')) == []
    assert read_file(src) == b'rename me'
    assert read_file(blobfs.path(store, h2)) == b'another'


@pytest.mark.parametrize('mode', [0o644, 0o755, 0o400, 0o000])
def test_chmod_blob_is_eperm(blobfs, store, mode):
    h = save(blobfs.mnt, store, b'chmod me')
    expect_errno(errno.EPERM, os.chmod, blobfs.path(store, h), mode)
    assert stat.S_IMODE(os.stat(blobfs.path(store, h)).st_mode) == 0o444


def test_names_that_are_not_stored_blobs_are_enoent(blobfs, store):
    data = b'the only blob'
    h = save(blobfs.mnt, store, data)
    missing = hashlib.sha256(b'never saved').hexdigest()
    for name in [h.upper(),               # uppercase hex of a stored blob
                 h[:1].upper() + h[1:],    # one uppercase digit
                 h[:63],                   # too short
                 h + '0',                  # too long
                 'g' + h[1:],              # not hex
                 missing,                  # well-formed but not stored
                 'x',
                 'Incoming']:
        expect_errno(errno.ENOENT, os.stat, blobfs.path(store, name))
        expect_errno(errno.ENOENT, os.open, blobfs.path(store, name), os.O_RDONLY)
        expect_errno(errno.ENOENT, os.unlink, blobfs.path(store, name))
    assert read_file(blobfs.path(store, h)) == data


def test_negative_lookup_is_not_cached(blobfs, store):
    """A failed lookup of a hex name must not hide the blob once saved."""
    data = b'soon to exist'
    h = hashlib.sha256(data).hexdigest()
    expect_errno(errno.ENOENT, os.stat, blobfs.path(store, h))
    assert save(blobfs.mnt, store, data) == h
    assert read_file(blobfs.path(store, h)) == data
    os.unlink(blobfs.path(store, h))
    expect_errno(errno.ENOENT, os.stat, blobfs.path(store, h))
    assert save(blobfs.mnt, store, data) == h
    assert read_file(blobfs.path(store, h)) == data


# --------------------------------------------------------------------------
# /S/incoming/  (drop box)


@pytest.mark.parametrize('name', [
    b'f', b'x' * 255, b'with space', b'\xff\xfe binary', 'ünï'.encode(), b'.dot',
    b'incoming', b'0' * 64, b'ABCDEF' * 10,
], ids=lambda n: repr(n)[:30])
def test_incoming_accepts_any_name(blobfs, store, name):
    data = b'content of ' + name
    h = save(blobfs.mnt, store, data, name=name)
    assert read_file(blobfs.path(store, h)) == data
    assert_receipt(blobfs.path(store, 'incoming', name), data)
    assert os.listdir(os.fsencode(blobfs.path(store, 'incoming'))) == [name]


def test_incoming_name_stays_as_a_receipt_after_close(blobfs, store):
    path = blobfs.path(store, 'incoming', 'drop')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        write_all(fd, b'hello')
        # visible while open
        assert os.listdir(blobfs.path(store, 'incoming')) == ['drop']
        assert os.stat(path).st_size == 5
        assert stat.S_ISREG(os.stat(path).st_mode)
    finally:
        os.close(fd)
    h = hashlib.sha256(b'hello').hexdigest()
    assert os.path.exists(blobfs.path(store, h))   # before we looked at incoming
    assert os.listdir(blobfs.path(store, 'incoming')) == ['drop']
    assert_receipt(path, b'hello')
    assert read_file(blobfs.path(store, h)) == b'hello'
    os.unlink(path)                                 # removing the receipt keeps the blob
    expect_errno(errno.ENOENT, os.stat, path)
    assert os.listdir(blobfs.path(store, 'incoming')) == []
    assert read_file(blobfs.path(store, h)) == b'hello'


def test_incoming_create_existing_open_name_excl_is_eexist(blobfs, store):
    path = blobfs.path(store, 'incoming', 'busy')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, b'first')
        expect_errno(errno.EEXIST, os.open, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    finally:
        os.close(fd)
    assert read_file(blobfs.path(store, hashlib.sha256(b'first').hexdigest())) == b'first'


def test_incoming_sparse_writes_at_any_offset(blobfs, store):
    path = blobfs.path(store, 'incoming', 'sparse')
    expected = bytearray(3 * 1024 * 1024 + 10)
    pieces = [(3 * 1024 * 1024, b'tail-bytes'), (0, b'head'), (4096, b'page'),
              (1000000, os.urandom(70000)), (2, b'XY'), (1000010, b'overlap')]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for off, chunk in pieces:
            assert os.pwrite(fd, chunk, off) == len(chunk)
            expected[off:off + len(chunk)] = chunk
        assert os.fstat(fd).st_size == len(expected)
        # re-read while open, holes included
        assert os.pread(fd, 4096, 8192) == bytes(4096)
        assert os.pread(fd, 100, 999990) == bytes(expected[999990:1000090])
        assert os.pread(fd, len(expected) + 5, 0) == bytes(expected)
    finally:
        os.close(fd)
    h = hashlib.sha256(expected).hexdigest()
    assert read_file(blobfs.path(store, h)) == bytes(expected)
    assert os.stat(blobfs.path(store, h)).st_size == len(expected)


def test_incoming_hole_only_file(blobfs, store):
    """A file that is only a hole (ftruncate up, never written)."""
    path = blobfs.path(store, 'incoming', 'hole')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, 1 << 20)
    finally:
        os.close(fd)
    h = hashlib.sha256(bytes(1 << 20)).hexdigest()
    assert read_file(blobfs.path(store, h)) == bytes(1 << 20)


def test_incoming_truncate_while_open(blobfs, store):
    path = blobfs.path(store, 'incoming', 'trunc')
    data = bytearray(os.urandom(100000))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        write_all(fd, data)
        os.ftruncate(fd, 10)                      # shrink
        del data[10:]
        assert os.fstat(fd).st_size == 10
        assert os.pread(fd, 100, 0) == bytes(data)
        os.ftruncate(fd, 5000)                    # grow: zero-filled
        data += bytes(4990)
        assert os.pread(fd, 6000, 0) == bytes(data)
        os.truncate(path, 3000)                   # by path, while open
        del data[3000:]
        assert os.stat(path).st_size == 3000
        assert os.pwrite(fd, b'end', 4000) == 3   # write past EOF after truncation
        data += bytes(1000) + b'end'
        assert os.pread(fd, 10000, 0) == bytes(data)
        # the file position (100000) is still beyond EOF: a write there
        # must extend with zeros
        write_all(fd, b'!')
        data += bytes(100000 - len(data)) + b'!'
        assert os.pread(fd, 200000, 0) == bytes(data)
    finally:
        os.close(fd)
    h = hashlib.sha256(data).hexdigest()
    assert read_file(blobfs.path(store, h)) == bytes(data)


def test_incoming_open_o_trunc_and_append(blobfs, store):
    path = blobfs.path(store, 'incoming', 'ta')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        write_all(fd, b'one,')
        os.lseek(fd, 0, os.SEEK_SET)
        write_all(fd, b'two')                     # O_APPEND: still at the end
    finally:
        os.close(fd)
    assert read_file(blobfs.path(store, hashlib.sha256(b'one,two').hexdigest())) == b'one,two'


def test_incoming_many_files_open_at_once(blobfs, store):
    n = 16
    fds, contents = [], []
    try:
        for i in range(n):
            fds.append(os.open(blobfs.path(store, 'incoming', f'f{i}'),
                               os.O_WRONLY | os.O_CREAT, 0o644))
            contents.append(bytearray())
        for rnd in range(5):                      # interleaved writes
            for i in range(n):
                chunk = os.urandom(1000 * (i + 1))
                write_all(fds[i], chunk)
                contents[i] += chunk
        assert sorted(os.listdir(blobfs.path(store, 'incoming'))) == sorted(f'f{i}' for i in range(n))
    finally:
        order = list(range(n))
        order = order[1::2] + order[::2]          # close in a different order
        for i in order:
            if i < len(fds):
                os.close(fds[i])
    for c in contents:
        assert read_file(blobfs.path(store, hashlib.sha256(c).hexdigest())) == bytes(c)
    assert sorted(os.listdir(blobfs.path(store, 'incoming'))) == sorted(f'f{i}' for i in range(n))
    for i, c in enumerate(contents):
        assert_receipt(blobfs.path(store, 'incoming', f'f{i}'), bytes(c))
    assert len(os.listdir(blobfs.path(store))) == n + 1


def test_rmdir_empty_incoming_returns_0_and_incoming_stays(blobfs, store):
    os.rmdir(blobfs.path(store, 'incoming'))
    assert os.listdir(blobfs.path(store)) == ['incoming']
    assert stat.S_ISDIR(os.stat(blobfs.path(store, 'incoming')).st_mode)
    h = save(blobfs.mnt, store, b'still works')
    assert read_file(blobfs.path(store, h)) == b'still works'


def test_empty_file_in_incoming_saves_empty_blob(blobfs, store):
    fd = os.open(blobfs.path(store, 'incoming', 'empty'), os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    assert os.stat(blobfs.path(store, EMPTY_SHA256)).st_size == 0


# --------------------------------------------------------------------------
# the usual tools


def test_tools_cp_cat_ls_sha256sum(blobfs, store, tmp_path):
    src = tmp_path / 'src.bin'
    data = os.urandom(777777)
    src.write_bytes(data)
    h = hashlib.sha256(data).hexdigest()
    r = run(['cp', str(src), blobfs.path(store, 'incoming', 'copied')], text=True)
    assert r.returncode == 0, r.stderr
    r = run(['ls', blobfs.path(store)], text=True)
    assert r.returncode == 0 and h in r.stdout.split(), r.stdout + r.stderr
    r = run(['cat', blobfs.path(store, h)])
    assert r.returncode == 0 and r.stdout == data
    r = run(['sha256sum', blobfs.path(store, h)], text=True)
    assert r.returncode == 0 and r.stdout.split()[0] == h, r.stdout + r.stderr
    r = run(['cp', blobfs.path(store, h), str(tmp_path / 'out.bin')], text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'out.bin').read_bytes() == data
    r = run(['cp', '/dev/null', blobfs.path(store, 'incoming', 'null')], text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(blobfs.path(store))) == sorted([h, EMPTY_SHA256, 'incoming'])
    r = run(['rm', blobfs.path(store, h)], text=True)
    assert r.returncode == 0, r.stderr
    assert h not in os.listdir(blobfs.path(store))


def test_shell_redirect_into_incoming(blobfs, store, tmp_path):
    """`printf hello > S/incoming/a`: the shell opens the file, dup2()s it
    to fd 1 and closes the original descriptor, so the daemon sees a FUSE
    flush of the still-empty file before printf writes. The final content
    must be saved all the same (an extra empty blob is tolerated)."""
    src = tmp_path / 'src.bin'
    data = os.urandom(200000)
    src.write_bytes(data)
    r = run(['sh', '-c', 'printf hello > "$1/incoming/a" && cat "$2" | cat > "$1/incoming/b"',
             'sh', blobfs.path(store), str(src)], text=True)
    assert r.returncode == 0, r.stderr
    hello = hashlib.sha256(b'hello').hexdigest()
    big = hashlib.sha256(data).hexdigest()
    listing = set(os.listdir(blobfs.path(store)))
    assert {hello, big, 'incoming'} <= listing <= {hello, big, EMPTY_SHA256, 'incoming'}, listing
    assert read_file(blobfs.path(store, hello)) == b'hello'
    assert read_file(blobfs.path(store, big)) == data
    assert sorted(os.listdir(blobfs.path(store, 'incoming'))) == ['a', 'b']
    assert_receipt(blobfs.path(store, 'incoming', 'a'), b'hello')
    assert_receipt(blobfs.path(store, 'incoming', 'b'), data)
