"""Owners and modes of stores, seen by another user (README, Security).

A mount with -o allow_other (which makes blobfs add default_permissions) is
used by an unprivileged system user made for the session (blobfs_test_user,
with a supplementary group blobfs_test_group; both removed at the end if
this session made them). As that user, real operations -- listing a store,
reading a blob, copying into incoming/, removing a blob, making and
removing stores, chmod/chown/chgrp -- are checked against stores of modes
0700, 0750, 0755, 0777 owned by root and by the user (and a store of the
user's supplementary group), each result by its exact errno; then after
chmod/chown by root and by the user, and after a remount (the owners and
modes are kept in DATADIR/stores/<S>/meta). The mount point sits in a
directory of its own under /tmp that the user can reach (pytest's own
directories are 0700). Also: the command line refuses a data directory
other users can write (exit status 2, which directory and why).
"""

import errno
import grp
import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

from blobfs_test import mounting
from blobfs_test.common import blobfs_bin, run
from blobfs_test.files import save

USER = 'blobfs_test_user'
GROUP = 'blobfs_test_group'


@pytest.fixture(scope='session')
def test_user():
    """(uid, primary gid, supplementary gid) of USER, made if missing and
    removed at the end of the session if made here."""
    made_user = made_group = False
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        r = run(['groupadd', '-r', GROUP], text=True)
        assert r.returncode == 0, r.stderr
        made_group = True
    try:
        pwd.getpwnam(USER)
    except KeyError:
        r = run(['useradd', '-M', '-r', '-U', '-s', '/usr/sbin/nologin', '-d', '/nonexistent',
                 '-G', GROUP, USER], text=True)
        assert r.returncode == 0, r.stderr
        made_user = True
    pw = pwd.getpwnam(USER)
    extra = grp.getgrnam(GROUP).gr_gid
    assert USER in grp.getgrnam(GROUP).gr_mem, f'{USER} must be in {GROUP}'
    try:
        yield pw.pw_uid, pw.pw_gid, extra
    finally:
        if made_user:
            run(['userdel', USER])
        if made_group:
            run(['groupdel', GROUP])


_RUNNER = r'''
import errno, json, os, shutil, sys
op, args = sys.argv[1], json.loads(sys.argv[2])
os.umask(args.get('umask', 0o022))
def do():
    if op == 'ls':
        return sorted(os.listdir(args['path']))
    if op == 'cat':
        with open(args['path'], 'rb') as f:
            return f.read().hex()
    if op == 'cp':
        with open(args['path'], 'wb') as f:
            f.write(bytes.fromhex(args['data']))
        return None
    if op == 'rm':
        return os.unlink(args['path'])
    if op == 'mkdir':
        if 'mode' in args:
            return os.mkdir(args['path'], args['mode'])
        return os.mkdir(args['path'])
    if op == 'rmdir':
        return os.rmdir(args['path'])
    if op == 'chmod':
        return os.chmod(args['path'], args['mode'])
    if op == 'chown':
        return os.chown(args['path'], args['uid'], args['gid'])
    if op == 'stat':
        st = os.stat(args['path'])
        return [st.st_uid, st.st_gid, st.st_mode & 0o7777]
    raise SystemExit('unknown op ' + op)
try:
    print(json.dumps({'ok': do()}))
except OSError as e:
    print(json.dumps({'errno': errno.errorcode[e.errno]}))
'''


def as_user(user, op, **args):
    """Runs one operation as the test user (uid, gid and groups as login
    gives them); returns ('ok', value) or ('err', 'EACCES')."""
    uid, gid, _ = user

    def drop():
        os.initgroups(USER, gid)
        os.setgid(gid)
        os.setuid(uid)
    r = subprocess.run(['/usr/bin/python3', '-c', _RUNNER, op, json.dumps(args)],
                       preexec_fn=drop, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, cwd='/')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return ('err', out['errno']) if 'errno' in out else ('ok', out['ok'])


OK = ('ok',)


