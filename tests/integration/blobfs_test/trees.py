"""Trees of files for the tool tests: building awkward source trees on a
local file system, describing them independently of blobfs (hashlib), and
checking that a tree copied into S/incoming/ by some tool was stored byte for
byte: every content is a blob of the store, each blob reads back as the
source, and each file left a receipt (same content, xattr
user.blobfs.sha256 = its hash) at its path under incoming/.

The checks collect every problem and fail once with a summary, so that a
failure says how much is missing (e.g. "12 of 12 receipts missing") rather
than only the first path.
"""

import errno
import hashlib
import os
import stat
import subprocess

from .common import bpath
from .files import read_file

KiB = 1 << 10
MiB = 1 << 20

XATTR = 'user.blobfs.sha256'

BIG_SIZE = 3 * MiB   # bigger than the 1 MiB large-blob threshold


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def build_awkward_tree(root, hardlinks=False, big=True, seed=b''):
    """Make a tree under `root` (a directory on a local file system) with:
    empty files (one among others in a busy directory), a 3 MiB file (bigger
    than the large-blob threshold), names with spaces and unicode, a
    directory chain 5 deep with a file at the bottom, duplicate content in
    two files (dedup: one blob, two receipts), empty directories, and
    optionally hard links. `seed` makes the contents distinct from another
    tree's. Returns `root` (str)."""
    root = str(root)
    os.makedirs(root, exist_ok=True)
    files = {
        'README.txt': b'a small text file\n' + seed,
        'empty': b'',
        'with space.txt': b'name with spaces\n' + seed,
        'ünïcödé 名前.bin': 'unicode name ✓\n'.encode() + seed,
        'dup-one': b'the same content twice\n' + seed,
        'sub/dup-two': b'the same content twice\n' + seed,
        'sub/zero among others/a': b'first\n' + seed,
        'sub/zero among others/b (empty)': b'',
        'sub/zero among others/c': b'third\n' + seed,
        'l1/l2/l3/l4/l5/deep file': b'five directories down\n' + seed,
        'l1/l2/l3/l4/l5/another empty': b'',
        'l1/mid.dat': bytes(range(256)) * 64 + seed,            # 16 KiB
        'odd/just under 64k': os.urandom(64 * KiB - 1),
        'odd/exactly 1MiB': os.urandom(MiB),
    }
    if big:
        files['big/three-MiB.bin'] = os.urandom(BIG_SIZE)
    for rel, data in files.items():
        _write(os.path.join(root, rel), data)
    for d in ('empty dir', 'l1/l2/empty leaf dir', 'sub/ünï dir/nested empty'):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    if hardlinks:
        os.makedirs(os.path.join(root, 'links'), exist_ok=True)
        os.link(os.path.join(root, 'README.txt'), os.path.join(root, 'links', 'README hard link'))
        os.link(os.path.join(root, 'empty'), os.path.join(root, 'links', 'empty hard link'))
        if big:
            os.link(os.path.join(root, 'big/three-MiB.bin'),
                    os.path.join(root, 'links', 'big hard link'))
    return root


def tree_files(root):
    """{relative path (str): sha256 hex} of every regular file under root
    (symlinks are not followed and not listed)."""
    out = {}
    root = str(root)
    for dirpath, dirs, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                out[os.path.relpath(p, root)] = sha256(read_file(p))
    return out


def tree_dirs(root):
    """Relative paths of every directory under root (root itself excluded)."""
    out = set()
    root = str(root)
    for dirpath, dirs, names in os.walk(root):
        for d in dirs:
            out.add(os.path.relpath(os.path.join(dirpath, d), root))
    return out


def blob_set(mnt, store):
    """The set of blob names in mnt/store (everything listed but incoming)."""
    return {os.fsdecode(n) for n in os.listdir(bpath(mnt, store))
            if os.fsdecode(n) != 'incoming'}


def _fmt(problems, what, total):
    head = f'{len(problems)} of {total} {what}:'
    return '\n  '.join([head] + problems[:15] + (['...'] if len(problems) > 15 else []))


