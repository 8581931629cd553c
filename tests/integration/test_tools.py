"""Everyday tools on a blobfs mount (the tools issue).

Each test runs a real tool, checks its exit status and then every stored
byte, computed independently from the source with hashlib: each content is a
blob of the store that reads back as the source, the store gained exactly
those blobs (no stray blob of half-written content), and each file left a
receipt at its path under incoming/ with the same content and xattr
user.blobfs.sha256 = its hash (blobfs_test.trees).

The source trees are awkward on purpose (trees.build_awkward_tree): empty
files, a 0-byte file among others, a 3 MiB file (bigger than the 1 MiB
large-blob threshold), names with spaces and unicode, directories 5 deep,
empty directories, the same content in two files (one blob, two receipts)
and, where the tool keeps them, hard links.

Single-file tools whose save already works (cp of files, dd, a redirect)
check the blobs here; the receipt each of them leaves is checked in
test_receipts.py (test_receipt_left_by_tool), so that the two failures are
told apart. Every test runs on each backend (local and memory).
"""

import os
import shutil
import stat

import pytest

from blobfs_test.files import EMPTY_SHA256, HEX64, read_file, save
from blobfs_test.trees import (BIG_SIZE, MiB, assert_new_blobs, blob_set, build_awkward_tree,
                               build_git_project, check_blobs, check_receipts, check_tree_stored,
                               get_hash_xattr, git_env, hardlinked_files, run_ok, sha256,
                               tree_dirs, tree_files)

pytestmark = pytest.mark.backends


@pytest.fixture
def src(tmp_path):
    """An awkward source tree on the local disk (no hard links)."""
    return build_awkward_tree(tmp_path / 'src')


@pytest.fixture
def src_links(tmp_path):
    """The awkward tree with hard links."""
    return build_awkward_tree(tmp_path / 'srcl', hardlinks=True)


def inc(m, store, *parts):
    return m.path(store, 'incoming', *parts)


# --------------------------------------------------------------------------
# single files (these save already; their receipts: test_receipts.py)


def test_cp_files_into_incoming(blobfs, store, src):
    names = ['README.txt', 'empty', 'with space.txt', 'ünïcödé 名前.bin', 'dup-one',
             'big/three-MiB.bin']
    paths = [os.path.join(src, n) for n in names]
    before = blob_set(blobfs.mnt, store)
    run_ok(['cp'] + paths + [inc(blobfs, store)])
    files = {n: sha256(read_file(p)) for n, p in zip(names, paths)}
    check_blobs(blobfs.mnt, store, src, files)
    assert blob_set(blobfs.mnt, store) - before == set(files.values())
    # the same file again under another name: nothing new (dedup)
    run_ok(['cp', paths[0], inc(blobfs, store, 'again')])
    assert blob_set(blobfs.mnt, store) - before == set(files.values())


@pytest.mark.parametrize('bs,size', [('4k', 100 * 1024 + 17), ('1M', BIG_SIZE + 5)],
                         ids=['bs4k', 'bs1M-3MiB'])
def test_dd_with_conv_fsync(blobfs, store, tmp_path, bs, size):
    data = os.urandom(size)
    (tmp_path / 'in.bin').write_bytes(data)
    before = blob_set(blobfs.mnt, store)
    run_ok(['dd', f'if={tmp_path / "in.bin"}', f'of={inc(blobfs, store, "dd.out")}',
            f'bs={bs}', 'conv=fsync', 'status=none'])
    h = sha256(data)
    # the blob exists as soon as dd (its last close) returned
    assert read_file(blobfs.path(store, h)) == data
    assert blob_set(blobfs.mnt, store) - before == {h}


def test_shell_redirection(blobfs, store, src):
    big = os.path.join(src, 'big/three-MiB.bin')
    before = blob_set(blobfs.mnt, store)
    run_ok(f'cat "{big}" > "{inc(blobfs, store, "redir")}"', shell=True)
    run_ok(f'printf "%s\\n" hello > "{inc(blobfs, store, "hello")}"', shell=True)
    h_big, h_hello = sha256(read_file(big)), sha256(b'hello\n')
    assert read_file(blobfs.path(store, h_big)) == read_file(big)
    assert read_file(blobfs.path(store, h_hello)) == b'hello\n'
    assert blob_set(blobfs.mnt, store) - before == {h_big, h_hello}


