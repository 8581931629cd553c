"""The in-memory backend: `blobfs [mount] [options] memory: MNT`.

What only memory has: it mounts and unmounts cleanly, in the foreground and
daemonized; nothing is written to disk while it serves (the daemon's
/proc/<pid>/io write_bytes, checked first against the local backend, which
must make it grow by what it saves; its working directory and TMPDIR stay
empty; it holds no file of /tmp open); -o memory_max=SIZE ends in ENOSPC
at write() or close() with every earlier blob intact, and a delete makes
room again; the stores vanish with the mount; fsck and compact refuse
memory:. The namespace and errno tests run on memory too (the tests marked
`backends`). All of these need `memory` in BLOBFS_BACKENDS (the default).
"""

import errno
import hashlib
import os
import stat
import time

import pytest

from blobfs_test.common import bpath, run
from blobfs_test.files import (blob_names, expect_errno, read_blob_checked, read_file, save,
                               write_all)
from blobfs_test.mounting import MEMORY, is_mounted, mounts_under, pid_alive

KiB = 1 << 10
MiB = 1 << 20


def write_bytes(pid):
    """Bytes the process (all its threads) caused to be sent to storage:
    write_bytes of /proc/<pid>/io, counted when a page of a disk-backed
    file is dirtied (or a direct write is issued)."""
    with open(f'/proc/{pid}/io') as f:
        for line in f:
            if line.startswith('write_bytes:'):
                return int(line.split()[1])
    raise AssertionError(f'no write_bytes in /proc/{pid}/io')


def open_files(pid):
    """The regular files the process has open, or mapped shared and
    writable (the only mappings that write a file; the daemon's own binary
    and libraries are mapped read-only): {path: how} (memfd excluded)."""
    found = {}
    fd_dir = f'/proc/{pid}/fd'
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f'{fd_dir}/{fd}')
            st = os.stat(f'{fd_dir}/{fd}')
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and not target.startswith('/memfd:'):
            found[target] = f'fd {fd}'
    with open(f'/proc/{pid}/maps') as f:
        for line in f:
            fields = line.split(None, 5)
            if (len(fields) == 6 and fields[5].startswith('/')
                    and 'w' in fields[1] and 's' in fields[1]):
                found.setdefault(fields[5].strip(), 'mapped')
    return found