def check_blobs(mnt, store, src_root, files):
    """Every content of `files` ({rel: hex} under src_root) is a blob of
    mnt/store and reads back as the source bytes."""
    listed = blob_set(mnt, store)
    problems = []
    by_hash = {}
    for rel, h in sorted(files.items()):
        by_hash.setdefault(h, rel)
    for h, rel in sorted(by_hash.items()):
        if h not in listed:
            problems.append(f'{h[:16]}… (content of {rel!r}) not listed in {store}/')
            continue
        try:
            got = read_file(bpath(mnt, store, h))
        except OSError as e:
            problems.append(f'{h[:16]}… ({rel!r}): read failed: {e}')
            continue
        if got != read_file(os.path.join(str(src_root), rel)):
            problems.append(f'{h[:16]}… ({rel!r}): reads back {len(got)} bytes that differ '
                            f'from the source')
    assert not problems, _fmt(problems, 'contents not stored right', len(by_hash))


def get_hash_xattr(path):
    """The value of user.blobfs.sha256 of `path`, decoded."""
    return os.getxattr(path, XATTR).decode(errors='replace')


def check_receipts(mnt, store, prefix, src_root, files):
    """Each file `rel` of `files` has a receipt at incoming/<prefix>/<rel>:
    a regular file with the source's content and xattr user.blobfs.sha256 =
    its hash."""
    problems = []
    for rel, h in sorted(files.items()):
        p = bpath(mnt, store, 'incoming', prefix, rel) if prefix else \
            bpath(mnt, store, 'incoming', rel)
        shown = os.path.join('incoming', prefix, rel)
        try:
            st = os.lstat(p)
        except OSError as e:
            problems.append(f'{shown}: no receipt ({errno.errorcode.get(e.errno, e.errno)})')
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(f'{shown}: not a regular file (mode {oct(st.st_mode)})')
            continue
        try:
            got = read_file(p)
        except OSError as e:
            problems.append(f'{shown}: read failed: {e}')
            continue
        if got != read_file(os.path.join(str(src_root), rel)):
            problems.append(f'{shown}: content differs from the source '
                            f'({len(got)} bytes, sha256 {sha256(got)[:16]}…)')
            continue
        try:
            x = get_hash_xattr(p)
        except OSError as e:
            problems.append(f'{shown}: xattr {XATTR}: {errno.errorcode.get(e.errno, e.errno)}')
            continue
        if x != h:
            problems.append(f'{shown}: xattr {XATTR} = {x!r}, expected {h}')
    assert not problems, _fmt(problems, 'receipts wrong', len(files))


def check_dirs(mnt, store, prefix, dirs):
    """Each directory of `dirs` exists under incoming/<prefix>/."""
    problems = []
    for rel in sorted(dirs):
        p = bpath(mnt, store, 'incoming', prefix, rel)
        try:
            if not stat.S_ISDIR(os.lstat(p).st_mode):
                problems.append(f'incoming/{prefix}/{rel}: not a directory')
        except OSError as e:
            problems.append(f'incoming/{prefix}/{rel}: {errno.errorcode.get(e.errno, e.errno)}')
    assert not problems, _fmt(problems, 'directories missing', len(dirs))


def check_tree_stored(mnt, store, prefix, src_root, before=None, dirs=True):
    """The whole check of a tree copied from src_root to
    S/incoming/<prefix>/: the contents are blobs that read back right, the
    store gained exactly those blobs (when `before`, the blob set before the
    copy, is given: no stray blob of half-written content), the directories
    exist and every file has its receipt. Returns tree_files(src_root)."""
    files = tree_files(src_root)
    assert files, f'{src_root} has no files'
    check_blobs(mnt, store, src_root, files)
    if before is not None:
        new = blob_set(mnt, store) - set(before)
        expected = set(files.values()) - set(before)
        assert new == expected, (f'the store gained {len(new)} blobs, expected {len(expected)}; '
                                 f'unexpected: {sorted(new - expected)[:5]}, '
                                 f'missing: {sorted(expected - new)[:5]}')
    if dirs:
        check_dirs(mnt, store, prefix, tree_dirs(src_root))
    check_receipts(mnt, store, prefix, src_root, files)
    return files


