"""Receipts, trees in incoming/, the single-writer rule, verified writes and
moves, and blobs as files (the tools issue), point by point:

- after close, incoming/NAME stays as a receipt: a regular file with the
  blob's content and xattr user.blobfs.sha256 (blobs carry it too); its
  times, mode and owner can be set (the blob is unchanged); it can be
  renamed within incoming/ (any depth), hard-linked and removed (the blob
  stays); writing or truncating it starts a new version saved as a new blob
  (the old one stays); receipts go at rm, at unmount and after
  -o receipt_ttl=SECONDS;
- an open file ends as ONE blob: closes of descriptors that never wrote (a
  reader, a dup, a child inheriting a redirect) leave no blob of
  half-written content; a superseded fsync leaves none either; the blob
  exists when the last close() returns;
- mknod of a regular file, fallocate(1) and posix_fallocate work;
- directories at any depth in incoming/ (mkdir, listing, utimes, chown,
  rename, rm -r); incoming/ itself takes utimes and chown; symlinks and
  device nodes: EPERM;
- creating S/<hex> is a verified write (EIO at close when the content does
  not hash to the name); rename across stores: EXDEV (so mv copies);
  renaming a blob within its store: EPERM;
- a blob's mtime is its first-save time and survives a remount; a second
  rsync -a of a store out copies nothing.

The single-writer tests look at blobs only (the set before and after), so
that they fail for that rule alone; receipts are checked by their own tests.
Tests marked `backends` run on local and memory; those that remount stay
local.
"""

import errno
import os
import stat
import subprocess
import time

import pytest

from blobfs_test.files import EMPTY_SHA256, expect_errno, read_file, save, write_all
from blobfs_test.mounting import kill_daemon, unmount_dead_mount
from blobfs_test.trees import (BIG_SIZE, MiB, XATTR, assert_new_blobs, blob_set, get_hash_xattr,
                               run_ok, sha256)

KiB = 1 << 10