def test_shared_redirect_with_builtins(blobfs, store):
    """`{ echo a; echo b; } > f`: one open file shared by two commands."""
    before = blob_set(blobfs.mnt, store)
    run_ok(f'{{ echo a; echo b; printf "%s" tail; }} > "{inc(blobfs, store, "log")}"',
           shell=True)
    h = sha256(b'a\nb\ntail')
    assert read_file(blobfs.path(store, h)) == b'a\nb\ntail'
    assert blob_set(blobfs.mnt, store) - before == {h}


def test_shared_redirect_with_external_commands(blobfs, store):
    """The redirect is inherited by child processes that each close it at
    exit: still one blob, the final content."""
    before = blob_set(blobfs.mnt, store)
    run_ok(f'{{ /bin/echo one; /bin/echo two; cat /dev/null; /bin/echo three; }} '
           f'> "{inc(blobfs, store, "log")}"', shell=True)
    final = b'one\ntwo\nthree\n'
    assert_new_blobs(blobfs.mnt, store, before, [final])
    assert read_file(inc(blobfs, store, 'log')) == final
    assert get_hash_xattr(inc(blobfs, store, 'log')) == sha256(final)


# --------------------------------------------------------------------------
# trees


def test_cp_r(blobfs, store, src):
    before = blob_set(blobfs.mnt, store)
    run_ok(['cp', '-r', src, inc(blobfs, store, 'tree')])
    check_tree_stored(blobfs.mnt, store, 'tree', src, before)


def test_cp_a_keeps_times_modes_and_hard_links(blobfs, store, src_links):
    os.chmod(os.path.join(src_links, 'README.txt'), 0o600)
    os.chmod(os.path.join(src_links, 'l1/l2/l3'), 0o750)
    os.utime(os.path.join(src_links, 'with space.txt'), ns=(1_000_000_123, 1_500_000_456))
    os.utime(os.path.join(src_links, 'l1/l2/l3/l4'), ns=(2_000_000_000, 2_000_000_000))
    before = blob_set(blobfs.mnt, store)
    run_ok(['cp', '-a', src_links, inc(blobfs, store, 'tree')])
    files = check_tree_stored(blobfs.mnt, store, 'tree', src_links, before)
    problems = []
    for rel in sorted(list(files) + sorted(tree_dirs(src_links))):
        s = os.lstat(os.path.join(src_links, rel))
        d = os.lstat(inc(blobfs, store, 'tree', rel))
        if stat.S_IMODE(s.st_mode) != stat.S_IMODE(d.st_mode):
            problems.append(f'{rel}: mode {oct(d.st_mode)} != {oct(s.st_mode)}')
        if s.st_mtime_ns != d.st_mtime_ns:
            problems.append(f'{rel}: mtime {d.st_mtime_ns} != {s.st_mtime_ns}')
    assert not problems, 'cp -a did not keep:\n  ' + '\n  '.join(problems)


def test_mv_tree_from_another_file_system(blobfs, store, src, tmp_path):
    # a copy to move (the fixture's tree is the reference)
    moving = tmp_path / 'moving'
    shutil.copytree(src, moving)
    single = tmp_path / 'single file.bin'
    single.write_bytes(os.urandom(5000))
    single_data = single.read_bytes()
    before = blob_set(blobfs.mnt, store)
    run_ok(['mv', str(single), inc(blobfs, store)])
    assert not single.exists()
    assert read_file(blobfs.path(store, sha256(single_data))) == single_data
    run_ok(['mv', str(moving), inc(blobfs, store, 'tree')])
    assert not moving.exists(), 'mv left its source behind'
    check_tree_stored(blobfs.mnt, store, 'tree', src, before | {sha256(single_data)})
    assert read_file(inc(blobfs, store, 'single file.bin')) == single_data


def test_mv_blobs_between_stores(blobfs):
    os.mkdir(blobfs.path('a'))
    os.mkdir(blobfs.path('b'))
    contents = [b'', b'small blob\n', os.urandom(BIG_SIZE)]
    hexes = [save(blobfs.mnt, 'a', c, name=f'f{i}') for i, c in enumerate(contents)]
    run_ok(['mv'] + [blobfs.path('a', h) for h in hexes] + [blobfs.path('b') + '/'])
    for h, c in zip(hexes, contents):
        assert read_file(blobfs.path('b', h)) == c
    assert blob_set(blobfs.mnt, 'a') == set(), 'mv left the blobs in a/'
    assert blob_set(blobfs.mnt, 'b') == set(hexes)


