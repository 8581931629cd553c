"""Persistence across remounts, pack files on disk, the DATADIR lock, fsck,
the command line and daemon mode (without -f)."""

import errno
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from blobfs_test import mounting
from blobfs_test.common import bpath, run
from blobfs_test.files import du_bytes, expect_errno, read_file, save, write_all
from blobfs_test.mounting import is_mounted
from blobfs_test.packs import pack_files


def fsck(binary, datadir, **kwargs):
    return run([binary, 'fsck', str(datadir)], text=True, **kwargs)


# --------------------------------------------------------------------------
# persistence


def test_persistence_across_remount(blobfs, blobfs_bin):
    m = blobfs
    weird = b'st\xffre name'
    for s in ('s1', 's2', 'empty', 'reborn'):
        os.mkdir(m.path(s))
    os.mkdir(m.path(weird))
    blobs = {}
    for name, data in [('a', os.urandom(1000)), ('b', os.urandom(200000)),
                       ('c', b''), ('d', os.urandom(3 * 65536 + 1))]:
        blobs[name] = (save(m.mnt, 's1', data, name=name), data)
    blobs['big'] = (save(m.mnt, 's1', os.urandom(3 << 20), name='big'), None)
    blobs['big'] = (blobs['big'][0], read_file(m.path('s1', blobs['big'][0])))
    deleted = save(m.mnt, 's1', b'deleted before unmount', name='x')
    os.unlink(m.path('s1', deleted))
    deleted_big = save(m.mnt, 's1', os.urandom(2 << 20), name='xbig')
    os.unlink(m.path('s1', deleted_big))
    resaved_data = b'deleted then saved again'
    resaved = save(m.mnt, 's1', resaved_data, name='y')
    os.unlink(m.path('s1', resaved))
    assert save(m.mnt, 's1', resaved_data, name='y') == resaved
    destroyed = save(m.mnt, 's2', b'in a destroyed store')
    assert run(['rm', '-r', m.path('s2')]).returncode == 0
    old_reborn = save(m.mnt, 'reborn', b'from the first life of reborn')
    assert run(['rm', '-r', m.path('reborn')]).returncode == 0
    os.mkdir(m.path('reborn'))
    weird_blob = save(m.mnt, weird, b'weird store content')

    expected_s1 = sorted([h for h, _ in blobs.values()] + [resaved, 'incoming'])

    def check():
        assert sorted(os.listdir(os.fsencode(m.mnt))) == sorted(
            [b's1', b'empty', b'reborn', weird])
        assert sorted(os.listdir(m.path('s1'))) == expected_s1
        for h, data in blobs.values():
            assert read_file(m.path('s1', h)) == data
            assert os.stat(m.path('s1', h)).st_size == len(data)
        assert read_file(m.path('s1', resaved)) == resaved_data
        expect_errno(errno.ENOENT, os.stat, m.path('s1', deleted))
        expect_errno(errno.ENOENT, os.stat, m.path('s1', deleted_big))
        expect_errno(errno.ENOENT, os.stat, m.path('s2'))
        expect_errno(errno.ENOENT, os.stat, m.path('s2', destroyed))
        assert os.listdir(m.path('empty')) == ['incoming']
        assert os.listdir(m.path('reborn')) == ['incoming']
        expect_errno(errno.ENOENT, os.stat, m.path('reborn', old_reborn))
        assert read_file(m.path(weird, weird_blob)) == b'weird store content'

    check()
    m.remount()
    check()
    assert pack_files(m.data), 'no DATADIR/stores/*/pack-*.pack files'

    # work after a remount is kept too, and a second remount changes nothing
    more = save(m.mnt, 's1', b'saved in the second life')
    os.unlink(m.path('s1', blobs['a'][0]))
    m.remount()
    assert read_file(m.path('s1', more)) == b'saved in the second life'
    expect_errno(errno.ENOENT, os.stat, m.path('s1', blobs['a'][0]))
    m.umount()
    r = fsck(blobfs_bin, m.data)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not pack_files(m.data, 's2'), 'packs of the destroyed store s2 are still on disk'


def test_blobs_are_packed_not_one_file_per_blob(blobfs):
    os.mkdir(blobfs.path('p'))
    hexes = [save(blobfs.mnt, 'p', os.urandom(1000 + i), name=str(i)) for i in range(60)]
    blobfs.umount()
    packs = pack_files(blobfs.data, 'p')
    assert packs, sorted(str(p) for p in Path(blobfs.data).rglob('*'))
    assert all(re.fullmatch(r'pack-.*\.pack', p.name) for p in packs)
    files = [p for p in Path(blobfs.data).rglob('*') if p.is_file()]
    assert len(files) < len(hexes), f'{len(files)} files for {len(hexes)} blobs: {files}'
    assert not any(p.name in hexes for p in files), 'a file is named after a blob'
    blobfs.mount()
    assert len(os.listdir(blobfs.path('p'))) == 61