def run_ok(cmd, what=None, **kwargs):
    """Run a command (list, or str with shell=True); assert exit status 0
    with its stderr in the message. Returns the CompletedProcess (text)."""
    kwargs.setdefault('timeout', 90)
    kwargs.setdefault('capture_output', True)
    kwargs.setdefault('stdin', subprocess.DEVNULL)
    kwargs.setdefault('text', True)
    r = subprocess.run(cmd, **kwargs)
    assert r.returncode == 0, (f'{what or cmd!r} exited with {r.returncode}\n'
                               f'stdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-3000:]}')
    return r


GIT_ENV = {
    'GIT_AUTHOR_NAME': 'Test', 'GIT_AUTHOR_EMAIL': 'test@example.invalid',
    'GIT_COMMITTER_NAME': 'Test', 'GIT_COMMITTER_EMAIL': 'test@example.invalid',
    'GIT_CONFIG_NOSYSTEM': '1', 'GIT_TERMINAL_PROMPT': '0',
}


def git_env(home):
    env = dict(os.environ)
    env.update(GIT_ENV)
    env['HOME'] = str(home)
    env['GIT_CONFIG_GLOBAL'] = os.path.join(str(home), '.gitconfig')
    return env


def build_git_project(root, home):
    """A small real project under `root`: `repo/` (git init, files with
    awkward names, three commits, git gc so the objects are packed) and
    `clone/` (git clone --local of it, whose pack files are hard links of
    repo's), plus an `ln` hard link of a work-tree file. Returns root."""
    root = str(root)
    os.makedirs(home, exist_ok=True)
    env = git_env(home)
    repo = os.path.join(root, 'repo')
    os.makedirs(repo)
    run_ok(['git', 'init', '-q', '-b', 'main', repo], env=env)
    _write(os.path.join(repo, 'src', 'main.c'), b'int main(void) { return 0; }\n')
    _write(os.path.join(repo, 'README'), b'project\n')
    _write(os.path.join(repo, 'empty file'), b'')
    run_ok(['git', '-C', repo, 'add', '-A'], env=env)
    run_ok(['git', '-C', repo, 'commit', '-q', '-m', 'one'], env=env)
    _write(os.path.join(repo, 'docs', 'ünï café.md'), 'notes ✓\n'.encode())
    _write(os.path.join(repo, 'data', 'blob.bin'), os.urandom(200 * KiB))
    run_ok(['git', '-C', repo, 'add', '-A'], env=env)
    run_ok(['git', '-C', repo, 'commit', '-q', '-m', 'two'], env=env)
    _write(os.path.join(repo, 'README'), b'project, second version\n')
    run_ok(['git', '-C', repo, 'commit', '-q', '-am', 'three'], env=env)
    run_ok(['git', '-C', repo, 'gc', '-q'], env=env)
    run_ok(['git', 'clone', '-q', '--local', repo, os.path.join(root, 'clone')], env=env)
    os.link(os.path.join(repo, 'README'), os.path.join(root, 'README hard link'))
    return root


def hardlinked_files(root):
    """Groups (lists of relative paths) of files under root that share an
    inode."""
    groups = {}
    for dirpath, dirs, names in os.walk(str(root)):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                groups.setdefault((st.st_dev, st.st_ino), []).append(
                    os.path.relpath(p, str(root)))
    return [sorted(g) for g in groups.values() if len(g) > 1]


def assert_new_blobs(mnt, store, before, expected_contents):
    """The store gained exactly the blobs of `expected_contents` (a list of
    bytes) since `before` (a blob set), and each reads back right: no blob
    of half-written content was left behind. Says what the extra blobs
    hold when there are some."""
    expected = {sha256(c): c for c in expected_contents}
    new = blob_set(mnt, store) - set(before)
    extra = sorted(new - set(expected))
    missing = sorted(set(expected) - new - set(before))
    if extra or missing:
        shown = []
        for h in extra[:5]:
            try:
                data = read_file(bpath(mnt, store, h))
                shown.append(f'{h[:16]}… {len(data)} bytes {data[:40]!r}')
            except OSError as e:
                shown.append(f'{h[:16]}… unreadable: {e}')
        raise AssertionError(
            f'the store gained {len(new)} blob(s), expected {len(expected)} '
            f'(the final content only); missing: {[m[:16] for m in missing]}; '
            f'extra blobs: {shown}')
    for h, c in expected.items():
        assert read_file(bpath(mnt, store, h)) == c, f'{h[:16]}… reads back wrong'