def test_cp_blobs_between_stores(blobfs):
    os.mkdir(blobfs.path('a'))
    os.mkdir(blobfs.path('b'))
    contents = [b'', b'small blob\n', os.urandom(BIG_SIZE)]
    hexes = [save(blobfs.mnt, 'a', c, name=f'f{i}') for i, c in enumerate(contents)]
    run_ok(['cp'] + [blobfs.path('a', h) for h in hexes] + [blobfs.path('b') + '/'])
    for h, c in zip(hexes, contents):
        assert read_file(blobfs.path('b', h)) == c
        assert read_file(blobfs.path('a', h)) == c
    assert blob_set(blobfs.mnt, 'b') == set(hexes)
    assert blob_set(blobfs.mnt, 'a') == set(hexes)


def test_install(blobfs, store, src):
    before = blob_set(blobfs.mnt, store)
    one = os.path.join(src, 'README.txt')
    run_ok(['install', '-m', '0640', one, inc(blobfs, store, 'installed')])
    st = os.stat(inc(blobfs, store, 'installed'))
    assert stat.S_IMODE(st.st_mode) == 0o640
    big = os.path.join(src, 'big/three-MiB.bin')
    run_ok(['install', '-D', '-m', '0755', big, inc(blobfs, store, 'deep/er/three-MiB.bin')])
    files = {'installed': sha256(read_file(one))}
    check_blobs(blobfs.mnt, store, src, {'README.txt': files['installed'],
                                         'big/three-MiB.bin': sha256(read_file(big))})
    assert blob_set(blobfs.mnt, store) - before == {files['installed'], sha256(read_file(big))}
    assert read_file(inc(blobfs, store, 'installed')) == read_file(one)
    assert get_hash_xattr(inc(blobfs, store, 'installed')) == files['installed']
    assert read_file(inc(blobfs, store, 'deep/er/three-MiB.bin')) == read_file(big)
    assert stat.S_IMODE(os.stat(inc(blobfs, store, 'deep/er/three-MiB.bin')).st_mode) == 0o755


def test_tar_x_with_hard_links_empty_files_and_dirs(blobfs, store, src_links, tmp_path):
    tarball = tmp_path / 'tree.tar'
    run_ok(['tar', '-cf', str(tarball), '-C', os.path.dirname(src_links),
            os.path.basename(src_links)])
    listing = run_ok(['tar', '-tvf', str(tarball)]).stdout
    assert ' link to ' in listing, 'the tarball should hold hard links'
    before = blob_set(blobfs.mnt, store)
    run_ok(['tar', '-xf', str(tarball), '-C', inc(blobfs, store)])
    check_tree_stored(blobfs.mnt, store, os.path.basename(src_links), src_links, before)


def test_rsync_a_twice(blobfs, store, src_links):
    before = blob_set(blobfs.mnt, store)
    run_ok(['rsync', '-a', src_links + '/', inc(blobfs, store, 'tree') + '/'])
    files = check_tree_stored(blobfs.mnt, store, 'tree', src_links, before)
    # a second rsync of the same tree: exit 0, nothing new, all still there
    run_ok(['rsync', '-a', src_links + '/', inc(blobfs, store, 'tree') + '/'])
    assert blob_set(blobfs.mnt, store) - before == set(files.values())
    check_tree_stored(blobfs.mnt, store, 'tree', src_links, before)


def test_cpio_pdm(blobfs, store, src_links):
    before = blob_set(blobfs.mnt, store)
    run_ok(f'find . -print | cpio -pdm --quiet "{inc(blobfs, store, "tree")}"', shell=True,
           cwd=src_links)
    check_tree_stored(blobfs.mnt, store, 'tree', src_links, before)