def test_small_packs_option(make_mount, blobfs_bin):
    """-o pack_size=...,large_blob=... (from --help): many packs, same data."""
    m = make_mount(extra_args=['-o', 'pack_size=64K,large_blob=16K'])
    os.mkdir(m.path('s'))
    expected = {}
    for i in range(40):
        data = os.urandom(3000 + 997 * i)     # 3 KB .. 42 KB: small and large blobs
        expected[save(m.mnt, 's', data, name=str(i))] = data
    m.remount()
    assert sorted(os.listdir(m.path('s'))) == sorted(list(expected) + ['incoming'])
    for h, data in expected.items():
        assert read_file(m.path('s', h)) == data
    m.umount()
    assert len(pack_files(m.data, 's')) > 3, pack_files(m.data, 's')
    r = fsck(blobfs_bin, m.data)
    assert r.returncode == 0, r.stdout + r.stderr


def test_unmount_right_after_saves_keeps_everything(blobfs, blobfs_bin):
    os.mkdir(blobfs.path('s'))
    expected = {}
    for i in range(100):
        data = os.urandom(i * 997)
        expected[save(blobfs.mnt, 's', data, name=str(i))] = data
    deleted = list(expected)[:10]
    for h in deleted:
        os.unlink(blobfs.path('s', h))
    blobfs.umount()           # immediately
    r = fsck(blobfs_bin, blobfs.data)
    assert r.returncode == 0, r.stdout + r.stderr
    blobfs.mount()
    assert sorted(os.listdir(blobfs.path('s'))) == sorted(
        [h for h in expected if h not in deleted] + ['incoming'])
    for h, data in expected.items():
        if h not in deleted:
            assert read_file(blobfs.path('s', h)) == data


def test_restart_after_daemon_was_killed(blobfs, blobfs_bin):
    """A crashed daemon must not leave a stale lock; completed saves survive;
    files that were still being written are dropped without leaking space."""
    os.mkdir(blobfs.path('s'))
    data = os.urandom(123456)
    h = save(blobfs.mnt, 's', data)
    big = os.urandom(3 << 20)
    hbig = save(blobfs.mnt, 's', big, name='big')
    open_fds = []
    for name, size in [('torn-large', 5 << 20), ('torn-small', 3000)]:
        fd = os.open(blobfs.path('s', 'incoming', name), os.O_WRONLY | os.O_CREAT, 0o644)
        open_fds.append(fd)
        write_all(fd, os.urandom(size))
    blobfs.proc.send_signal(signal.SIGKILL)
    blobfs.proc.wait()
    for fd in open_fds:
        try:
            os.close(fd)
        except OSError as e:
            assert e.errno in (errno.ENOTCONN, errno.ECONNABORTED), e
    assert blobfs.umount(check=False) == -signal.SIGKILL
    blobfs.mount()
    assert read_file(blobfs.path('s', h)) == data
    assert read_file(blobfs.path('s', hbig)) == big
    assert os.listdir(blobfs.path('s', 'incoming')) == []
    h2 = save(blobfs.mnt, 's', b'after the crash')
    assert sorted(os.listdir(blobfs.path('s'))) == sorted([h, hbig, h2, 'incoming'])
    blobfs.umount()
    r = fsck(blobfs_bin, blobfs.data)
    assert r.returncode == 0, r.stdout + r.stderr
    du = du_bytes(blobfs.data)
    assert du < len(big) + len(data) + (1 << 20), f'{du} bytes on disk: torn files leaked'
    blobfs.mount()
    assert sorted(os.listdir(blobfs.path('s'))) == sorted([h, hbig, h2, 'incoming'])


# --------------------------------------------------------------------------
# the lock


