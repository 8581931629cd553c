"""Hostile input through the mount: a table of misuses, each with the errno
it must fail with, and a few misuses with more to check (concurrent saves of
the same content, deletes under a reader, unlink of a file being written,
huge offsets). After every case the daemon must still be alive and serving:
the blobs it had read back exactly and a new save works.

Where the errno comes from the kernel rather than from blobfs (the VFS
answers some calls itself, e.g. unlink of a directory), the table says so.

Every test runs on each backend (local and memory, see BLOBFS_BACKENDS);
the steps that need a DATADIR (a remount that must keep the blobs, staging
files) run on local only.
"""

import errno
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from blobfs_test import common, files
from blobfs_test.files import assert_receipt, expect_errno, read_blob_checked, save

KiB = 1 << 10
MiB = 1 << 20


class Ctx:
    """A mount with store s holding blob b (200 KiB) and blob b2 (small),
    and an empty store t."""

    def __init__(self, m):
        self.m = m
        os.mkdir(m.path('s'))
        os.mkdir(m.path('t'))
        self.data = os.urandom(200 * KiB)
        self.b = save(m.mnt, 's', self.data, name='b')
        self.data2 = b'the second blob'
        self.b2 = save(m.mnt, 's', self.data2, name='b2')

    def p(self, *parts):
        return self.m.path(*parts)

    def blob(self):
        return self.p('s', self.b)

    def incoming(self, name='w', data=b'being written'):
        """Open s/incoming/name for writing with some data in it; the caller
        closes the descriptor."""
        fd = os.open(self.p('s', 'incoming', name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        files.write_all(fd, data)
        return fd

    def check_alive(self, extra_blobs=()):
        """The daemon still serves: the store lists exactly what it should,
        the blobs read back exactly, a new save works."""
        names = set(files.blob_names(self.m.mnt, 's'))
        assert names == {self.b, self.b2, *extra_blobs}, sorted(names)
        assert read_blob_checked(self.blob(), self.data) == self.data
        assert files.read_file(self.p('s', self.b2)) == self.data2
        payload = b'final save after ' + os.urandom(8).hex().encode()
        h = save(self.m.mnt, 't', payload, name='final')
        assert files.read_file(self.p('t', h)) == payload
        os.unlink(self.p('t', h))


@pytest.fixture
def ctx(blobfs):
    return Ctx(blobfs)


def _with_incoming(func):
    """Run func(c, fd, path) with an incoming file open, then close it."""
    def run(c):
        fd = c.incoming()
        try:
            return func(c, fd, c.p('s', 'incoming', 'w'))
        finally:
            os.close(fd)
    run.uses_incoming = True
    return run


def _create(path):
    """Create a file; close it (so that a wrong success leaves no descriptor
    open on the mount)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


def _mknod(path, kind):
    mode = {'fifo': stat.S_IFIFO, 'chr': stat.S_IFCHR, 'blk': stat.S_IFBLK,
            'sock': stat.S_IFSOCK}[kind] | 0o600
    return os.mknod(path, mode, os.makedev(1, 3) if kind in ('chr', 'blk') else 0)


EACCES, EPERM, ENOENT, EXDEV = errno.EACCES, errno.EPERM, errno.ENOENT, errno.EXDEV

# (id, expected errno, what does it)
CASES = [
    # blobs are read-only: opening for writing or truncating is EACCES
    ('open-blob-wronly', EACCES, lambda c: os.open(c.blob(), os.O_WRONLY)),
    ('open-blob-rdwr', EACCES, lambda c: os.open(c.blob(), os.O_RDWR)),
    ('open-blob-rdonly-trunc', EACCES, lambda c: os.open(c.blob(), os.O_RDONLY | os.O_TRUNC)),
    ('open-blob-wronly-trunc', EACCES, lambda c: os.open(c.blob(), os.O_WRONLY | os.O_TRUNC)),
    ('open-blob-append', EACCES, lambda c: os.open(c.blob(), os.O_WRONLY | os.O_APPEND)),
    ('truncate-blob-0', EACCES, lambda c: os.truncate(c.blob(), 0)),
    ('truncate-blob-longer', EACCES, lambda c: os.truncate(c.blob(), 300 * KiB)),
    # blob attributes are fixed: EPERM
    ('chmod-blob', EPERM, lambda c: os.chmod(c.blob(), 0o644)),
    ('chmod-blob-same-mode', EPERM, lambda c: os.chmod(c.blob(), 0o444)),
    ('chown-blob', EPERM, lambda c: os.chown(c.blob(), 1, 1)),
    ('utime-blob', EPERM, lambda c: os.utime(c.blob(), (0, 0))),
    ('utime-blob-now', EPERM, lambda c: os.utime(c.blob(), None)),
    # rename: only names in incoming/, within the store's incoming tree;
    # to another store: EXDEV (mv then copies)
    ('rename-blob-onto-blob', EPERM, lambda c: os.rename(c.blob(), c.p('s', c.b2))),
    ('rename-blob-to-new-hex', EPERM, lambda c: os.rename(c.blob(), c.p('s', 'a' * 64))),
    ('rename-blob-into-incoming', EPERM, lambda c: os.rename(c.blob(), c.p('s', 'incoming', 'x'))),
    ('rename-blob-to-other-store', EXDEV, lambda c: os.rename(c.blob(), c.p('t', c.b))),
    ('rename-incoming-into-store', EPERM, _with_incoming(
        lambda c, fd, p: os.rename(p, c.p('s', hashlib.sha256(b'being written').hexdigest())))),
    ('rename-incoming-to-root', EPERM, _with_incoming(lambda c, fd, p: os.rename(p, c.p('w')))),
    ('rename-incoming-to-other-store', EXDEV, _with_incoming(
        lambda c, fd, p: os.rename(p, c.p('t', 'incoming', 'w')))),
    ('rename-store', EPERM, lambda c: os.rename(c.p('t'), c.p('t2'))),
    # links: only a new receipt in the same store's incoming/ (test_allowed_in_incoming);
    # no special files; directories only as stores and inside incoming/
    ('link-blob-into-other-incoming', EXDEV,
     lambda c: os.link(c.blob(), c.p('t', 'incoming', 'l'))),
    ('link-receipt-into-other-incoming', EXDEV,
     lambda c: os.link(c.p('s', 'incoming', 'b'), c.p('t', 'incoming', 'l'))),
    ('link-receipt-into-store', EPERM,
     lambda c: os.link(c.p('s', 'incoming', 'b'), c.p('s', c.b2[::-1]))),
    ('link-blob-into-store', EPERM, lambda c: os.link(c.blob(), c.p('t', c.b))),
    ('link-blob-to-root', EPERM, lambda c: os.link(c.blob(), c.p('l'))),
    ('link-incoming', EPERM, _with_incoming(
        lambda c, fd, p: os.link(p, c.p('s', 'incoming', 'l')))),
    ('symlink-root', EPERM, lambda c: os.symlink('s', c.p('l'))),
    ('symlink-store', EPERM, lambda c: os.symlink(c.b, c.p('s', 'l'))),
    ('symlink-incoming', EPERM, lambda c: os.symlink('x', c.p('s', 'incoming', 'l'))),
    ('mkfifo-root', EPERM, lambda c: _mknod(c.p('f'), 'fifo')),
    ('mkfifo-store', EPERM, lambda c: _mknod(c.p('s', 'f'), 'fifo')),
    ('mkfifo-incoming', EPERM, lambda c: _mknod(c.p('s', 'incoming', 'f'), 'fifo')),
    ('mknod-chr-root', EPERM, lambda c: _mknod(c.p('c'), 'chr')),
    ('mknod-chr-store', EPERM, lambda c: _mknod(c.p('s', 'c'), 'chr')),
    ('mknod-chr-incoming', EPERM, lambda c: _mknod(c.p('s', 'incoming', 'c'), 'chr')),
    # not 'b': that is the receipt Ctx left (EEXIST)
    ('mknod-blk-incoming', EPERM, lambda c: _mknod(c.p('s', 'incoming', 'blk'), 'blk')),
    ('mknod-sock-incoming', EPERM, lambda c: _mknod(c.p('s', 'incoming', 'k'), 'sock')),
    ('mkdir-in-store', EPERM, lambda c: os.mkdir(c.p('s', 'd'))),
    ('mkdir-hex-in-store', EPERM, lambda c: os.mkdir(c.p('s', 'b' * 64))),
    ('mkdir-over-receipt', errno.EEXIST, lambda c: os.mkdir(c.p('s', 'incoming', 'b'))),
    ('create-file-at-root', EPERM, lambda c: _create(c.p('f'))),
    ('create-file-in-store', EPERM, lambda c: _create(c.p('s', 'f'))),
    # a lower-case hex name is a verified write (test_allowed_in_incoming)
    ('create-upper-hex-file-in-store', EPERM, lambda c: _create(c.p('s', 'C' * 64))),
    # store names. "", "." and ".." name existing directories (the root,
    # its parent): the kernel answers EEXIST without asking blobfs.
    ('mkdir-empty-name', errno.EEXIST, lambda c: os.mkdir(c.p(''))),
    ('mkdir-dot', errno.EEXIST, lambda c: os.mkdir(c.p('.'))),
    ('mkdir-dotdot', errno.EEXIST, lambda c: os.mkdir(c.p('..'))),
    ('mkdir-hidden', errno.EINVAL, lambda c: os.mkdir(c.p('.hidden'))),
    # 256 bytes: FUSE passes names up to its own limit (longer than
    # NAME_MAX) to the daemon, and blobfs applies its documented rule
    # "a store name is 1-255 bytes" with EINVAL (README). POSIX would have
    # ENAMETOOLONG here; EINVAL is what the documentation promises.
    ('mkdir-256-bytes', errno.EINVAL, lambda c: os.mkdir(c.p('n' * 256))),
    ('mkdir-existing-store', errno.EEXIST, lambda c: os.mkdir(c.p('s'))),
    ('mkdir-incoming', errno.EEXIST, lambda c: os.mkdir(c.p('s', 'incoming'))),
    # names that are not stored blobs
    ('stat-upper-case-hex', ENOENT, lambda c: os.stat(c.p('s', c.b.upper()))),
    ('stat-63-digits', ENOENT, lambda c: os.stat(c.p('s', c.b[:63]))),
    ('stat-65-digits', ENOENT, lambda c: os.stat(c.p('s', c.b + '0'))),
    ('open-upper-case-hex', ENOENT, lambda c: os.open(c.p('s', c.b.upper()), os.O_RDONLY)),
    ('unlink-upper-case-hex', ENOENT, lambda c: os.unlink(c.p('s', c.b.upper()))),
    ('unlink-65-digits', ENOENT, lambda c: os.unlink(c.p('s', c.b + '0'))),
    ('unlink-missing-blob', ENOENT, lambda c: os.unlink(c.p('s', '0' * 64))),
    ('stat-missing-store', ENOENT, lambda c: os.stat(c.p('nostore'))),
    ('rmdir-missing-store', ENOENT, lambda c: os.rmdir(c.p('nostore'))),
    # wrong kind of object
    ('rmdir-nonempty-store', errno.ENOTEMPTY, lambda c: os.rmdir(c.p('s'))),
    ('rmdir-incoming-with-open-file', errno.ENOTEMPTY, _with_incoming(
        lambda c, fd, p: os.rmdir(c.p('s', 'incoming')))),
    ('rmdir-blob', errno.ENOTDIR, lambda c: os.rmdir(c.blob())),
    # unlink(2) of a directory: EISDIR (from the kernel's VFS)
    ('unlink-store', errno.EISDIR, lambda c: os.unlink(c.p('s'))),
    ('unlink-incoming-dir', errno.EISDIR, lambda c: os.unlink(c.p('s', 'incoming'))),
    ('opendir-blob', errno.ENOTDIR, lambda c: os.listdir(c.blob())),
    ('blob-with-trailing-slash', errno.ENOTDIR, lambda c: os.stat(c.blob() + '/')),
    ('open-store-for-writing', errno.EISDIR, lambda c: os.open(c.p('s'), os.O_WRONLY)),
    ('open-incoming-dir-for-writing', errno.EISDIR,
     lambda c: os.open(c.p('s', 'incoming'), os.O_WRONLY)),
    ('create-excl-over-blob', errno.EEXIST,
     lambda c: os.open(c.blob(), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)),
    # xattrs: blobfs has none. setxattr answers ENOTSUP, the errno
    # setxattr(2) documents for "extended attributes are not supported by
    # the file system" (EPERM would claim a permission problem).
    ('setxattr-blob', errno.ENOTSUP, lambda c: os.setxattr(c.blob(), 'user.x', b'1')),
    ('setxattr-store', errno.ENOTSUP, lambda c: os.setxattr(c.p('s'), 'user.x', b'1')),
    ('setxattr-incoming-file', errno.ENOTSUP, _with_incoming(
        lambda c, fd, p: os.setxattr(p, 'user.x', b'1'))),
    # getxattr(2) allows either answer for a file system without xattrs
    ('getxattr-blob', (errno.ENODATA, errno.ENOTSUP), lambda c: os.getxattr(c.blob(), 'user.x')),
    # huge offsets on a file being written: blobs are at most 2^56 bytes
    ('pwrite-at-2^56', errno.EFBIG, _with_incoming(lambda c, fd, p: os.pwrite(fd, b'x', 1 << 56))),
    ('pwrite-at-2^56+4096', errno.EFBIG,
     _with_incoming(lambda c, fd, p: os.pwrite(fd, b'xyz', (1 << 56) + 4096))),
    ('pwrite-at-2^62', errno.EFBIG, _with_incoming(lambda c, fd, p: os.pwrite(fd, b'x', 1 << 62))),
    ('ftruncate-past-2^56', errno.EFBIG,
     _with_incoming(lambda c, fd, p: os.ftruncate(fd, (1 << 56) + 1))),
    # descriptors used the wrong way (answered by the kernel)
    ('write-to-read-only-blob-fd', errno.EBADF,
     lambda c: _on_blob_fd(c, lambda fd: os.write(fd, b'x'))),
    ('ftruncate-read-only-blob-fd', errno.EINVAL,
     lambda c: _on_blob_fd(c, lambda fd: os.ftruncate(fd, 0))),
    ('fchmod-blob-fd', EPERM, lambda c: _on_blob_fd(c, lambda fd: os.fchmod(fd, 0o600))),
]


def _on_blob_fd(c, func):
    fd = os.open(c.blob(), os.O_RDONLY)
    try:
        return func(fd)
    finally:
        os.close(fd)


@pytest.mark.backends
@pytest.mark.parametrize('name,expected,action', CASES, ids=[c[0] for c in CASES])
def test_misuse(ctx, name, expected, action):
    expect_errno(expected, action, ctx)
    # the misuse changed nothing: no blob appeared in t or s, the incoming
    # file a case wrote to is saved as written (each close is a save)
    extra = set()
    if getattr(action, 'uses_incoming', False):
        extra.add(hashlib.sha256(b'being written').hexdigest())
    listed = set(files.blob_names(ctx.m.mnt, 's'))
    assert listed - {ctx.b, ctx.b2} <= extra, sorted(listed)
    ctx.check_alive(extra_blobs=listed - {ctx.b, ctx.b2})
    assert files.blob_names(ctx.m.mnt, 't') == []
    assert sorted(os.listdir(os.fsencode(ctx.m.mnt))) == [b's', b't']


@pytest.mark.backends
def test_allowed_in_incoming(ctx):
    """Allowed now, so not in the table: a hard link of a blob
    or a receipt into the same store's incoming/ is a new receipt,
    directories can be made there, and creating S/<hex> is a verified write
    (EIO at close when the content does not hash to the name)."""
    inc = ctx.p('s', 'incoming')
    os.link(ctx.blob(), os.path.join(inc, 'l'))
    assert_receipt(os.path.join(inc, 'l'), ctx.data)
    os.mkdir(os.path.join(inc, 'd'))
    assert os.path.isdir(os.path.join(inc, 'd'))
    os.link(os.path.join(inc, 'b2'), os.path.join(inc, 'd', 'l2'))
    assert_receipt(os.path.join(inc, 'd', 'l2'), ctx.data2)
    assert sorted(os.listdir(inc)) == ['b', 'b2', 'd', 'l']
    bad = ctx.p('s', 'c' * 64)
    fd = os.open(bad, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        files.write_all(fd, b'not the content of that name')
    finally:
        expect_errno(errno.EIO, os.close, fd)
    expect_errno(ENOENT, os.stat, bad)
    good = b'verified'
    h = hashlib.sha256(good).hexdigest()
    fd = os.open(ctx.p('s', h), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        files.write_all(fd, good)
    finally:
        os.close(fd)
    assert files.read_file(ctx.p('s', h)) == good
    # removing the links and the directory leaves the blobs
    os.unlink(os.path.join(inc, 'l'))
    os.unlink(os.path.join(inc, 'd', 'l2'))
    os.rmdir(os.path.join(inc, 'd'))
    assert sorted(os.listdir(inc)) == ['b', 'b2']
    ctx.check_alive(extra_blobs={h})


def test_the_table_is_big_enough():
    assert len(CASES) >= 30


@pytest.mark.backends
@pytest.mark.parametrize('name', [b'new\nline', b'\xff\xfe bytes', b'tab\tand space',
                                  b'x' * 255, b'-dash', b'a\\b'],
                         ids=['newline', '0xff', 'tab-space', '255-bytes', 'dash', 'backslash'])
def test_odd_but_valid_store_names(ctx, name):
    if ctx.m.backend == 's3' and not common.s3_store_name_ok(name):
        expect_errno(errno.EINVAL, os.mkdir, ctx.p(name))   # UTF-8, no controls
        ctx.check_alive()
        return
    os.mkdir(ctx.p(name))
    assert name in os.listdir(os.fsencode(ctx.m.mnt))
    h = save(ctx.m.mnt, name, b'content of ' + name, name=name[:40])
    assert files.read_file(ctx.p(name, h)) == b'content of ' + name
    assert_receipt(ctx.p(name, 'incoming', name[:40]), b'content of ' + name)
    os.unlink(ctx.p(name, h))
    os.unlink(ctx.p(name, 'incoming', name[:40]))    # rmdir needs an empty incoming/
    os.rmdir(ctx.p(name))
    expect_errno(errno.ENOENT, os.stat, ctx.p(name))
    ctx.check_alive()


@pytest.mark.backends
def test_huge_offset_write_leaves_the_file_as_it_was(ctx):
    """A write refused with EFBIG changes nothing: the file keeps its size
    and content. Its close then either fails (the write poisoned the file)
    or saves exactly the content written before, never anything else."""
    fd = ctx.incoming('huge', b'before the huge write')
    try:
        expect_errno(errno.EFBIG, os.pwrite, fd, b'x' * 4096, (1 << 56) + 100)
        st = os.fstat(fd)
        assert st.st_size == len(b'before the huge write'), st.st_size
        assert os.stat(ctx.p('s', 'incoming', 'huge')).st_size == st.st_size
    finally:
        try:
            os.close(fd)
            closed = 'ok'
        except OSError as e:
            closed = e
    h = hashlib.sha256(b'before the huge write').hexdigest()
    new = set(files.blob_names(ctx.m.mnt, 's')) - {ctx.b, ctx.b2}
    if closed == 'ok':
        assert new == {h}, new
        assert files.read_file(ctx.p('s', h)) == b'before the huge write'
    else:
        assert new == set(), new
    ctx.check_alive(extra_blobs=new)


@pytest.mark.backends
def test_sparse_write_bigger_than_the_disk_poisons_the_file(ctx):
    """One byte at 1 TiB: a blob may be that large, but the file would need
    more space than the disk has, so the write fails with ENOSPC (or EFBIG
    where the file system under DATADIR cannot hold such a file); the file
    is then poisoned: close() fails too and nothing is saved. On memory the
    1 TiB are past memory_max (by default a share of RAM): ENOSPC too."""
    fd = ctx.incoming('sparse', b'head')
    try:
        expect_errno((errno.ENOSPC, errno.EFBIG), os.pwrite, fd, b'x', 1 << 40)
    finally:
        try:
            os.close(fd)
            closed = None
        except OSError as e:
            closed = e
    assert closed is not None, 'close() returned 0 after a write failed with ENOSPC'
    assert closed.errno in (errno.ENOSPC, errno.EFBIG, errno.EIO), closed
    ctx.check_alive()


@pytest.mark.backends
def test_zero_size_writes(ctx):
    fd = ctx.incoming('z', b'abc')
    try:
        assert os.write(fd, b'') == 0
        assert os.pwrite(fd, b'', 1000) == 0
        assert os.pwrite(fd, b'', 1 << 60) == 0
        assert os.fstat(fd).st_size == 3
    finally:
        os.close(fd)
    h = hashlib.sha256(b'abc').hexdigest()
    assert files.read_file(ctx.p('s', h)) == b'abc'
    assert os.stat(ctx.p('s', h)).st_size == 3
    # an incoming file that is only ever written with zero bytes is the empty blob
    fd = os.open(ctx.p('s', 'incoming', 'zz'), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        assert os.write(fd, b'') == 0
    finally:
        os.close(fd)
    ctx.check_alive(extra_blobs={h, files.EMPTY_SHA256})


@pytest.mark.backends
def test_seek_and_read_past_the_end(ctx):
    fd = os.open(ctx.blob(), os.O_RDONLY)
    try:
        assert os.lseek(fd, len(ctx.data) + 1000, os.SEEK_SET) == len(ctx.data) + 1000
        assert os.read(fd, 100) == b''
        assert os.pread(fd, 100, len(ctx.data)) == b''
        assert os.pread(fd, 100, 1 << 62) == b''
        assert os.pread(fd, 100, len(ctx.data) - 10) == ctx.data[-10:]
        assert os.lseek(fd, 0, os.SEEK_END) == len(ctx.data)
    finally:
        os.close(fd)
    ctx.check_alive()


@pytest.mark.backends
def test_read_incoming_file_while_another_fd_writes_it(ctx):
    w = ctx.incoming('rw', b'first part, ')
    try:
        r = os.open(ctx.p('s', 'incoming', 'rw'), os.O_RDONLY)
        try:
            assert os.pread(r, 100, 0) == b'first part, '
            files.write_all(w, b'second part')
            assert os.pread(r, 100, 0) == b'first part, second part'
            assert os.pread(r, 100, 6) == b'part, second part'
        finally:
            os.close(r)        # each close is a save (README): this one saves the two parts
        files.write_all(w, b', third part')
    finally:
        os.close(w)
    final = b'first part, second part, third part'
    h = hashlib.sha256(final).hexdigest()
    assert files.read_file(ctx.p('s', h)) == final
    new = set(files.blob_names(ctx.m.mnt, 's')) - {ctx.b, ctx.b2}
    # besides the final content, only the state at the reader's close
    assert new <= {h, hashlib.sha256(b'first part, second part').hexdigest()}, new
    assert sorted(os.listdir(ctx.p('s', 'incoming'))) == ['b', 'b2', 'rw']
    assert_receipt(ctx.p('s', 'incoming', 'rw'), final)
    ctx.check_alive(extra_blobs=new)


@pytest.mark.backends
@pytest.mark.parametrize('size', [100 * KiB, 3 * MiB])
def test_concurrent_saves_of_the_same_content(ctx, size):
    data = os.urandom(size)
    h = hashlib.sha256(data).hexdigest()
    barrier = threading.Barrier(8)
    results = [None] * 8

    def writer(i):
        try:
            fd = os.open(ctx.p('s', 'incoming', f'same{i}'), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                barrier.wait(10)
                for off in range(0, size, 64 * KiB):
                    os.pwrite(fd, data[off:off + 64 * KiB], off)
                barrier.wait(10)
            finally:
                os.close(fd)
            results[i] = 'ok'
        except Exception as e:      # reported below
            results[i] = e

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == ['ok'] * 8, results
    assert set(files.blob_names(ctx.m.mnt, 's')) == {ctx.b, ctx.b2, h}
    assert read_blob_checked(ctx.p('s', h), data) == data
    receipts = [f'same{i}' for i in range(8)]
    assert sorted(os.listdir(ctx.p('s', 'incoming'))) == ['b', 'b2'] + receipts
    for i in range(8):
        assert_receipt(ctx.p('s', 'incoming', f'same{i}'), data)
    if ctx.m.backend == 'local':   # memory: a remount starts empty
        ctx.m.remount()
        assert read_blob_checked(ctx.p('s', h), data) == data
    ctx.check_alive(extra_blobs={h})


@pytest.mark.backends
@pytest.mark.parametrize('size', [200 * KiB, 3 * MiB + 17])
def test_delete_while_a_reader_has_the_blob_open(ctx, size):
    data = os.urandom(size)
    h = save(ctx.m.mnt, 's', data, name='doomed')
    fd = os.open(ctx.p('s', h), os.O_RDONLY)
    try:
        first = os.read(fd, 100 * KiB)
        os.unlink(ctx.p('s', h))
        expect_errno(errno.ENOENT, os.stat, ctx.p('s', h))
        assert h not in files.blob_names(ctx.m.mnt, 's')
        rest = []
        while True:
            piece = os.read(fd, 64 * KiB)
            if not piece:
                break
            rest.append(piece)
        got = first + b''.join(rest)
        assert got == data, f'read {len(got)} bytes after the delete, expected {size}'
        assert os.pread(fd, 1000, 0) == data[:1000]
    finally:
        os.close(fd)
    ctx.check_alive()
    if ctx.m.backend == 'local':   # memory: a remount starts empty
        ctx.m.remount()
        expect_errno(errno.ENOENT, os.stat, ctx.p('s', h))
        ctx.check_alive()


@pytest.mark.backends
@pytest.mark.parametrize('size', [1000, 2 * MiB])
def test_unlink_incoming_file_while_open(ctx, size):
    data = os.urandom(size)
    fd = os.open(ctx.p('s', 'incoming', 'gone'), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        files.write_all(fd, data)
        os.unlink(ctx.p('s', 'incoming', 'gone'))
        assert sorted(os.listdir(ctx.p('s', 'incoming'))) == ['b', 'b2']   # Ctx's receipts
        os.write(fd, b'more after the unlink')
    finally:
        os.close(fd)
    assert sorted(os.listdir(ctx.p('s', 'incoming'))) == ['b', 'b2'], 'the close made a receipt'
    for content in (data, data + b'more after the unlink'):
        expect_errno(errno.ENOENT, os.stat, ctx.p('s', hashlib.sha256(content).hexdigest()))
    ctx.check_alive()
    if ctx.m.backend != 'local':
        return
    # its staging data goes when the file is released (just after close)
    deadline = time.monotonic() + 5
    while True:
        staging = list((Path(ctx.m.data) / 'stores' / 's').glob('staging-*'))
        if not staging or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert staging == [], f'the discarded file left {staging}'