def test_python_shutil_copytree_and_copy2(blobfs, store, src):
    before = blob_set(blobfs.mnt, store)
    shutil.copytree(src, inc(blobfs, store, 'tree'))
    check_tree_stored(blobfs.mnt, store, 'tree', src, before)
    one = os.path.join(src, 'with space.txt')
    os.utime(one, ns=(1_234_567_890_000_000_000, 1_234_567_890_123_456_789))
    shutil.copy2(one, inc(blobfs, store, 'copied with copy2'))
    d = os.stat(inc(blobfs, store, 'copied with copy2'))
    assert d.st_mtime_ns == os.stat(one).st_mtime_ns
    assert read_file(inc(blobfs, store, 'copied with copy2')) == read_file(one)
    assert get_hash_xattr(inc(blobfs, store, 'copied with copy2')) == sha256(read_file(one))


# --------------------------------------------------------------------------
# tools that read a store


def test_sha256sum_c_over_a_store(blobfs, store, tmp_path):
    contents = [b'', b'x', os.urandom(1000), os.urandom(MiB + 3), os.urandom(BIG_SIZE)]
    hexes = [save(blobfs.mnt, store, c, name=f'f{i}') for i, c in enumerate(contents)]
    sums = tmp_path / 'SHA256SUMS'
    listed = sorted(blob_set(blobfs.mnt, store))
    assert listed == sorted(hexes)
    sums.write_text(''.join(f'{h}  {h}\n' for h in listed))
    r = run_ok(['sha256sum', '-c', str(sums)], cwd=blobfs.path(store))
    lines = r.stdout.splitlines()
    assert sorted(lines) == sorted(f'{h}: OK' for h in listed), r.stdout


def test_ls_l_of_a_store(blobfs, store):
    contents = {save(blobfs.mnt, store, c, name=f'f{i}'): c
                for i, c in enumerate([b'', b'abc', os.urandom(70000), os.urandom(MiB + 1)])}
    r = run_ok(['ls', '-l', '--time-style=+%s', blobfs.path(store)])
    seen = {}
    for line in r.stdout.splitlines()[1:]:      # "total N" first
        fields = line.split()
        name = fields[-1]
        if name == 'incoming':
            assert fields[0].startswith('d'), line
            continue
        assert HEX64.match(name), line
        assert fields[0].startswith('-r--r--r--'), line
        seen[name] = int(fields[4])
    assert seen == {h: len(c) for h, c in contents.items()}


def test_find_in_a_store_and_in_incoming(blobfs, store, src):
    hexes = {save(blobfs.mnt, store, c, name=f'f{i}') for i, c in
             enumerate([b'one', b'two', b''])}
    r = run_ok(['find', blobfs.path(store), '-maxdepth', '1', '-type', 'f'])
    assert {os.path.basename(p) for p in r.stdout.splitlines()} >= hexes
    run_ok(['cp', '-r', src, inc(blobfs, store, 'tree')])
    r = run_ok(['find', inc(blobfs, store, 'tree'), '-type', 'f'])
    found = sorted(os.path.relpath(p, inc(blobfs, store, 'tree')) for p in r.stdout.splitlines())
    assert found == sorted(tree_files(src))
    r = run_ok(['find', inc(blobfs, store, 'tree'), '-mindepth', '1', '-type', 'd'])
    found = sorted(os.path.relpath(p, inc(blobfs, store, 'tree')) for p in r.stdout.splitlines())
    assert found == sorted(tree_dirs(src))
    r = run_ok(['find', inc(blobfs, store, 'tree'), '-type', 'f', '-empty'])
    assert len(r.stdout.splitlines()) == sum(1 for h in tree_files(src).values()
                                             if h == EMPTY_SHA256)


def test_du_of_a_store(blobfs, store):
    contents = [os.urandom(n) for n in (10, 4096, 100_000, MiB + 1, BIG_SIZE)]
    for i, c in enumerate(contents):
        save(blobfs.mnt, store, c, name=f'f{i}')
    r = run_ok(['du', '-sb', blobfs.path(store)])
    assert int(r.stdout.split()[0]) >= sum(len(c) for c in contents), r.stdout
    r = run_ok(['du', '-ab', blobfs.path(store)])
    sizes = {os.path.basename(line.split('\t')[1]): int(line.split('\t')[0])
             for line in r.stdout.splitlines()}
    for c in contents:
        assert sizes[sha256(c)] == len(c)


