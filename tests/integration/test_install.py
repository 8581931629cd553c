"""Installation: `meson install --destdir` puts the blobfs binary and its
man page in place, and the installed binary mounts the way mount(8) and
/etc/fstab run it: `mount -t fuse.blobfs` runs /sbin/mount.fuse3, which
runs `blobfs DATADIR MNT -o OPTS` through /bin/sh.

mount(8) clears PATH before it runs its helper, so the helper's shell looks
in the standard PATH only (/usr/local/bin, /usr/bin, ...). Two tests:

- mount.fuse3 called as mount(8) calls it (the same argv), with PATH
  including the installed bin directory;
- the real `mount -t fuse.blobfs` and an fstab line (mount -T), in a
  private mount namespace where the installed bin directory is bind-mounted
  on /usr/local/bin (nothing outside the namespace changes).

Both save a blob through incoming/ and unmount; no daemon may be left.
"""

import hashlib
import os
import shutil
import subprocess
import time

import pytest

from blobfs_test import mounting
from blobfs_test.common import blobfs_bin, bpath, run
from blobfs_test.files import read_file, save

# What a user might put in fstab; mount(8) and mount.fuse3 pass on what
# they do not consume, and blobfs must take all of it.
FSTAB_OPTIONS = ('rw,noatime,relatime,nodiratime,lazytime,nofail,_netdev,'
                 'x-systemd.automount,x-systemd.requires=network-online.target,'
                 'comment=blobs,threads=2,min_free=0')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """(bin directory, man page) of `meson install --destdir` of the build
    BLOBFS_BIN is in."""
    build = os.path.dirname(os.path.realpath(blobfs_bin()))
    if not os.path.exists(os.path.join(build, 'meson-private')):
        pytest.skip(f'{build} is not a meson build directory')
    dest = tmp_path_factory.mktemp('destdir')
    r = run(['meson', 'install', '-C', build, '--no-rebuild', '--destdir', str(dest)],
            text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    found = {}
    for root, _, files in os.walk(dest):
        for f in files:
            found[f] = os.path.join(root, f)
    assert 'blobfs' in found, f'no blobfs installed: {found}'
    assert 'blobfs.1' in found, f'no man page installed: {found}'
    assert found['blobfs'].endswith('/bin/blobfs')
    assert '/share/man/man1/' in found['blobfs.1']
    # Only the daemon: no test or bench program.
    executables = [f for f, p in found.items() if os.access(p, os.X_OK)]
    assert executables == ['blobfs'], executables
    yield os.path.dirname(found['blobfs']), found['blobfs.1']
    shutil.rmtree(dest, ignore_errors=True)


def test_man_page_renders_without_warnings(installed):
    if shutil.which('groff') is None:
        pytest.skip('no groff')
    r = run(['groff', '-man', '-Tutf8', '-ww', '-z', installed[1]], text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr, r.stderr
    text = run(['man', '-l', installed[1]], text=True, timeout=60,
               env={**os.environ, 'MANWIDTH': '200'}).stdout
    for word in ('fsck', 'compact', 'stat', 'hash', 'pack_size=', 'large_blob=', 'sync',
                 'threads=', 'memory_max=', 'min_free=', 'fuse.blobfs', 'fstab'):
        assert word in text, f'{word} missing from the man page'


def test_help_lists_every_option_with_its_default(installed):
    r = run([os.path.join(installed[0], 'blobfs'), '--help'], text=True, timeout=30)
    assert r.returncode == 0
    for option in ('pack_size=SIZE', 'large_blob=SIZE', 'sync', 'async', 'threads=N',
                   'memory_max=SIZE', 'min_free=SIZE', '--foreground', '--debug'):
        assert option in r.stdout, option
    for default in ('default 64M', 'default 1M, at most 16M', 'within 1 second',
                    'at least 2, at most 16', 'default 25%', 'default 1% of',
                    'at most 64M'):
        assert default in ' '.join(r.stdout.split()), default


def _wait_daemons_gone(needle, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not mounting.find_daemon_pids(needle):
            return True
        time.sleep(0.1)
    return False


def test_mount_fuse3_runs_the_installed_blobfs(installed, tmp_path):
    data, mnt = tmp_path / 'data', tmp_path / 'mnt'
    data.mkdir()
    mnt.mkdir()
    env = {**os.environ, 'PATH': installed[0] + ':' + os.environ.get('PATH', '/usr/bin:/bin')}
    # The argv mount(8) gives its helper for `mount -t fuse.blobfs -o OPTS`.
    r = run(['/sbin/mount.fuse3', str(data), str(mnt), '-o', FSTAB_OPTIONS.replace(
        ',x-systemd.automount,x-systemd.requires=network-online.target', ''),
        '-t', 'fuse.blobfs'], env=env, text=True, timeout=60)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        assert mounting.is_mounted(str(mnt))
        assert mounting.mounts()[str(mnt)] == 'fuse.blobfs'
        pids = mounting.find_daemon_pids(str(mnt))
        assert len(pids) == 1, pids
        argv = mounting.proc_argv(pids[0])
        # mount.fuse3 ran "blobfs DATADIR MNT -o OPTS" without the options
        # only it and mount(8) understand.
        assert argv[1:4] == [str(data), str(mnt), '-o'], argv
        passed = argv[4].split(',')
        assert 'nofail' not in passed and '_netdev' not in passed, passed
        assert {'rw', 'noatime', 'threads=2', 'min_free=0', 'dev', 'suid'} <= set(passed), passed
        os.mkdir(bpath(mnt, 's'))
        h = save(mnt, 's', b'saved through mount.fuse3')
        assert read_file(bpath(mnt, 's', h)) == b'saved through mount.fuse3'
    finally:
        u = run(['umount', str(mnt)], text=True, timeout=60)
        mounting.unmount_path(str(mnt))
        assert _wait_daemons_gone(str(mnt)), 'the daemon did not exit after umount'
    assert u.returncode == 0, u.stderr


MOUNT_SCRIPT = r'''
set -eu
mount --bind "$BLOBFS_BIN_DIR" /usr/local/bin
# mount(8) itself, as a user types it.
mount -t fuse.blobfs -o "$OPTIONS" "$DATA1" "$MNT1"
trap 'umount "$MNT1" 2>/dev/null || true; umount "$MNT2" 2>/dev/null || true' EXIT
grep -q " $MNT1 .* fuse.blobfs " /proc/self/mountinfo
mkdir "$MNT1/s"
printf 'via mount(8)' > "$MNT1/s/incoming/f"
ls "$MNT1/s" > "$OUT1"
umount "$MNT1"
# An /etc/fstab line (another fstab file: mount -T).
printf '%s %s fuse.blobfs %s 0 0\n' "$DATA2" "$MNT2" "$OPTIONS" > "$FSTAB"
mount -T "$FSTAB" "$MNT2"
mkdir "$MNT2/t"
printf 'via fstab' > "$MNT2/t/incoming/f"
ls "$MNT2/t" > "$OUT2"
umount "$MNT2"
trap - EXIT
'''


def test_mount_type_fuse_blobfs_and_fstab(installed, tmp_path):
    if shutil.which('unshare') is None:
        pytest.skip('no unshare')
    probe = run(['unshare', '-m', '--propagation', 'private', 'true'], timeout=30)
    if probe.returncode != 0:
        pytest.skip(f'cannot make a mount namespace: {probe.stderr}')
    env = {**os.environ, 'BLOBFS_BIN_DIR': installed[0], 'OPTIONS': FSTAB_OPTIONS,
           'FSTAB': str(tmp_path / 'fstab'), 'OUT1': str(tmp_path / 'ls1'),
           'OUT2': str(tmp_path / 'ls2')}
    for i in (1, 2):
        for what in ('DATA', 'MNT'):
            path = tmp_path / f'{what.lower()}{i}'
            path.mkdir()
            env[f'{what}{i}'] = str(path)
    r = subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', MOUNT_SCRIPT],
                       env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    gone = _wait_daemons_gone(str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert gone, 'a daemon was left running'
    # The blobs are there (checked offline, after both unmounts).
    for i, store, text in ((1, 's', b'via mount(8)'), (2, 't', b'via fstab')):
        names = (tmp_path / f'ls{i}').read_text().split()
        h = hashlib.sha256(text).hexdigest()
        assert names == [h, 'incoming'], names
        st = run([blobfs_bin(), 'stat', str(tmp_path / f'data{i}')], text=True, timeout=60)
        assert st.returncode == 0, st.stderr
        assert st.stdout.startswith(f'store={store} blobs=1 bytes={len(text)} '), st.stdout