def inc(m, store, *parts):
    return m.path(store, 'incoming', *parts)


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, flags, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def assert_receipt(path, data):
    """`path` is a receipt of the blob of `data`."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise AssertionError(f'no receipt at {path} after close') from None
    assert stat.S_ISREG(st.st_mode), oct(st.st_mode)
    assert st.st_size == len(data)
    assert read_file(path) == data
    assert get_hash_xattr(path) == sha256(data)


def blob_stat(m, store, h):
    st = os.stat(m.path(store, h))
    return (st.st_mode, st.st_size, st.st_uid, st.st_gid, st.st_mtime_ns)


# --------------------------------------------------------------------------
# receipts


@pytest.mark.backends
@pytest.mark.parametrize('size', [0, 10, BIG_SIZE], ids=['empty', 'small', '3MiB'])
def test_receipt_stays_after_close(blobfs, store, size):
    data = os.urandom(size)
    h = save(blobfs.mnt, store, data, name='my file')
    assert 'my file' in os.listdir(inc(blobfs, store)), 'the receipt is not listed'
    assert_receipt(inc(blobfs, store, 'my file'), data)
    # the blob carries the same xattr
    assert get_hash_xattr(blobfs.path(store, h)) == h
    assert os.getxattr(blobfs.path(store, h), XATTR) == h.encode()


@pytest.mark.backends
@pytest.mark.parametrize('tool', ['cp', 'dd', 'redirect', 'tee', 'python'])
def test_receipt_left_by_tool(blobfs, store, tmp_path, tool):
    data = os.urandom(5000) + b'\n'
    src = tmp_path / 'source'
    src.write_bytes(data)
    dest = inc(blobfs, store, f'by {tool}')
    if tool == 'cp':
        run_ok(['cp', str(src), dest])
    elif tool == 'dd':
        run_ok(['dd', f'if={src}', f'of={dest}', 'bs=1k', 'conv=fsync', 'status=none'])
    elif tool == 'redirect':
        run_ok(f'cat "{src}" > "{dest}"', shell=True)
    elif tool == 'tee':
        run_ok(f'tee "{dest}" < "{src}" > /dev/null', shell=True)
    else:
        with open(dest, 'wb') as f:
            f.write(data)
    assert read_file(blobfs.path(store, sha256(data))) == data
    assert_receipt(dest, data)
    r = run_ok(['getfattr', '-n', XATTR, '--only-values', dest])
    assert r.stdout == sha256(data), repr(r.stdout)


@pytest.mark.backends
def test_receipt_times_mode_owner_can_be_set_and_the_blob_is_unchanged(blobfs, store):
    data = b'receipt attributes\n'
    h = save(blobfs.mnt, store, data, name='r')
    r = inc(blobfs, store, 'r')
    blob_before = blob_stat(blobfs, store, h)
    os.utime(r, ns=(1_111_111_111_222_333_444, 1_222_222_222_333_444_555))
    os.chmod(r, 0o600)
    os.chown(r, 1234, 5678)
    st = os.stat(r)
    assert st.st_mtime_ns == 1_222_222_222_333_444_555
    assert st.st_atime_ns == 1_111_111_111_222_333_444
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    os.chown(r, 0, 0)
    assert (os.stat(r).st_uid, os.stat(r).st_gid) == (0, 0)
    run_ok(['touch', '-d', '2001-02-03 04:05:06', r])
    assert time.gmtime(os.stat(r).st_mtime)[:3] == (2001, 2, 3)
    assert_receipt(r, data)
    assert blob_stat(blobfs, store, h) == blob_before, 'setting the receipt changed the blob'
    assert read_file(blobfs.path(store, h)) == data
    assert blob_set(blobfs.mnt, store) == {h}


@pytest.mark.backends
def test_receipt_rename_within_incoming_at_any_depth(blobfs, store):
    data, other = b'renamed receipt\n', b'the receipt renamed over\n'
    h = save(blobfs.mnt, store, data, name='r')
    h_other = save(blobfs.mnt, store, other, name='victim')
    os.makedirs(inc(blobfs, store, 'd1/d2/d3/d4/d5'))
    os.rename(inc(blobfs, store, 'r'), inc(blobfs, store, 'd1/d2/d3/d4/d5/r deep'))
    assert 'r' not in os.listdir(inc(blobfs, store))
    assert_receipt(inc(blobfs, store, 'd1/d2/d3/d4/d5/r deep'), data)
    os.rename(inc(blobfs, store, 'd1/d2/d3/d4/d5/r deep'), inc(blobfs, store, 'd1/up'))
    assert_receipt(inc(blobfs, store, 'd1/up'), data)
    # rename over another receipt: that receipt goes, its blob stays
    os.rename(inc(blobfs, store, 'd1/up'), inc(blobfs, store, 'victim'))
    assert_receipt(inc(blobfs, store, 'victim'), data)
    assert blob_set(blobfs.mnt, store) == {h, h_other}
    assert read_file(blobfs.path(store, h_other)) == other
    run_ok(['mv', inc(blobfs, store, 'victim'), inc(blobfs, store, 'd1/d2/by mv')])
    assert_receipt(inc(blobfs, store, 'd1/d2/by mv'), data)


@pytest.mark.backends
def test_receipt_hard_link(blobfs, store):
    data = b'hard-linked receipt\n'
    h = save(blobfs.mnt, store, data, name='a')
    os.link(inc(blobfs, store, 'a'), inc(blobfs, store, 'b'))
    run_ok(['ln', inc(blobfs, store, 'a'), inc(blobfs, store, 'c by ln')])
    for name in ('a', 'b', 'c by ln'):
        assert_receipt(inc(blobfs, store, name), data)
    assert blob_set(blobfs.mnt, store) == {h}
    os.unlink(inc(blobfs, store, 'a'))
    assert_receipt(inc(blobfs, store, 'b'), data)
    assert read_file(blobfs.path(store, h)) == data


@pytest.mark.backends
def test_removing_a_receipt_keeps_the_blob(blobfs, store):
    data = os.urandom(BIG_SIZE)
    h = save(blobfs.mnt, store, data, name='r1')
    save(blobfs.mnt, store, b'small', name='r2')
    assert sorted(os.listdir(inc(blobfs, store))) == ['r1', 'r2']
    os.unlink(inc(blobfs, store, 'r1'))
    run_ok(['rm', inc(blobfs, store, 'r2')])
    assert os.listdir(inc(blobfs, store)) == []
    expect_errno(errno.ENOENT, os.stat, inc(blobfs, store, 'r1'))
    assert blob_set(blobfs.mnt, store) == {h, sha256(b'small')}
    assert read_file(blobfs.path(store, h)) == data


@pytest.mark.backends
@pytest.mark.parametrize('how', ['O_TRUNC', 'append', 'pwrite', 'ftruncate', 'truncate'])
def test_writing_a_receipt_saves_a_new_blob(blobfs, store, how):
    old = b'0123456789 the first version\n'
    h_old = save(blobfs.mnt, store, old, name='r')
    r = inc(blobfs, store, 'r')
    if how == 'O_TRUNC':
        new = b'second version\n'
        write_file(r, new)
    elif how == 'append':
        new = old + b'more\n'
        run_ok(f'echo more >> "{r}"', shell=True)
    elif how == 'pwrite':
        new = b'01XY' + old[4:]
        fd = os.open(r, os.O_RDWR)
        try:
            assert os.pwrite(fd, b'XY', 2) == 2
        finally:
            os.close(fd)
    elif how == 'ftruncate':
        new = old[:5] + b'!'
        fd = os.open(r, os.O_RDWR)
        try:
            os.ftruncate(fd, 5)
            os.pwrite(fd, b'!', 5)
        finally:
            os.close(fd)
    else:
        # truncate by name, then append through a descriptor
        os.truncate(r, 3)
        assert os.stat(r).st_size == 3
        assert read_file(r) == old[:3]
        new = old[:3] + b'Z'
        write_file(r, b'Z', os.O_WRONLY | os.O_APPEND)
    h_new = sha256(new)
    blobs = blob_set(blobfs.mnt, store)
    assert h_old in blobs, 'the old version\'s blob went'
    assert read_file(blobfs.path(store, h_old)) == old
    assert h_new in blobs, 'the new version was not saved'
    assert read_file(blobfs.path(store, h_new)) == new
    allowed = {h_old, h_new} | ({sha256(old[:3])} if how == 'truncate' else set())
    assert blobs <= allowed, f'stray blobs: {blobs - allowed}'
    assert_receipt(r, new)


def test_receipts_go_at_unmount(blobfs, store):
    h = save(blobfs.mnt, store, b'kept', name='r')
    os.makedirs(inc(blobfs, store, 'dir'))
    save(blobfs.mnt, store, b'kept too', name='dir/r2')
    assert sorted(os.listdir(inc(blobfs, store))) == ['dir', 'r']
    blobfs.remount()
    assert os.listdir(inc(blobfs, store)) == []
    assert blob_set(blobfs.mnt, store) == {h, sha256(b'kept too')}
    assert read_file(blobfs.path(store, h)) == b'kept'


@pytest.mark.backends
def test_receipt_ttl(make_mount):
    m = make_mount(extra_args=['-o', 'receipt_ttl=2'])
    os.mkdir(m.path('s'))
    t0 = time.monotonic()
    h = save(m.mnt, 's', b'short-lived receipt', name='r')
    assert 'r' in os.listdir(inc(m, 's')), 'no receipt right after close'
    assert_receipt(inc(m, 's', 'r'), b'short-lived receipt')
    while 'r' in os.listdir(inc(m, 's')):
        assert time.monotonic() - t0 < 8, 'the receipt is still listed 8 s after close (ttl 2 s)'
        time.sleep(0.2)
    assert time.monotonic() - t0 >= 1.5, 'the receipt went long before its ttl'
    assert blob_set(m.mnt, 's') == {h}
    assert read_file(m.path('s', h)) == b'short-lived receipt'


# --------------------------------------------------------------------------
# an open file ends as ONE blob


@pytest.mark.backends
def test_one_blob_brace_group_redirect(blobfs, store):
    # the empty blob saved before by someone else stays (the shell's early
    # close of an empty file must not take it back)
    save(blobfs.mnt, store, b'', name='empty before')
    before = blob_set(blobfs.mnt, store)
    run_ok(f'{{ echo a; echo b; }} > "{inc(blobfs, store, "log")}"', shell=True)
    assert_new_blobs(blobfs.mnt, store, before, [b'a\nb\n'])
    assert EMPTY_SHA256 in blob_set(blobfs.mnt, store), 'the earlier empty blob was deleted'


@pytest.mark.backends
def test_one_blob_loop_of_external_commands(blobfs, store):
    # a blob equal to one of the intermediate states, saved before, stays
    save(blobfs.mnt, store, b'1\n2\n', name='an intermediate state')
    before = blob_set(blobfs.mnt, store)
    run_ok(f"sh -c 'for i in $(seq 200); do /bin/echo $i; done' > "
           f'"{inc(blobfs, store, "log")}"', shell=True)
    final = ''.join(f'{i}\n' for i in range(1, 201)).encode()
    assert_new_blobs(blobfs.mnt, store, before, [final])
    assert read_file(blobfs.path(store, sha256(b'1\n2\n'))) == b'1\n2\n'


@pytest.mark.backends
def test_one_blob_exec_fd_with_a_subshell(blobfs, store):
    before = blob_set(blobfs.mnt, store)
    f = inc(blobfs, store, 'f')
    run_ok(['bash', '-c', f'exec 3>"{f}"; echo x >&3; (true); echo y >&3; exec 3>&-'])
    assert_new_blobs(blobfs.mnt, store, before, [b'x\ny\n'])


@pytest.mark.backends
def test_one_blob_with_a_reader_opening_and_closing_during_the_write(blobfs, store):
    before = blob_set(blobfs.mnt, store)
    path = inc(blobfs, store, 'log')
    head, tail = os.urandom(200 * KiB), os.urandom(BIG_SIZE)
    w = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(w, head)
        r = os.open(path, os.O_RDONLY)          # a reader in this process
        assert os.read(r, 10) == head[:10]
        os.close(r)
        out = subprocess.run(['cat', path], capture_output=True, timeout=60)   # another one
        assert out.returncode == 0, f'cat of the file being written: {out.stderr!r}'
        assert out.stdout == head
        write_all(w, tail)
    finally:
        os.close(w)
    assert_new_blobs(blobfs.mnt, store, before, [head + tail])


@pytest.mark.backends
def test_one_blob_when_a_dup_and_a_child_close_the_descriptor(blobfs, store):
    before = blob_set(blobfs.mnt, store)
    w = os.open(inc(blobfs, store, 'f'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(w, b'part one, ')
        os.close(os.dup(w))                                    # a dup that never wrote
        subprocess.run(['true'], pass_fds=(w,), check=True)    # a child inheriting it
        write_all(w, b'part two')
    finally:
        os.close(w)
    assert_new_blobs(blobfs.mnt, store, before, [b'part one, part two'])


@pytest.mark.backends
def test_fsync_in_the_middle_leaves_no_superseded_blob(blobfs, store):
    first, second = os.urandom(70 * KiB), os.urandom(2 * MiB)
    before = blob_set(blobfs.mnt, store)
    w = os.open(inc(blobfs, store, 'f'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(w, first)
        os.fsync(w)
        write_all(w, second)
    finally:
        os.close(w)
    assert_new_blobs(blobfs.mnt, store, before, [first + second])
    # an fsync that is not superseded: its content is the blob
    w = os.open(inc(blobfs, store, 'g'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(w, b'fsynced, then closed')
        os.fsync(w)
    finally:
        os.close(w)
    assert_new_blobs(blobfs.mnt, store, before, [first + second, b'fsynced, then closed'])
    # a superseded fsync whose content was already a blob: that blob stays
    h_known = save(blobfs.mnt, store, b'already stored', name='known')
    w = os.open(inc(blobfs, store, 'h'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(w, b'already stored')
        os.fsync(w)
        write_all(w, b' and more')
    finally:
        os.close(w)
    assert read_file(blobfs.path(store, h_known)) == b'already stored'
    assert read_file(blobfs.path(store, sha256(b'already stored and more'))) == \
        b'already stored and more'


def test_fsync_in_the_middle_is_durable(make_mount):
    """What fsync() returned for survives a crash of the daemon while the
    file is still open."""
    m = make_mount()
    os.mkdir(m.path('s'))
    data = os.urandom(100 * KiB)
    w = os.open(inc(m, 's', 'f'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(w, data)
        os.fsync(w)
        kill_daemon(m)
    finally:
        try:
            os.close(w)
        except OSError:
            pass    # the daemon is gone
    assert unmount_dead_mount(m.mnt).returncode == 0
    m.mount()
    assert read_file(m.path('s', sha256(data))) == data


@pytest.mark.backends
def test_the_blob_exists_when_the_last_close_returns(blobfs, store):
    for i, size in enumerate([0, 1, 4095, 65537, MiB, BIG_SIZE] * 2):
        data = os.urandom(size) if size else b''
        w = os.open(inc(blobfs, store, f'f{i}'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(w, data)
            os.close(os.dup(w))
        finally:
            os.close(w)
        st = os.stat(blobfs.path(store, sha256(data)))       # at once, no retry
        assert st.st_size == size


# --------------------------------------------------------------------------
# mknod, fallocate


@pytest.mark.backends
def test_mknod_of_a_regular_file(blobfs, store):
    path = inc(blobfs, store, 'made by mknod')
    os.mknod(path, stat.S_IFREG | 0o640)
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    assert 'made by mknod' in os.listdir(inc(blobfs, store))
    write_file(path, b'written after mknod', os.O_WRONLY)
    h = sha256(b'written after mknod')
    blobs = blob_set(blobfs.mnt, store)
    # the empty file made by mknod may or may not have been saved on its own
    assert h in blobs and blobs <= {h, EMPTY_SHA256}, blobs
    assert read_file(blobfs.path(store, h)) == b'written after mknod'
    assert_receipt(path, b'written after mknod')


@pytest.mark.backends
def test_fallocate_command(blobfs, store):
    before = blob_set(blobfs.mnt, store)
    path = inc(blobfs, store, 'f')
    run_ok(['fallocate', '-l', '1M', path])
    zeros = bytes(MiB)
    assert_new_blobs(blobfs.mnt, store, before, [zeros])
    assert_receipt(path, zeros)


@pytest.mark.backends
def test_posix_fallocate(blobfs, store):
    before = blob_set(blobfs.mnt, store)
    fd = os.open(inc(blobfs, store, 'f'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, b'head')
        os.posix_fallocate(fd, 0, 200_000)
        assert os.fstat(fd).st_size == 200_000
    finally:
        os.close(fd)
    fd = os.open(inc(blobfs, store, 'g'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.posix_fallocate(fd, 0, BIG_SIZE)
    finally:
        os.close(fd)
    first = b'head' + bytes(200_000 - 4)
    assert_new_blobs(blobfs.mnt, store, before, [first, bytes(BIG_SIZE)])
    assert_receipt(inc(blobfs, store, 'f'), first)


# --------------------------------------------------------------------------
# trees in incoming/


@pytest.mark.backends
def test_directories_in_incoming(blobfs, store):
    deep = inc(blobfs, store, 'top', 'a b', 'ç', 'd', 'e')          # 5 deep
    os.makedirs(deep)
    contents = {'top/f0': b'level one\n', 'top/a b/f1': b'',
                'top/a b/ç/d/e/f5': os.urandom(BIG_SIZE), 'top/a b/ç/dup': b'level one\n'}
    for rel, data in contents.items():
        write_file(inc(blobfs, store, rel), data)
    assert sorted(os.listdir(inc(blobfs, store, 'top'))) == ['a b', 'f0']
    assert sorted(os.listdir(inc(blobfs, store, 'top', 'a b'))) == ['f1', 'ç']
    assert sorted(os.listdir(inc(blobfs, store, 'top', 'a b', 'ç'))) == ['d', 'dup']
    assert stat.S_ISDIR(os.stat(deep).st_mode)
    # utimes and chown of directories
    os.utime(inc(blobfs, store, 'top', 'a b'), ns=(1_000_000_000, 1_500_000_000))
    assert os.stat(inc(blobfs, store, 'top', 'a b')).st_mtime_ns == 1_500_000_000
    os.chown(deep, 1234, 4321)
    assert (os.stat(deep).st_uid, os.stat(deep).st_gid) == (1234, 4321)
    os.chown(deep, 0, 0)
    assert (os.stat(deep).st_uid, os.stat(deep).st_gid) == (0, 0)
    # every file is a blob and left a receipt at its path
    assert blob_set(blobfs.mnt, store) == {sha256(d) for d in contents.values()}
    for rel, data in contents.items():
        assert_receipt(inc(blobfs, store, rel), data)
    # rename of a directory
    os.rename(inc(blobfs, store, 'top'), inc(blobfs, store, 'renamed top'))
    assert os.listdir(inc(blobfs, store)) == ['renamed top']
    for rel, data in contents.items():
        assert_receipt(inc(blobfs, store, 'renamed ' + rel), data)
    os.rename(inc(blobfs, store, 'renamed top', 'a b', 'ç'), inc(blobfs, store, 'moved up'))
    assert_receipt(inc(blobfs, store, 'moved up', 'd', 'e', 'f5'), contents['top/a b/ç/d/e/f5'])
    # rm -r: the tree goes, the blobs stay
    run_ok(['rm', '-r', inc(blobfs, store, 'renamed top'), inc(blobfs, store, 'moved up')])
    assert os.listdir(inc(blobfs, store)) == []
    assert blob_set(blobfs.mnt, store) == {sha256(d) for d in contents.values()}
    # symlinks and device nodes are refused in a subdirectory too
    os.mkdir(inc(blobfs, store, 'sub'))
    expect_errno(errno.EPERM, os.symlink, 'target', inc(blobfs, store, 'sub', 'link'))
    expect_errno(errno.EPERM, os.mknod, inc(blobfs, store, 'sub', 'dev'),
                 stat.S_IFCHR | 0o600, os.makedev(1, 3))
    # rmdir of an empty subdirectory
    os.rmdir(inc(blobfs, store, 'sub'))
    assert os.listdir(inc(blobfs, store)) == []


@pytest.mark.backends
def test_incoming_itself_takes_utimes_and_chown(blobfs, store):
    d = inc(blobfs, store)
    os.utime(d, ns=(2_000_000_000, 3_000_000_000))
    assert os.stat(d).st_mtime_ns == 3_000_000_000
    os.chown(d, 1234, 4321)
    assert (os.stat(d).st_uid, os.stat(d).st_gid) == (1234, 4321)
    os.chown(d, 0, 0)
    assert (os.stat(d).st_uid, os.stat(d).st_gid) == (0, 0)
    run_ok(['touch', d])


@pytest.mark.backends
def test_symlinks_and_device_nodes_are_refused(blobfs, store):
    expect_errno(errno.EPERM, os.symlink, 'target', inc(blobfs, store, 'link'))
    expect_errno(errno.EPERM, os.mknod, inc(blobfs, store, 'chr'),
                 stat.S_IFCHR | 0o600, os.makedev(1, 3))
    expect_errno(errno.EPERM, os.mknod, inc(blobfs, store, 'blk'),
                 stat.S_IFBLK | 0o600, os.makedev(7, 0))
    assert os.listdir(inc(blobfs, store)) == []


# --------------------------------------------------------------------------
# verified writes and moves


@pytest.mark.backends
@pytest.mark.parametrize('size', [0, 100, BIG_SIZE], ids=['empty', 'small', '3MiB'])
def test_verified_write_of_a_blob_name(blobfs, store, size):
    data = os.urandom(size) if size else b''
    h = sha256(data)
    write_file(blobfs.path(store, h), data, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert blob_set(blobfs.mnt, store) == {h}
    assert read_file(blobfs.path(store, h)) == data
    assert os.stat(blobfs.path(store, h)).st_size == size


@pytest.mark.backends
@pytest.mark.parametrize('what', ['other content', 'a prefix', 'empty'])
def test_verified_write_with_the_wrong_content_fails_with_eio(blobfs, store, what):
    right = os.urandom(2 * MiB)
    wrong = {'other content': os.urandom(2 * MiB), 'a prefix': right[:MiB],
             'empty': b''}[what]
    h = sha256(right)
    fd = os.open(blobfs.path(store, h), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, wrong)
    finally:
        expect_errno(errno.EIO, os.close, fd)
    assert blob_set(blobfs.mnt, store) == set(), 'something was stored'
    expect_errno(errno.ENOENT, os.stat, blobfs.path(store, h))
    expect_errno(errno.ENOENT, os.stat, blobfs.path(store, sha256(wrong)))


@pytest.mark.backends
def test_rename_across_stores_is_exdev(blobfs):
    os.mkdir(blobfs.path('a'))
    os.mkdir(blobfs.path('b'))
    h = save(blobfs.mnt, 'a', b'stays in a', name='r')
    expect_errno(errno.EXDEV, os.rename, blobfs.path('a', h), blobfs.path('b', h))
    expect_errno(errno.EXDEV, os.rename, inc(blobfs, 'a', 'r'), inc(blobfs, 'b', 'r'))
    assert blob_set(blobfs.mnt, 'a') == {h}
    assert blob_set(blobfs.mnt, 'b') == set()
    assert_receipt(inc(blobfs, 'a', 'r'), b'stays in a')


@pytest.mark.backends
def test_mv_of_a_receipt_between_stores(blobfs):
    os.mkdir(blobfs.path('a'))
    os.mkdir(blobfs.path('b'))
    data = os.urandom(BIG_SIZE)
    h = save(blobfs.mnt, 'a', data, name='r')
    run_ok(['mv', inc(blobfs, 'a', 'r'), inc(blobfs, 'b') + '/'])
    assert blob_set(blobfs.mnt, 'b') == {h}
    assert read_file(blobfs.path('b', h)) == data
    assert_receipt(inc(blobfs, 'b', 'r'), data)
    assert os.listdir(inc(blobfs, 'a')) == []
    assert blob_set(blobfs.mnt, 'a') == {h}, 'removing the receipt removed the blob'


@pytest.mark.backends
def test_rename_of_a_blob_within_its_store_is_eperm(blobfs, store):
    h = save(blobfs.mnt, store, b'fixed name')
    other = sha256(b'another name')
    expect_errno(errno.EPERM, os.rename, blobfs.path(store, h), blobfs.path(store, other))
    expect_errno(errno.EPERM, os.rename, blobfs.path(store, h), inc(blobfs, store, 'x'))
    assert h in blob_set(blobfs.mnt, store)
    assert other not in blob_set(blobfs.mnt, store)


# --------------------------------------------------------------------------
# blobs as files: mtime, rsync out


@pytest.mark.backends
def test_blob_mtime_is_its_first_save_time(blobfs, store):
    time.sleep(2.1)     # the mount's own time is well before the save
    t0 = time.time_ns()
    h = save(blobfs.mnt, store, b'when was I saved', name='a')
    t1 = time.time_ns()
    m1 = os.stat(blobfs.path(store, h)).st_mtime_ns
    slack = 1_000_000_000   # a time kept in whole seconds is fine
    assert t0 - slack <= m1 <= t1 + slack, (
        f'blob mtime {m1} is not its save time (between {t0} and {t1})')
    time.sleep(1.1)
    save(blobfs.mnt, store, b'when was I saved', name='again')    # already there
    assert os.stat(blobfs.path(store, h)).st_mtime_ns == m1, 'a second save changed the mtime'


def rsync_out(m, store, dest):
    """rsync -a of the blobs of a store (not incoming/) to a local dir:
    (itemized file lines, regular files transferred)."""
    r = run_ok(['rsync', '-a', '--itemize-changes', '--stats', '--exclude=/incoming',
                m.path(store) + '/', str(dest) + '/'])
    files = [line for line in r.stdout.splitlines()
             if line[:2] in ('>f', 'cf', '.f', 'hf')]
    n = [line for line in r.stdout.splitlines()
         if line.startswith('Number of regular files transferred:')]
    assert n, r.stdout
    return files, int(n[0].split(':')[1].replace(',', ''))


@pytest.mark.backends
def test_second_rsync_of_a_store_out_copies_nothing(blobfs, store, tmp_path):
    contents = [b'', b'one', os.urandom(100 * KiB), os.urandom(BIG_SIZE)]
    for i, c in enumerate(contents):
        save(blobfs.mnt, store, c, name=f'f{i}')
    files, n = rsync_out(blobfs, store, tmp_path / 'out')
    assert n == len(contents)
    for c in contents:
        assert (tmp_path / 'out' / sha256(c)).read_bytes() == c
    files, n = rsync_out(blobfs, store, tmp_path / 'out')
    assert (files, n) == ([], 0), f'the second rsync copied again: {files}'


def test_blob_mtime_survives_a_remount(blobfs, store, tmp_path):
    contents = [b'', b'one', os.urandom(100 * KiB), os.urandom(BIG_SIZE)]
    hexes = [save(blobfs.mnt, store, c, name=f'f{i}') for i, c in enumerate(contents)]
    mtimes = {h: os.stat(blobfs.path(store, h)).st_mtime_ns for h in hexes}
    files, n = rsync_out(blobfs, store, tmp_path / 'out')
    assert n == len(contents)
    time.sleep(1.1)
    blobfs.remount()
    after = {h: os.stat(blobfs.path(store, h)).st_mtime_ns for h in hexes}
    assert after == mtimes, 'blob mtimes changed across the remount'
    files, n = rsync_out(blobfs, store, tmp_path / 'out')
    assert (files, n) == ([], 0), f'rsync after the remount copied again: {files}'


@pytest.mark.backends
def test_msync_saves_that_moment_and_the_last_close_keeps_one_blob(blobfs, store):
    import mmap
    path = inc(blobfs, store, 'mapped')
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, 8192)
        m = mmap.mmap(fd, 8192)
        m[0:5] = b'hello'
        m.flush()  # msync(MS_SYNC): the content of this moment is saved
        first = b'hello' + bytes(8187)
        assert sha256(first) in blob_set(blobfs.mnt, store)
        m[5:11] = b' world'
        m.close()
    finally:
        os.close(fd)
    last = b'hello world' + bytes(8181)
    assert blob_set(blobfs.mnt, store) == {sha256(last)}
    assert_receipt(path, last)


@pytest.mark.backends
def test_cp_and_mv_onto_a_blob_the_other_store_has(blobfs):
    """The same content in two stores is two files (two inode numbers), so
    cp and mv do not stop at "are the same file"; a blob is read-only, so
    plain cp onto one answers EACCES as onto any read-only file, and cp -f
    and mv (which remove and copy) work."""
    os.mkdir(blobfs.path('a'))
    os.mkdir(blobfs.path('b'))
    h = save(blobfs.mnt, 'a', b'in both stores', name='x')
    save(blobfs.mnt, 'b', b'in both stores', name='x')
    assert os.stat(blobfs.path('a', h)).st_ino != os.stat(blobfs.path('b', h)).st_ino
    r = subprocess.run(['cp', blobfs.path('a', h), blobfs.path('b')], capture_output=True)
    assert r.returncode == 1 and b'Permission denied' in r.stderr, r
    run_ok(['cp', '-f', blobfs.path('a', h), blobfs.path('b')])
    run_ok(['mv', blobfs.path('a', h), blobfs.path('b')])
    assert blob_set(blobfs.mnt, 'a') == set()
    assert blob_set(blobfs.mnt, 'b') == {h}
    assert read_file(blobfs.path('b', h)) == b'in both stores'