def test_df_shows_disk_size_and_blob_count(blobfs):
    for s in ('a', 'b'):
        os.mkdir(blobfs.path(s))
    n = 0
    for s in ('a', 'b'):
        for i in range(3 if s == 'a' else 4):
            save(blobfs.mnt, s, f'{s} blob {i}'.encode(), name=f'f{i}')
            n += 1
    # receipts are not blobs: remove them before counting
    for s in ('a', 'b'):
        for name in os.listdir(inc(blobfs, s)):
            os.unlink(inc(blobfs, s, name))
    r = run_ok(['df', '-B1', '--output=size,used,avail', blobfs.mnt])
    size = int(r.stdout.splitlines()[1].split()[0])
    assert size > 0
    if blobfs.backend == 'local':
        d = os.statvfs(blobfs.data)
        assert size == d.f_blocks * d.f_frsize, (size, d.f_blocks * d.f_frsize)
    r = run_ok(['df', '-i', '-P', blobfs.mnt])
    # Filesystem Inodes IUsed IFree IUse% Mounted-on (the last: our path, no spaces)
    fields = r.stdout.splitlines()[1].split()
    assert fields[-1] == blobfs.mnt, r.stdout
    itotal, iused = int(fields[-5]), int(fields[-4])
    assert iused == n, f'df -i IUsed {iused}, expected the blob count {n}\n{r.stdout}'
    assert itotal >= n


def test_getfattr_prints_the_hash(blobfs, store, tmp_path):
    data = b'what getfattr shows\n'
    (tmp_path / 'f').write_bytes(data)
    run_ok(['cp', str(tmp_path / 'f'), inc(blobfs, store, 'name with space')])
    h = sha256(data)
    for path in (inc(blobfs, store, 'name with space'), blobfs.path(store, h)):
        r = run_ok(['getfattr', '-n', 'user.blobfs.sha256', '--only-values', path])
        assert r.stdout == h, repr(r.stdout)
        r = run_ok(['getfattr', '-n', 'user.blobfs.sha256', '--absolute-names', path])
        assert f'user.blobfs.sha256="{h}"' in r.stdout, r.stdout


# --------------------------------------------------------------------------
# a real project: git


def test_git_project_with_hard_links_cp_a_and_tar_x(blobfs, store, tmp_path):
    proj = build_git_project(tmp_path / 'proj', tmp_path / 'home')
    assert hardlinked_files(proj), 'the project should have hard-linked files'
    before = blob_set(blobfs.mnt, store)
    run_ok(['cp', '-a', proj, inc(blobfs, store, 'by-cp')])
    files = check_tree_stored(blobfs.mnt, store, 'by-cp', proj, before)
    tarball = tmp_path / 'proj.tar'
    run_ok(['tar', '-cf', str(tarball), '-C', proj, '.'])
    os.mkdir(inc(blobfs, store, 'by-tar'))
    run_ok(['tar', '-xf', str(tarball), '-C', inc(blobfs, store, 'by-tar')])
    check_tree_stored(blobfs.mnt, store, 'by-tar', proj, before)
    assert blob_set(blobfs.mnt, store) - before == set(files.values())


def test_git_clone_into_incoming(blobfs, store, tmp_path):
    proj = build_git_project(tmp_path / 'proj', tmp_path / 'home')
    env = git_env(tmp_path / 'home')
    repo = os.path.join(proj, 'repo')
    dest = inc(blobfs, store, 'clone')
    run_ok(['git', 'clone', '-q', repo, dest], env=env)
    # the work tree is the source's
    work = {rel: h for rel, h in tree_files(repo).items() if not rel.startswith('.git/')}
    cloned = tree_files(dest)
    for rel, h in work.items():
        assert cloned.get(rel) == h, f'{rel}: not cloned right'
    # every file of the clone (work tree and .git) is stored and has its receipt
    listed = blob_set(blobfs.mnt, store)
    missing = sorted(rel for rel, h in cloned.items() if h not in listed)
    assert not missing, f'{len(missing)} of {len(cloned)} files of the clone not stored: ' \
                        f'{missing[:10]}'
    check_blobs(blobfs.mnt, store, dest, cloned)
    check_receipts(blobfs.mnt, store, 'clone', dest, cloned)
    head = run_ok(['git', '-C', repo, 'rev-parse', 'HEAD'], env=env).stdout.strip()
    assert run_ok(['git', '-C', dest, 'rev-parse', 'HEAD'], env=env).stdout.strip() == head
    run_ok(['git', '-C', dest, 'fsck', '--no-progress'], env=env)
