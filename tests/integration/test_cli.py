"""The command line: `blobfs hash` against sha256sum itself, the parser's
errors (an unknown command word, a mount point that is not a directory),
`blobfs stat` (the figures of every store, offline), df/df -i on a mount
(the blobs are the files), and log lines that a store name cannot split.

Installation and mount(8) / fstab are test_install.py's.
"""

import os
import re
import subprocess

import pytest

from blobfs_test import mounting
from blobfs_test.common import bpath, run
from blobfs_test.files import save


# --------------------------------------------------------------------------
# blobfs hash


AWKWARD_NAMES = [
    b'plain', b'with space', b'back\\slash', b'new\nline', b'carriage\rreturn',
    b'tab\there', b"it's", b"it's:x", b"it's{x", b'\xff\xfe', 'caf\u00e9'.encode(),
    b'a=b', b'#start', b'end#', b'~home', b'!bang', b'{', b'a}', b':', b'?x', b'*',
    b'quote"d', b'$dollar', b'\\\n\r\\', b"\nit's\n", b'-dash', b'\x01ctl\x7f',
    b'\xe2\x80\x8bzwsp', b'\xc3',
]


def _sha256sum(args, cwd, env=None, stdin=None):
    return subprocess.run(['sha256sum'] + args, cwd=cwd, env=env, input=stdin,
                          capture_output=True, timeout=60)


def _hash(blobfs_bin, args, cwd, env=None, stdin=None):
    return subprocess.run([blobfs_bin, 'hash'] + args, cwd=cwd, env=env, input=stdin,
                          capture_output=True, timeout=60)


def _assert_same(ours, theirs, what):
    assert ours.stdout == theirs.stdout, f'{what}: stdout\n{ours.stdout!r}\n{theirs.stdout!r}'
    want_err = theirs.stderr.replace(b'sha256sum:', b'blobfs hash:').replace(
        b"'sha256sum --help'", b"'blobfs hash --help'")
    assert ours.stderr == want_err, f'{what}: stderr\n{ours.stderr!r}\n{want_err!r}'
    assert ours.returncode == theirs.returncode, \
        f'{what}: exit status {ours.returncode}, sha256sum {theirs.returncode}'


@pytest.fixture
def awkward_dir(tmp_path):
    d = tmp_path / 'files'
    d.mkdir()
    for i, name in enumerate(AWKWARD_NAMES):
        with open(os.path.join(os.fsencode(d), name), 'wb') as f:
            f.write(os.urandom(i * 1000 + (70000 if i % 5 == 0 else 0)))
    os.mkdir(os.path.join(os.fsencode(d), b'a dir'))
    return d


@pytest.mark.parametrize('locale', ['C.UTF-8', 'C'])
def test_hash_is_sha256sum_byte_for_byte(blobfs_bin, awkward_dir, locale):
    env = {**os.environ, 'LC_ALL': locale}
    missing = [b'missing', b'no such\nfile', b"it's gone", b'\xff/x', b'', b'a dir',
               b'plain/x', b"\nit's\n/x"]
    for name in AWKWARD_NAMES + missing:
        args = [b'--', name]
        _assert_same(_hash(blobfs_bin, args, awkward_dir, env),
                     _sha256sum(args, awkward_dir, env), f'{name!r} ({locale})')
    # All at once: the order of lines, the messages, status 1 for any failure.
    args = [b'--'] + AWKWARD_NAMES + missing + AWKWARD_NAMES[:3]
    ours = _hash(blobfs_bin, args, awkward_dir, env)
    _assert_same(ours, _sha256sum(args, awkward_dir, env), f'all names ({locale})')
    assert ours.returncode == 1
    # Only readable files: status 0.
    ours = _hash(blobfs_bin, AWKWARD_NAMES[:2], awkward_dir, env)
    _assert_same(ours, _sha256sum(AWKWARD_NAMES[:2], awkward_dir, env), 'readable')
    assert ours.returncode == 0


@pytest.mark.parametrize('args', [[], ['-'], ['-', '-'], ['plain', '-', 'plain'], ['--', '-'],
                                  ['-q'], ['--bogus'], ['plain', '-x']],
                         ids=lambda a: ' '.join(a) or 'no-args')
def test_hash_stdin_and_options_as_sha256sum(blobfs_bin, awkward_dir, args):
    data = os.urandom(300000)
    _assert_same(_hash(blobfs_bin, args, awkward_dir, stdin=data),
                 _sha256sum(args, awkward_dir, stdin=data), repr(args))