def check(user, expected, op, **args):
    """expected: 'ok' or an errno name."""
    got = as_user(user, op, **args)
    want = 'ok' if expected == 'ok' else expected
    assert (got[0] == 'ok' and want == 'ok') or got == ('err', want), \
        f'{op} {args}: expected {want}, got {got}'
    return got[1]


@pytest.fixture
def shared_mount(tmp_path, blobfs_bin, test_user):
    """Factory: factory(*options, mount=True) -> a blobfs with -o allow_other
    (and the given -o options) whose mount point the test user can reach:
    MNT in a 0755 directory under /tmp; DATADIR in tmp_path."""
    top = tempfile.mkdtemp(prefix='blobfs-owners-', dir='/tmp')
    os.chmod(top, 0o755)
    mounts = []

    def factory(*options, mount=True):
        m = mounting.Mount(tmp_path / 'data', os.path.join(top, 'mnt'), tmp_path,
                           extra_args=['-o', ','.join(('allow_other',) + options)])
        mounts.append(m)
        if mount:
            m.mount()
        return m
    try:
        yield factory
    finally:
        errors = []
        for m in mounts:
            try:
                m.cleanup()
            except AssertionError as e:
                errors.append(str(e))
        if not mounting.is_mounted(os.path.join(top, 'mnt')):
            shutil.rmtree(top, ignore_errors=True)
        assert not errors, '\n'.join(errors)