def _payloads(total, piece):
    return [os.urandom(piece) for _ in range(total // piece)]


def test_memory_mount_in_the_foreground(make_mount, memory_backend):
    m = make_mount(backend='memory')
    assert m.data == MEMORY and m.backend == 'memory'
    assert os.listdir(m.mnt) == []
    os.mkdir(m.path('s'))
    h = save(m.mnt, 's', b'in memory')
    assert read_file(m.path('s', h)) == b'in memory'
    assert m.umount() == 0
    assert not m.mounted
    assert os.listdir(m.cwd) == [], 'the daemon left files in its working directory'


@pytest.mark.parametrize('mount_word', [False, True], ids=['plain', 'mount-word'])
def test_memory_daemonized_mounts_and_unmounts_cleanly(daemon_runner, tmp_path, memory_backend,
                                                       mount_word):
    mnt, cwd = tmp_path / 'mnt', tmp_path / 'cwd'
    mnt.mkdir()
    cwd.mkdir()
    rc, out, err = daemon_runner.run((['mount'] if mount_word else []) + [MEMORY, mnt],
                                     mnt=mnt, cwd=cwd)
    assert rc == 0, f'`blobfs memory: MNT` exited {rc}\n{out}{err}'
    assert is_mounted(str(mnt)), 'the parent exited before the mount was up'
    assert not os.path.lexists(cwd / MEMORY), \
        'blobfs made a directory "memory:": this binary has no memory backend'
    pid = daemon_runner.daemon_pid(str(mnt))
    os.mkdir(bpath(mnt, 's'))
    h = save(mnt, 's', b'daemon in memory')
    assert read_file(bpath(mnt, 's', h)) == b'daemon in memory'
    status = daemon_runner.stop(mnt, pid)
    assert status is not None, f'daemon {pid} still running after unmount'
    if daemon_runner.subreaper:
        assert status == 0, f'daemon exited with status {status}'
    assert not pid_alive(pid)
    assert not is_mounted(str(mnt))
    assert os.listdir(cwd) == []


def test_memory_writes_nothing_to_disk(make_mount, tmp_path, metric, memory_backend):
    """20 MiB saved through a memory mount: the daemon's write_bytes does not
    grow by them, and no file appears or is held open on disk. First the
    same saves on a local mount, to show that the counter sees them here."""
    blobs = _payloads(20 * MiB, 2 * MiB)
    total = sum(len(b) for b in blobs)

    local = make_mount('local', backend='local')
    os.mkdir(local.path('s'))
    before = write_bytes(local.pid)
    for i, data in enumerate(blobs):
        save(local.mnt, 's', data, name=f'b{i}')
    local_grew = write_bytes(local.pid) - before
    local.umount()
    assert local_grew >= total, (
        f'control failed: the local daemon saved {total} bytes but its write_bytes grew by '
        f'{local_grew}: the counter does not see disk writes here, so it cannot tell '
        f'anything about memory')

    tmpdir = tmp_path / 'daemon-tmpdir'
    tmpdir.mkdir()
    m = make_mount('mem', backend='memory', env={'TMPDIR': str(tmpdir)})
    watched = ('/tmp/', str(tmp_path) + '/')
    logs = {str(p) for p in m.log_files}
    os.mkdir(m.path('s'))
    before = write_bytes(m.pid)
    held = {}
    # one file written in two halves, with a look at what the daemon holds
    # open while it has half a blob in hand
    fd = os.open(m.path('s', 'incoming', 'half'), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        write_all(fd, blobs[0][:MiB])
        held.update(open_files(m.pid))
        write_all(fd, blobs[0][MiB:])
    finally:
        os.close(fd)
    for i, data in enumerate(blobs[1:]):
        save(m.mnt, 's', data, name=f'b{i}')
    held.update(open_files(m.pid))
    for data in blobs:
        h = hashlib.sha256(data).hexdigest()
        assert read_blob_checked(m.path('s', h), data) == data
    mem_grew = write_bytes(m.pid) - before
    metric(f'write_bytes while saving {total} bytes: local daemon +{local_grew}, '
           f'memory daemon +{mem_grew}')
    assert mem_grew < MiB, (f'the memory daemon wrote {mem_grew} bytes to storage while '
                            f'{total} bytes were saved')
    on_disk = {p: how for p, how in held.items()
               if p.startswith(watched) and p not in logs}
    assert on_disk == {}, f'the memory daemon held files on disk: {on_disk}'
    assert os.listdir(m.cwd) == [], 'files appeared in the daemon\'s working directory'
    assert os.listdir(tmpdir) == [], 'files appeared in the daemon\'s TMPDIR'


def test_memory_max_enospc_then_a_delete_makes_room(make_mount, metric, memory_backend):
    m = make_mount(backend='memory', extra_args=['-o', 'memory_max=4M'])
    os.mkdir(m.path('s'))
    saved = {}
    failure = None
    for i in range(64):      # 64 x 512 KiB = 32 MiB, far past 4 MiB
        data = os.urandom(512 * KiB)
        fd = os.open(m.path('s', 'incoming', f'f{i}'), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            write_all(fd, data)
        except OSError as e:
            failure = ('write', e)
        finally:
            try:
                os.close(fd)
            except OSError as e:
                failure = failure or ('close', e)
        if failure:
            break
        saved[hashlib.sha256(data).hexdigest()] = data
    assert failure is not None, f'{len(saved)} saves of 512 KiB with memory_max=4M, no error'
    where, e = failure
    assert e.errno == errno.ENOSPC, f'{where}() failed with {errno.errorcode.get(e.errno)}: {e}'
    metric(f'memory_max=4M: {len(saved)} blobs of 512 KiB saved, then ENOSPC at {where}()')
    assert len(saved) >= 2, 'not even 1 MiB of 4 fitted'
    assert sum(map(len, saved.values())) <= 4 * MiB
    expect_errno(errno.ENOENT, os.stat, m.path('s', hashlib.sha256(data).hexdigest()))
    assert set(blob_names(m.mnt, 's')) == set(saved)
    for h, d in saved.items():
        assert read_blob_checked(m.path('s', h), d) == d

    victim = next(iter(saved))
    os.unlink(m.path('s', victim))
    del saved[victim]
    # The failed file's memory goes at its release, which the kernel sends
    # after close() returned: allow it a moment.
    fresh = os.urandom(256 * KiB)
    deadline = time.monotonic() + 5
    while True:
        try:
            h = save(m.mnt, 's', fresh, name='after-rm')
            break
        except OSError as e:
            if e.errno != errno.ENOSPC or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert read_blob_checked(m.path('s', h), fresh) == fresh
    for h2, d in saved.items():
        assert read_blob_checked(m.path('s', h2), d) == d
    assert set(blob_names(m.mnt, 's')) == set(saved) | {h}


def test_memory_stores_vanish_with_the_mount(make_mount, memory_backend):
    m = make_mount(backend='memory', mount_word=True)    # blobfs mount -f memory: MNT
    for name in ('s', 't'):
        os.mkdir(m.path(name))
        save(m.mnt, name, os.urandom(300 * KiB))
    assert sorted(os.listdir(m.mnt)) == ['s', 't']
    m.remount()
    assert os.listdir(m.mnt) == []
    expect_errno(errno.ENOENT, os.stat, m.path('s'))
    os.mkdir(m.path('s'))                 # the name is free, the store empty
    assert os.listdir(m.path('s')) == ['incoming']
    assert os.listdir(m.cwd) == []


@pytest.mark.parametrize('command', [['fsck'], ['fsck', '--repair'], ['compact']],
                         ids=['fsck', 'fsck-repair', 'compact'])
def test_offline_commands_refuse_memory(blobfs_bin, tmp_path, memory_backend, command):
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    r = run([blobfs_bin] + command + [MEMORY], cwd=cwd, text=True, timeout=60)
    assert r.returncode != 0, f'`blobfs {" ".join(command)} memory:` exited 0\n{r.stdout}'
    assert r.returncode > 0, f'died from signal {-r.returncode}\n{r.stderr}'
    assert r.stderr.strip(), 'refused without a message on stderr'
    assert os.listdir(cwd) == [], f'it created {os.listdir(cwd)} in its working directory'
    assert not mounts_under(tmp_path)