@pytest.mark.parametrize('foreground', [True, False], ids=['foreground', 'daemon'])
def test_second_daemon_on_same_datadir_is_refused(blobfs, blobfs_bin, daemon_runner,
                                                  tmp_path, foreground):
    os.mkdir(blobfs.path('s'))
    mnt2 = tmp_path / 'mnt2'
    mnt2.mkdir()
    args = (['-f'] if foreground else []) + [blobfs.data, mnt2]
    try:
        rc, out, err = daemon_runner.run(args, mnt=mnt2, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail('second daemon on a locked DATADIR did not exit within 30s')
    assert not is_mounted(str(mnt2)), 'second daemon mounted a locked DATADIR'
    assert rc != 0, f'second daemon exited 0\nstdout: {out}\nstderr: {err}'
    assert rc > 0, f'second daemon died from signal {-rc}\nstderr: {err}'
    assert re.search(r'lock|another|already|in use|busy', err, re.I), \
        f'no clear message on stderr: {err!r}'
    print(f'second daemon refused (exit {rc}): {err.strip()}')
    # the first daemon is unaffected
    h = save(blobfs.mnt, 's', b'first daemon still serving')
    assert read_file(blobfs.path('s', h)) == b'first daemon still serving'


def test_fsck_refuses_mounted_datadir(blobfs, blobfs_bin):
    os.mkdir(blobfs.path('s'))
    save(blobfs.mnt, 's', b'x')
    r = fsck(blobfs_bin, blobfs.data, timeout=60)
    assert r.returncode == 2, f'fsck on a mounted DATADIR: rc {r.returncode}\n{r.stdout}{r.stderr}'
    assert r.stderr.strip(), 'fsck exit 2 without a message on stderr'
    print(f'fsck on mounted datadir: {r.stderr.strip()}')


# --------------------------------------------------------------------------
# fsck


def test_fsck_clean_store(blobfs, blobfs_bin):
    os.mkdir(blobfs.path('s'))
    os.mkdir(blobfs.path('t'))
    hexes = [save(blobfs.mnt, 's', os.urandom(n), name=str(n))
             for n in (0, 1, 65535, 65536, 65537, 1 << 20)]
    os.unlink(blobfs.path('s', hexes[1]))
    save(blobfs.mnt, 't', b'to be destroyed')
    assert run(['rm', '-r', blobfs.path('t')]).returncode == 0
    blobfs.umount()
    r = fsck(blobfs_bin, blobfs.data)
    print(f'fsck output: {r.stdout!r} {r.stderr!r}')
    assert r.returncode == 0, r.stdout + r.stderr
    # read-only: a second run agrees and the data still mounts
    assert fsck(blobfs_bin, blobfs.data).returncode == 0
    blobfs.mount()
    assert sorted(os.listdir(blobfs.path('s'))) == sorted(
        [h for h in hexes if h != hexes[1]] + ['incoming'])


def test_fsck_fresh_datadir(blobfs, blobfs_bin):
    blobfs.umount()
    r = fsck(blobfs_bin, blobfs.data)
    assert r.returncode == 0, r.stdout + r.stderr


def test_fsck_missing_datadir(tmp_path, blobfs_bin):
    r = fsck(blobfs_bin, tmp_path / 'does-not-exist')
    assert r.returncode == 2, f'rc {r.returncode}\n{r.stdout}{r.stderr}'
    assert r.stderr.strip()


def test_fsck_detects_corrupted_blob(blobfs, blobfs_bin):
    os.mkdir(blobfs.path('s'))
    data = os.urandom(256 * 1024)
    save(blobfs.mnt, 's', data)
    save(blobfs.mnt, 's', b'an innocent neighbour')
    blobfs.umount()
    needle = data[100000:100064]
    for pack in pack_files(blobfs.data, 's'):
        content = bytearray(pack.read_bytes())
        pos = content.find(needle)
        if pos >= 0:
            content[pos + 10] ^= 0xff
            pack.write_bytes(content)
            break
    else:
        pytest.skip('blob data not stored verbatim in a pack file; cannot corrupt it')
    r = fsck(blobfs_bin, blobfs.data)
    print(f'fsck output: {r.stdout!r} {r.stderr!r}')
    assert r.returncode == 1, f'rc {r.returncode}\n{r.stdout}{r.stderr}'
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    assert lines, 'fsck found a problem but printed nothing'


# --------------------------------------------------------------------------
# command line


def test_help(blobfs_bin):
    r = run([blobfs_bin, '--help'], text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    for word in ('-f', '-d', '-o', 'fsck', 'mount'):
        assert word in text, f'{word!r} missing from --help:\n{text}'


def test_version(blobfs_bin):
    r = run([blobfs_bin, '--version'], text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert re.search(r'\d+\.\d+', r.stdout + r.stderr), r.stdout + r.stderr


@pytest.mark.parametrize('args', [
    [], ['mount'], ['onlyone'], ['mount', 'onlyone'], ['fsck'],
    ['a', 'b', 'c'], ['--no-such-option', 'a', 'b'],
], ids=lambda a: ' '.join(a) or 'no-args')
def test_usage_errors(blobfs_bin, tmp_path, args):
    args = [str(tmp_path / a) if a in ('a', 'b', 'c', 'onlyone') else a for a in args]
    for a in args:
        if a.startswith(str(tmp_path)):
            os.makedirs(a, exist_ok=True)
    r = run([blobfs_bin] + args, text=True, timeout=30)
    assert r.returncode > 0, f'blobfs {args}: rc {r.returncode}\n{r.stdout}{r.stderr}'
    assert r.stderr.strip(), 'usage error without a message on stderr'
    assert not mounting.mounts_under(tmp_path)


def test_mount_word_and_debug_flag(make_mount):
    m = make_mount(mount_word=True, extra_args=['-d'])
    os.mkdir(m.path('s'))
    h = save(m.mnt, 's', b'debug mode')
    assert read_file(m.path('s', h)) == b'debug mode'
    m.umount()
    assert m.log().strip(), '-d produced no output'


# --------------------------------------------------------------------------
# daemon mode (no -f)


def _check_stopped(runner, mnt, pid):
    status = runner.stop(mnt, pid)
    assert status is not None, f'daemon {pid} still running after unmount'
    if runner.subreaper:
        assert status == 0, f'daemon exited with status {status}'
    assert not mounting.pid_alive(pid)


@pytest.mark.parametrize('mount_word', [False, True], ids=['plain', 'mount-word'])
def test_daemonize(daemon_runner, make_mount, tmp_path, blobfs_bin, mount_word):
    data, mnt = tmp_path / 'data', tmp_path / 'mnt'
    data.mkdir()
    mnt.mkdir()
    rc, out, err = daemon_runner.run((['mount'] if mount_word else []) + [data, mnt], mnt=mnt)
    assert rc == 0, f'rc {rc}\n{out}{err}'
    assert is_mounted(str(mnt)), 'parent exited before the mount was up'
    pid = daemon_runner.daemon_pid(str(mnt))
    assert mounting.pid_alive(pid)
    os.mkdir(bpath(mnt, 's'))
    h = save(mnt, 's', b'daemon mode')
    assert read_file(bpath(mnt, 's', h)) == b'daemon mode'
    _check_stopped(daemon_runner, mnt, pid)
    assert not is_mounted(str(mnt))
    r = fsck(blobfs_bin, data)
    assert r.returncode == 0, r.stdout + r.stderr
    again = make_mount('again', data=data)
    assert read_file(again.path('s', h)) == b'daemon mode'


def test_daemonize_with_relative_paths(daemon_runner, make_mount, tmp_path):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'mnt').mkdir()
    existed = os.path.exists('/data')
    rc, out, err = daemon_runner.run(['data', 'mnt'], mnt='mnt', cwd=tmp_path)
    try:
        assert rc == 0, f'rc {rc}\n{out}{err}'
        mnt = tmp_path / 'mnt'
        assert is_mounted(str(mnt))
        pid = daemon_runner.daemon_pid('mnt')
        os.mkdir(bpath(mnt, 's'))
        h = save(mnt, 's', b'relative')
        _check_stopped(daemon_runner, mnt, pid)
        assert any((tmp_path / 'data').rglob('pack-*.pack')), 'no pack written under ./data'
        again = make_mount('again', data=tmp_path / 'data')
        assert read_file(again.path('s', h)) == b'relative'
    finally:
        assert existed or not os.path.exists('/data'), 'the daemon created /data'


def test_daemon_detaches_from_callers_stdio(daemon_runner, tmp_path, blobfs_bin):
    """The parent must exit and the daemon must not keep the caller's
    stdout/stderr open (or `blobfs D M | cat` and ssh sessions hang)."""
    data, mnt = tmp_path / 'data', tmp_path / 'mnt'
    data.mkdir()
    mnt.mkdir()
    daemon_runner.mnts.append(str(mnt))
    p = subprocess.Popen([blobfs_bin, str(data), str(mnt)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        parent = p.poll()
        p.stdout.close()
        p.stderr.close()
        if parent is None:
            p.kill()
            p.wait()
            pytest.fail('the parent did not exit within 30s')
        pytest.fail(f'parent exited {parent} but the daemon kept stdout/stderr open')
    assert p.returncode == 0, err
    assert is_mounted(str(mnt))
    pid = daemon_runner.daemon_pid(str(mnt))
    _check_stopped(daemon_runner, mnt, pid)