def attrs(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


MODES = (0o700, 0o750, 0o755, 0o777)


def make_stores(m, user):
    """Stores r700..r777 (root:root), u700..u777 (the user's), g750/g770
    (root:the user's supplementary group), each with one blob."""
    uid, gid, extra = user
    blobs = {}
    for mode in MODES:
        for who, owner in (('r', (0, 0)), ('u', (uid, gid))):
            name = f'{who}{mode:o}'
            os.mkdir(m.path(name))
            os.chmod(m.path(name), mode)
            blobs[name] = save(m.mnt, name, f'blob of {name}'.encode())
            os.chown(m.path(name), *owner)
    for mode in (0o750, 0o770):
        name = f'g{mode:o}'
        os.mkdir(m.path(name), mode)
        os.chmod(m.path(name), mode)
        blobs[name] = save(m.mnt, name, f'blob of {name}'.encode())
        os.chown(m.path(name), 0, extra)
    return blobs


def expected_for(name):
    """What the user may do in store `name`: (list and read, add and remove)."""
    who, mode = name[0], int(name[1:], 8)
    if who == 'u':
        bits = mode >> 6
    elif who == 'g':
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    return bits & 5 == 5, bits & 3 == 3


def check_store_ops(m, user, name, blob):
    readable, writable = expected_for(name)
    data = f'blob of {name}'.encode()
    # ls: listing needs r and x; cat: x on the store, r on the blob.
    got = check(user, 'ok' if readable else 'EACCES', 'ls', path=m.path(name))
    if readable:
        assert blob in got and 'incoming' in got
    got = check(user, 'ok' if readable else 'EACCES', 'cat', path=m.path(name, blob))
    if readable:
        assert bytes.fromhex(got) == data
    # cp into incoming/: incoming/ is the store's, so w and x on the store.
    new = f'new in {name}'.encode()
    check(user, 'ok' if writable else 'EACCES', 'cp', path=m.path(name, 'incoming', 'x'),
          data=new.hex())
    if writable:
        h = hashlib.sha256(new).hexdigest()
        assert os.path.exists(m.path(name, h))
        assert os.stat(m.path(name, 'incoming', 'x')).st_uid == user[0]  # the writer's
        # rm of a blob: w and x on the store.
        check(user, 'ok', 'rm', path=m.path(name, h))
        assert not os.path.exists(m.path(name, h))
    check(user, 'ok' if writable else 'EACCES', 'rm', path=m.path(name, blob))
    if writable:
        save(m.mnt, name, data)  # back, by root


def test_other_user_against_owners_and_modes(shared_mount, test_user):
    uid, gid, extra = test_user
    m = shared_mount()
    blobs = make_stores(m, test_user)

    # What stat shows: stores, incoming/ and blobs follow their store.
    for name, blob in blobs.items():
        owner = {'r': (0, 0), 'u': (uid, gid), 'g': (0, extra)}[name[0]]
        mode = int(name[1:], 8)
        assert attrs(m.path(name)) == owner + (mode,)
        assert attrs(m.path(name, 'incoming')) == owner + (mode,)
        assert attrs(m.path(name, blob)) == owner + (mode & 0o444,)
    root_st = os.stat(m.mnt)
    assert stat.S_IMODE(root_st.st_mode) == 0o1777

    for name, blob in blobs.items():
        check_store_ops(m, test_user, name, blob)

    # Real tools, as the user: their exit statuses and messages.
    def tool(*cmd):
        return subprocess.run(['runuser', '-u', USER, '--'] + list(cmd), capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    r = tool('ls', m.path('r700'))
    assert r.returncode == 2 and 'Permission denied' in r.stderr, r
    r = tool('cat', m.path('r755', blobs['r755']))
    assert r.returncode == 0 and r.stdout == 'blob of r755'
    src = os.path.join(os.path.dirname(m.mnt), 'src.txt')
    with open(src, 'w') as f:
        f.write('copied by the user')
    os.chmod(src, 0o644)
    r = tool('cp', src, m.path('r755', 'incoming', 'c'))
    assert r.returncode == 1 and 'Permission denied' in r.stderr, r
    r = tool('cp', src, m.path('u700', 'incoming', 'c'))
    assert r.returncode == 0, r
    h = hashlib.sha256(b'copied by the user').hexdigest()
    r = tool('rm', '-f', m.path('r777', blobs['r777']))
    assert r.returncode == 0 and not os.path.exists(m.path('r777', blobs['r777'])), r
    r = tool('rm', '-f', m.path('r755', blobs['r755']))
    assert r.returncode == 1 and 'Permission denied' in r.stderr, r
    r = tool('mkdir', m.path('made-by-tool'))
    assert r.returncode == 0, r
    assert attrs(m.path('made-by-tool')) == (uid, gid, 0o755)
    assert os.path.exists(m.path('u700', h))

    # mkdir of a store: the caller's, the mode asked for after the umask.
    check(test_user, 'ok', 'mkdir', path=m.path('mine'), mode=0o750)
    assert attrs(m.path('mine')) == (uid, gid, 0o750)
    check(test_user, 'ok', 'mkdir', path=m.path('masked'), umask=0o027)
    assert attrs(m.path('masked')) == (uid, gid, 0o750)
    check(test_user, 'EEXIST', 'mkdir', path=m.path('r700'))
    # rmdir: the root is sticky: only a store's owner (or root) removes it.
    os.mkdir(m.path('roots-empty'))
    check(test_user, 'EPERM', 'rmdir', path=m.path('roots-empty'))
    check(test_user, 'ok', 'rmdir', path=m.path('masked'))
    assert not os.path.exists(m.path('masked'))

    # chmod / chown / chgrp as the user.
    check(test_user, 'EPERM', 'chmod', path=m.path('r777'), mode=0o700)
    check(test_user, 'ok', 'chmod', path=m.path('u755'), mode=0o700)
    assert attrs(m.path('u755')) == (uid, gid, 0o700)
    assert attrs(m.path('u755', blobs['u755'])) == (uid, gid, 0o400)
    check(test_user, 'EPERM', 'chown', path=m.path('u755'), uid=0, gid=-1)
    check(test_user, 'ok', 'chown', path=m.path('u755'), uid=-1, gid=extra)
    assert attrs(m.path('u755')) == (uid, extra, 0o700)
    check(test_user, 'EPERM', 'chown', path=m.path('u755'), uid=-1, gid=0)
    check(test_user, 'ok', 'chmod', path=m.path('u755', 'incoming'), mode=0o750)
    assert attrs(m.path('u755')) == (uid, extra, 0o750)
    check(test_user, 'EPERM', 'chmod', path=m.path('r755', 'incoming'), mode=0o777)

    # By root: a chmod takes effect at once, also for blobs the user saw.
    check(test_user, 'ok', 'stat', path=m.path('r755', blobs['r755']))
    check(test_user, 'ok', 'cat', path=m.path('r755', blobs['r755']))
    os.chmod(m.path('r755'), 0o711)
    assert attrs(m.path('r755', blobs['r755'])) == (0, 0, 0o400)
    check(test_user, 'EACCES', 'cat', path=m.path('r755', blobs['r755']))
    check(test_user, 'EACCES', 'ls', path=m.path('r755'))
    os.chmod(m.path('r755'), 0o755)
    check(test_user, 'ok', 'cat', path=m.path('r755', blobs['r755']))
    # chown by root gives the store away: now the user writes there.
    os.chown(m.path('r700'), uid, gid)
    check(test_user, 'ok', 'cp', path=m.path('r700', 'incoming', 'y'), data=b'y'.hex())
    check(test_user, 'ok', 'ls', path=m.path('r700'))

    before = {n: attrs(m.path(n)) for n in os.listdir(m.mnt)}
    m.umount()

    # On disk: one meta file per store, 0600, in 0700 directories.
    data = os.path.realpath(m.data)
    for name in before:
        meta = os.path.join(data, 'stores', name, 'meta')
        assert stat.S_IMODE(os.stat(meta).st_mode) == 0o600
        assert os.path.getsize(meta) == 32
        assert stat.S_IMODE(os.stat(os.path.dirname(meta)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(data).st_mode) in (0o700, 0o755)

    # After a remount: the same owners and modes, the same answers.
    m.mount()
    assert {n: attrs(m.path(n)) for n in os.listdir(m.mnt)} == before
    check(test_user, 'EACCES', 'ls', path=m.path('r750'))
    check(test_user, 'ok', 'ls', path=m.path('r700'))  # given to the user
    check(test_user, 'EACCES', 'cp', path=m.path('g750', 'incoming', 'z'), data='00')
    check(test_user, 'ok', 'cp', path=m.path('g770', 'incoming', 'z'), data='00')
    check(test_user, 'ok', 'cat', path=m.path('g750', blobs['g750']))
    check(test_user, 'ok', 'chmod', path=m.path('mine'), mode=0o700)
    assert attrs(m.path('mine')) == (uid, gid, 0o700)
    m.umount()


def test_allow_other_implies_default_permissions(shared_mount, test_user):
    m = shared_mount()
    with open('/proc/self/mountinfo') as f:
        line = next(l for l in f if f' {m.mnt} ' in l)
    assert 'default_permissions' in line and 'allow_other' in line, line
    m.umount()


def test_unsafe_data_directory_is_refused(tmp_path, blobfs_bin):
    parent = tmp_path / 'shared'
    parent.mkdir()
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    os.chmod(parent, 0o777)
    r = subprocess.run([blobfs_bin, 'mount', '-f', str(parent / 'data'), str(mnt)],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r
    assert 'refusing data directory' in r.stderr and str(parent) in r.stderr, r.stderr
    assert 'writable by every user' in r.stderr, r.stderr
    assert not (parent / 'data').exists()
    assert not mounting.is_mounted(str(mnt))
    # Sticky (like /tmp) is fine.
    os.chmod(parent, 0o1777)
    m = mounting.Mount(parent / 'data', mnt, tmp_path)
    try:
        m.mount()
        os.mkdir(m.path('s'))
    finally:
        m.cleanup()
    # The data directory itself writable by others: refused, sticky or not.
    os.chmod(parent / 'data', 0o1777)
    r = subprocess.run([blobfs_bin, str(parent / 'data'), str(mnt)], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and 'the data directory' in r.stderr, r
    assert not mounting.is_mounted(str(mnt))