def test_hash_names_a_saved_blob(blobfs, store, tmp_path, blobfs_bin):
    data = os.urandom(3 << 20)
    (tmp_path / 'big').write_bytes(data)
    h = save(blobfs.mnt, store, data)
    r = run([blobfs_bin, 'hash', str(tmp_path / 'big')], text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f'{h}  {tmp_path / "big"}\n'


# --------------------------------------------------------------------------
# the parser


def test_unknown_command_is_an_error_not_a_mount(blobfs_bin, tmp_path):
    (tmp_path / 'FILE').write_bytes(b'x')
    (tmp_path / 'dir').mkdir()
    for args in (['hsah', 'FILE'], ['hsah', 'dir'], ['-f', 'statt', 'dir'], ['nosuch']):
        r = run([blobfs_bin] + args, cwd=tmp_path, text=True, timeout=30)
        assert r.returncode == 2, f'{args}: rc {r.returncode}\n{r.stdout}{r.stderr}'
        assert f"unknown command '{args[-2] if len(args) > 1 else args[0]}'" in r.stderr, \
            r.stderr
        assert not mounting.mounts_under(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ['FILE', 'dir'], 'a data directory was created'


@pytest.mark.parametrize('mount_word', [False, True], ids=['plain', 'mount-word'])
def test_mount_point_must_be_a_directory(blobfs_bin, tmp_path, mount_word):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'file').write_bytes(b'x')
    word = ['mount'] if mount_word else []
    for mnt, message in (('file', 'is not a directory'),
                         ('missing', 'No such file or directory')):
        r = run([blobfs_bin] + word + ['-f', str(tmp_path / 'data'), str(tmp_path / mnt)],
                text=True, timeout=30)
        assert r.returncode == 2, f'{mnt}: rc {r.returncode}\n{r.stderr}'
        assert f'mount point {tmp_path / mnt}' in r.stderr and message in r.stderr, r.stderr
    assert not mounting.mounts_under(tmp_path)
    assert os.listdir(tmp_path / 'data') == [], 'the data directory was set up anyway'


@pytest.mark.parametrize('args', [['-o', 'pack_size=0'], ['-o', 'threads=x'],
                                  ['-o', 'sync=1'], ['-o', 'min_free']],
                         ids=lambda a: a[1])
def test_bad_option_values(blobfs_bin, tmp_path, args):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'mnt').mkdir()
    r = run([blobfs_bin, '-f'] + args + [str(tmp_path / 'data'), str(tmp_path / 'mnt')],
            text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert f'bad value in -o {args[1]}' in r.stderr, r.stderr
    assert not mounting.mounts_under(tmp_path)


def test_fstab_options_are_accepted(make_mount):
    """What mount(8) and mount.fuse3 pass (or a user copies from another
    fstab line) must not stop the mount: ignored, or passed to libfuse."""
    opts = ('rw,dev,suid,exec,noatime,relatime,nodiratime,lazytime,iversion,silent,'
            'nofail,_netdev,auto,noauto,user,users,owner,group,defaults,x-systemd.automount,'
            'x-systemd.requires=network-online.target,comment=hello,async')
    m = make_mount(extra_args=['-o', opts])
    os.mkdir(m.path('s'))
    h = save(m.mnt, 's', b'fstab options')
    assert os.path.exists(m.path('s', h))


# --------------------------------------------------------------------------
# blobfs stat


def _unescape(field):
    """The reverse of the stats format's escaping of a store name."""
    def one(m):
        e = m.group(1)
        if e.startswith(b'x'):
            return bytes([int(e[1:], 16)])
        return {b'n': b'\n', b't': b'\t', b'\\': b'\\'}[e]
    return re.sub(rb'\\(x[0-9a-f]{2}|n|t|\\)', one, field)


def _parse_stat(stdout):
    """{store name (bytes): {key: int}} and the totals {key: int}."""
    stores, total = {}, None
    for line in stdout.split(b'\n')[:-1]:
        fields = dict(f.split(b'=', 1) for f in line.split(b' '))
        if b'store' in fields:
            name = _unescape(fields.pop(b'store'))
            stores[name] = {k.decode(): int(v) for k, v in fields.items()}
        else:
            assert total is None and list(fields)[0] == b'stores', line
            total = {k.decode(): int(v) for k, v in fields.items()}
    assert stdout.endswith(b'\n') and total is not None, stdout
    return stores, total


def test_stat_prints_every_store_and_totals(make_mount, blobfs_bin):
    m = make_mount()
    weird = b'we ird\nname\\x'
    sizes = {b'a': [0, 10, 5000, 2 << 20], weird: [7, 70000], b'empty': []}
    hashes = {}
    for name, lens in sizes.items():
        os.mkdir(m.path(name))
        hashes[name] = [save(m.mnt, name, os.urandom(n), name=f'f{i}')
                        for i, n in enumerate(lens)]
    os.unlink(m.path(b'a', hashes[b'a'][1]))   # a dead record in a pack
    m.umount()
    r = run([blobfs_bin, 'stat', m.data], timeout=60)
    assert r.returncode == 0, r.stderr
    stores, total = _parse_stat(r.stdout)
    assert set(stores) == set(sizes)
    assert stores[b'a']['blobs'] == 3 and stores[b'a']['bytes'] == 5000 + (2 << 20)
    assert stores[b'a']['dead_bytes'] > 10
    assert stores[weird] == {**stores[weird], 'blobs': 2, 'bytes': 70007, 'dead_bytes': 0}
    assert stores[b'empty'] == {**stores[b'empty'], 'blobs': 0, 'bytes': 0, 'dead_bytes': 0}
    for name in sizes:
        on_disk = [f for f in os.listdir(os.path.join(os.fsencode(m.data), b'stores', name))
                   if f.endswith(b'.pack')]
        assert stores[name]['packs'] == len(on_disk), name
    assert total['stores'] == 3
    for key in ('blobs', 'bytes', 'packs', 'dead_bytes'):
        assert total[key] == sum(s[key] for s in stores.values()), key
    # Compaction gives the dead bytes back.
    r = run([blobfs_bin, 'compact', m.data], timeout=120)
    assert r.returncode == 0, r.stderr
    r = run([blobfs_bin, 'stat', m.data], timeout=60)
    stores, total = _parse_stat(r.stdout)
    assert total['dead_bytes'] == 0 and total['blobs'] == 5


def test_stat_refuses(make_mount, blobfs_bin, tmp_path):
    m = make_mount()
    r = run([blobfs_bin, 'stat', m.data], text=True, timeout=60)
    assert r.returncode == 2 and 'in use' in r.stderr, r.stderr
    for args in (['memory:'], [str(tmp_path / 'missing')], []):
        r = run([blobfs_bin, 'stat'] + args, text=True, timeout=60)
        assert r.returncode == 2 and r.stderr, f'{args}: {r.returncode} {r.stderr}'
    assert not os.path.exists(tmp_path / 'missing'), 'blobfs stat created a data directory'


# --------------------------------------------------------------------------
# df


def _df(args, mnt):
    r = run(['df', '-P'] + args + [str(mnt)], text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [int(x) for x in r.stdout.splitlines()[1].split()[1:4]]


@pytest.mark.backends
def test_df_counts_blobs_as_files(make_mount):
    m = make_mount()
    total, used, free = _df(['-i'], m.mnt)
    assert used == 0 and free > 0 and total == used + free
    for store in ('s', 't'):
        os.mkdir(m.path(store))
    saved = [save(m.mnt, 's' if i % 2 else 't', os.urandom(100 + i), name=f'f{i}')
             for i in range(7)]
    # The same content in a second store is a second blob.
    save(m.mnt, 's', b'dup'), save(m.mnt, 't', b'dup')
    total, used, free = _df(['-i'], m.mnt)
    assert used == 9, f'df -i: {total} {used} {free}'
    assert total == used + free
    os.unlink(m.path('t', saved[0]))
    assert _df(['-i'], m.mnt)[1] == 8
    blocks, used_blocks, avail = _df([], m.mnt)
    assert blocks > 0 and avail > 0


# --------------------------------------------------------------------------
# log lines


def test_log_lines_escape_store_names(make_mount):
    m = make_mount()
    names = [b'a\nb', b'tab\there', b'bell\x07\x1b[31m', b'back\\slash']
    for name in names:
        os.mkdir(m.path(name))
    os.rmdir(m.path(b'a\nb'))
    m.umount()
    log = b''.join(open(p, 'rb').read() for p in m.log_files)
    lines = log.split(b'\n')
    for name, escaped in zip(names, [b'a\\nb', b'tab\\there', b'bell\\x07\\x1b[31m',
                                     b'back\\\\slash']):
        assert b'blobfs: info: store ' + escaped + b' created' in lines, log
    assert b'blobfs: info: store a\\nb destroyed' in lines, log
    for line in lines:
        assert not re.search(rb'[\x00-\x08\x0b-\x1f\x7f]', line), line
        if line and not line.startswith(b'blobfs: ') and b'Sanitizer' not in line:
            pytest.fail(f'a log line was split: {line!r}\n{log!r}')
