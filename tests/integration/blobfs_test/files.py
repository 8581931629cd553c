"""Files on the mount: saving a blob through incoming/, reading it back,
asserting an errno, and measuring a directory tree on disk."""

import errno
import fcntl
import hashlib
import os
import re
import stat
import subprocess
import sys

from .common import bpath


EMPTY_SHA256 = hashlib.sha256(b'').hexdigest()

HEX64 = re.compile(r'^[0-9a-f]{64}$')


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


XATTR_SHA256 = 'user.blobfs.sha256'


def assert_receipt(path, data):
    """`path` (under incoming/) is the receipt of a saved file: a regular
    file whose content is `data` and whose xattr user.blobfs.sha256 is the
    SHA-256 hex of `data`."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise AssertionError(f'no receipt at {path!r} after close') from None
    assert stat.S_ISREG(st.st_mode), f'{path!r}: mode {oct(st.st_mode)}'
    assert st.st_size == len(data), f'{path!r}: size {st.st_size}, expected {len(data)}'
    assert read_file(path) == data, f'{path!r}: content differs'
    h = hashlib.sha256(data).hexdigest()
    assert os.getxattr(path, XATTR_SHA256) == h.encode(), f'{path!r}: xattr {XATTR_SHA256}'


def clear_incoming(mnt, store):
    """Remove everything under mnt/store/incoming/ (receipts, directories),
    as `rm -r S/incoming/*` does; the blobs stay."""
    top = bpath(mnt, store, 'incoming')
    for name in os.listdir(top):
        p = os.path.join(top, name)
        if stat.S_ISDIR(os.lstat(p).st_mode):
            subprocess.run(['rm', '-r', '--', p], check=True, timeout=60)
        else:
            os.unlink(p)


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


def free_bytes(path):
    """Bytes available to unprivileged users on the file system of `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


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
