# benchlib/workloads_io.py - the workloads of bytes and files: 1-3 (cp, dd
# conv=fsync and cat of one big file; 1b a re-save, 1c a save into blobfs
# -o compress=zstd, 2b two big files at once), 4 (cp -r of many small files,
# 4b reading them back, git as the reference), 5 (space of 1 KiB blobs; 5b a
# source tree with and without compression) and 7 (write amplification).
# Each makes its rows, then measures them on every system.

import hashlib
import os
import shutil
import stat
import time

from .common import (KiB, MiB, MB, SYSTEMS, NAMES, NO_COMPRESS, q, BenchError, human)

# Row 1c: the size of its file; row 5b: the tree it copies.
SIZE_1C = 512 * MiB
TREE = '/usr/include'


class WorkloadsIO:
    """Workloads 1-5 and 7 (mixed into cli.Bench)."""

    def w_big(self):
        """Workloads 1-3: cp, dd conv=fsync and cat of one big file."""
        size = self.big
        hs = human(size)
        r1 = self.add_row('1', f'cp of a {hs} file (MB/s)', 'rate',
                          [('minref', 'sha', 0.65), ('min', 'pt', 1.5)],
                          '≥ 0.65× one-core SHA-256 (`openssl dgst -sha256` of the same file) '
                          'and ≥ 1.5× passthrough_ll')
        r1.refs['sha'] = ('SHA-256', [])
        r1b = self.add_row('1b', f'cp of the same {hs} again, to another name: a re-save of '
                           'content already stored (MB/s)', 'rate', [('minref', 'new', 0.9)],
                           '≥ a new save (0.9× for the noise)')
        r1b.refs['new'] = ('a new save', [])
        r1c = self.add_row('1c', f'cp of a new {human(SIZE_1C)} file of random bytes into blobfs '
                           '-o compress=zstd (MB/s)', 'rate', [('minref', 'plain', 0.9)],
                           '≥ 0.9× blobfs without compression (row 1)')
        r1c.refs['plain'] = ('blobfs without compression', [])
        for s in ('ext4', 'pt', 'naive'):
            r1c.text[s] = 'n/a (blobfs only)'
        r2 = self.add_row('2', f'dd bs=1M conv=fsync of a {hs} file (MB/s)', 'rate',
                          [('min', 'ext4', 0.5)], '≥ 0.5× ext4')
        r2b = self.add_row('2b', f'cp of two {hs} files at once (MB/s, both together)', 'rate',
                           [('minref', 'one', 1.4)], '≥ 1.4× one file\'s rate')
        r2b.refs['one'] = ('one file', [])
        r3c = self.add_row('3', self.cold(f'cat of a {hs} blob to /dev/null, cold (MB/s)'), 'rate',
                           [('min', 'pt', 1.0)], '≥ 1.0× passthrough_ll')
        r3w = self.add_row('3', f'cat of a {hs} blob to /dev/null, warm (MB/s)', 'rate',
                           [('min', 'ext4', 0.9)], '≥ 0.9× ext4')
        src = os.path.join(self.B, 'src', 'big')
        self.log(f'workloads 1-3: generating a {hs} random file')
        h = self.gen_file(src, size)
        c = self.open_ctx('w123')
        z = None
        try:
            if not c.bfs_err:
                os.makedirs(c.bfs + '/S', exist_ok=True)
            z = self.big_zstd_open(c, r1c)
            dest = {'ext4': c.ext4 + '/big', 'pt': c.pt + '/big', 'naive': f'{c.naive}/{h}',
                    'blobfs': f'{c.bfs}/S/{h}'}
            cmds = {
                'cp': {'ext4': f'cp {q(src)} {q(c.ext4)}/big',
                       'pt': f'cp {q(src)} {q(c.pt)}/big',
                       'naive': f'h=$(sha256sum {q(src)} | cut -c1-64); cp {q(src)} {q(c.naive)}/"$h"',
                       'blobfs': f'cp {q(src)} {q(c.bfs)}/S/incoming/big'},
                'dd': {'ext4': f'dd if={q(src)} of={q(c.ext4)}/big bs=1M conv=fsync status=none',
                       'pt': f'dd if={q(src)} of={q(c.pt)}/big bs=1M conv=fsync status=none',
                       'naive': f'h=$(sha256sum {q(src)} | cut -c1-64); dd if={q(src)} '
                                f'of={q(c.naive)}/"$h" bs=1M conv=fsync status=none',
                       'blobfs': f'dd if={q(src)} of={q(c.bfs)}/S/incoming/big bs=1M conv=fsync '
                                 'status=none'},
            }

            def check(s):
                try:
                    got = os.stat(dest[s]).st_size
                except OSError as e:
                    raise BenchError(f'{self.show(dest[s])} missing after the copy: {e.strerror}')
                if got != size:
                    raise BenchError(f'{self.show(dest[s])} has {got} bytes, expected {size}')

            def remove(s):
                try:
                    os.unlink(dest[s])
                except FileNotFoundError:
                    pass
                except OSError as e:
                    raise BenchError(f'rm {self.show(dest[s])}: {e.strerror}')
                self.sync()

            for key, row, sec in (('cp', r1, '1'), ('dd', r2, '2')):
                self.log(f'workload {sec}: {key} of {hs}')
                for rep in range(self.runs):
                    for s in self.order(rep):
                        def one(s=s, rep=rep):
                            self.sync()
                            self.warm([src])
                            t = self.timed(cmds[key][s], log=(sec, s) if rep == 0 else None)
                            check(s)
                            remove(s)
                            return size / t / MB
                        self.attempt(c, row, s, one)
                        if s in row.failed:
                            try:
                                remove(s)
                            except BenchError:
                                pass
                    if key == 'cp':
                        # The one-core SHA-256 rate of the same cached file.
                        self.warm([src])
                        t = self.timed(f'openssl dgst -sha256 {q(src)} >/dev/null')
                        r1.refs['sha'][1].append(size / t / MB)
                        if z:
                            self.big_zstd_run(z, rep, r1c)
                if key == 'cp' and z:
                    self.big_zstd_close(z)
                    z = None
            # 1c's reference: row 1's figure for blobfs, measured in the same rounds.
            if 'blobfs' not in r1.failed:
                r1c.refs['plain'] = ('blobfs without compression', list(r1.samples['blobfs']))
            if not c.bfs_err:
                self.w_big_blobfs_more(c, src, size, hs, r1, r1b, r2b)

            # 3: reads. Put the file in place on every system.
            self.log(f'workload 3: cat of {hs}, cold and warm')
            placed = {}
            for s in SYSTEMS:
                def place(s=s):
                    if s == 'ext4':
                        shutil.copyfile(src, dest['ext4'])
                    elif s == 'pt':
                        shutil.copyfile(src, c.pt_src + '/big')
                    elif s == 'naive':
                        shutil.copyfile(src, dest['naive'])
                    else:
                        self.run(cmds['cp']['blobfs'])
                    check(s)
                    placed[s] = True
                try:
                    if s == 'blobfs' and c.bfs_err:
                        raise BenchError(c.bfs_err)
                    if s == 'pt' and c.pt_err:
                        raise BenchError(c.pt_err)
                    place()
                except (BenchError, OSError) as e:
                    r3c.failed[s] = r3w.failed[s] = f'could not put the file in place: {e}'
            self.sync()

            def cat(s, rep, section):
                return self.timed(f'cat {q(dest[s])} >/dev/null',
                                  log=(section, s) if rep == 0 else None)

            for rep in range(self.runs):
                for s in self.order(rep):
                    def cold(s=s, rep=rep):
                        if s == 'blobfs':
                            self.umount(c.bfs)
                            self.mount_blobfs(c.bdata, c.bfs)
                        elif s == 'pt':
                            self.umount(c.pt)
                            self.mount_pt(c.pt_src, c.pt)
                        self.drop_caches()
                        return size / cat(s, rep, '3 cold') / MB
                    self.attempt(c, r3c, s, cold)
            for rep in range(self.runs):
                for s in self.order(rep):
                    def warm(s=s, rep=rep):
                        if rep == 0:
                            cat(s, 1, '3 warm')   # warm-up read, not counted
                        return size / cat(s, rep, '3 warm') / MB
                    self.attempt(c, r3w, s, warm)
            if 'blobfs' in placed and 'blobfs' not in r3w.failed:
                self.log('  checking the content read back from blobfs (sha256sum, not timed)')
                try:
                    _, out, _, _ = self.run(f'sha256sum {q(dest["blobfs"])}')
                    if out.split()[0] != h:
                        r3w.failed['blobfs'] = r3c.failed['blobfs'] = \
                            f'read back wrong content: sha256 {out.split()[0]}, expected {h}'
                        self.note(f'workload 3: blobfs returned wrong bytes for {h}')
                except BenchError as e:
                    self.note(f'workload 3: reading the blob back for a check failed: {e}')
        finally:
            if z:
                self.big_zstd_close(z)
            self.close_ctx(c)
            os.unlink(src)

    def big_zstd_open(self, c, r1c):
        """1c: a blobfs of its own beside the default one (DATADIR and mount
        point in the workload's directory), mounted with -o compress=zstd, and
        a new random file of SIZE_1C. None when 1c is not measured: the row
        then says why (n/a when this blobfs refuses the option)."""
        if c.bfs_err:
            r1c.failed['blobfs'] = c.bfs_err
            return None
        z = {'data': c.dir + '/bfsz_data', 'mnt': c.dir + '/bfsz_mnt',
             'src': os.path.join(self.B, 'src', 'big1c')}
        try:
            self.mount_blobfs(z['data'], z['mnt'], log='1c', options=['compress=zstd'])
        except (BenchError, OSError) as e:
            r1c.text['blobfs'] = NO_COMPRESS
            self.note(f'{r1c.label}: not measured, `blobfs -o compress=zstd` did not mount: '
                      f'{self.show(str(e))}')
            return None
        try:
            os.makedirs(z['mnt'] + '/S', exist_ok=True)
            self.log(f'workload 1c: generating a {human(SIZE_1C)} random file')
            z['h'] = self.gen_file(z['src'], SIZE_1C)
        except (BenchError, OSError) as e:
            r1c.failed['blobfs'] = self.show(str(e))
            self.big_zstd_close(z)
            return None
        return z

    def big_zstd_run(self, z, rep, r1c):
        """One run of 1c, after each round of row 1 (so interleaved with its
        runs), done as row 1 does it: the source read once, sync, `cp` timed,
        the blob checked and removed, sync."""
        if 'blobfs' in r1c.failed:
            return
        dest = f'{z["mnt"]}/S/{z["h"]}'
        try:
            self.sync()
            self.warm([z['src']])
            t = self.timed(f'cp {q(z["src"])} {q(z["mnt"])}/S/incoming/big',
                           log=('1c', 'blobfs') if rep == 0 else None)
            try:
                got = os.stat(dest).st_size
            except OSError as e:
                raise BenchError(f'{self.show(dest)} missing after the copy: {e.strerror}')
            if got != SIZE_1C:
                raise BenchError(f'{self.show(dest)} has {got} bytes, expected {SIZE_1C}')
            os.unlink(dest)
            self.sync()
        except (BenchError, OSError) as e:
            e = self.show(str(e))
            r1c.failed['blobfs'] = e
            self.log(f'  blobfs -o compress=zstd: FAILED: {e}')
            self.note(f'{r1c.label}: blobfs FAILED: {e}')
            return
        r1c.samples['blobfs'].append(SIZE_1C / t / MB)
        self.log(f'  blobfs -o compress=zstd: {SIZE_1C / t / MB:,.0f}')

    def big_zstd_close(self, z):
        if os.path.realpath(z['mnt']) in self.mounts or self.is_mounted(z['mnt']):
            self.umount(z['mnt'])
        if os.path.exists(z['src']):
            os.unlink(z['src'])

    def w_big_blobfs_more(self, c, src, size, hs, r1, r1b, r2b):
        """1b and 2b, blobfs only: a re-save of content already stored beside a
        new save, and two large files saved at once beside one. Files of
        their own: src (row 3 reads it back by its hash) stays as it is."""
        src = os.path.join(self.B, 'src', 'big1b')
        src2 = os.path.join(self.B, 'src', 'big2')
        self.gen_file(src, size)
        self.gen_file(src2, size)
        inc = f'{c.bfs}/S/incoming'

        def salt(path, rep):
            with open(path, 'r+b') as f:     # new content each run, same size
                f.write(os.urandom(16))
            self.warm([path])

        def clean():
            for n in os.listdir(c.bfs + '/S'):
                if n != 'incoming':
                    os.unlink(os.path.join(c.bfs, 'S', n))
            for n in os.listdir(inc):
                os.unlink(os.path.join(inc, n))
            self.sync()
            time.sleep(1)   # the flush of the last save lands before the next run

        try:
            self.log('workload 1b: a new save, then the same content again')
            for rep in range(self.runs):
                clean()
                salt(src, rep)
                t_new = self.timed(f'cp {q(src)} {q(inc)}/new')
                self.sync()
                time.sleep(1)
                t_again = self.timed(f'cp {q(src)} {q(inc)}/again', log=('1b', 'blobfs')
                                     if rep == 0 else None)
                r1b.refs['new'][1].append(size / t_new / MB)
                r1b.samples['blobfs'].append(size / t_again / MB)
            self.log('workload 2b: one file, then two at once')
            for rep in range(self.runs):
                clean()
                salt(src, rep)
                t_one = self.timed(f'cp {q(src)} {q(inc)}/one')
                clean()
                salt(src, rep)
                salt(src2, rep)
                t_two = self.timed(f'cp {q(src)} {q(inc)}/a & cp {q(src2)} {q(inc)}/b; wait',
                                   log=('2b', 'blobfs') if rep == 0 else None)
                r2b.refs['one'][1].append(size / t_one / MB)
                r2b.samples['blobfs'].append(2 * size / t_two / MB)
            clean()
        except (BenchError, OSError) as e:
            r1b.failed['blobfs'] = r2b.failed['blobfs'] = str(e)
        finally:
            os.unlink(src)
            os.unlink(src2)
        for s in ('ext4', 'pt', 'naive'):
            r1b.text[s] = r2b.text[s] = 'n/a (blobfs only)'

    def w_small(self):
        """Workload 4: cp -r of many small files."""
        for size in (4 * KiB, 64 * KiB):
            n = self.n4
            label = f'cp -r of {n:,} files of {human(size)} (files/s)'
            rb = None
            if size == 4 * KiB:
                row = self.add_row('4', label, 'files', [('min', 'pt', 3.5), ('minref', 'git', 1.5)],
                                   '≥ 3.5× passthrough_ll and ≥ 1.5× `git hash-object -w '
                                   '--stdin-paths` of the same files')
                row.refs['git'] = ('git hash-object', [])
                rb = self.add_row('4b', f'reading back every one of those {n:,} files, cold '
                                  '(files/s)', 'files', [('min', 'ext4', 1.0)], '≥ 1.0× ext4')
                rb.text['naive'] = 'same as ext4'
            else:
                row = self.add_row('4', label, 'files')
            sec = f'4 ({human(size)})'
            src = os.path.join(self.B, 'src', f'small{size // KiB}k')
            self.log(f'workload 4: generating {n} files of {human(size)}')
            files = self.gen_files(src, n, size)
            c = self.open_ctx(f'w4_{size // KiB}k')
            try:
                for rep in range(self.runs):
                    for s in self.order(rep):
                        def one(s=s, rep=rep):
                            log = (sec, s) if rep == 0 else None
                            if s == 'ext4':
                                dst = f'{c.ext4}/r{rep}'
                            elif s == 'pt':
                                dst = f'{c.pt}/r{rep}'
                            elif s == 'naive':
                                dst = f'{c.naive}/r{rep}'
                            else:
                                dst = f'{c.bfs}/r{rep}/incoming'
                            if s == 'blobfs':
                                os.mkdir(f'{c.bfs}/r{rep}')
                            else:
                                os.mkdir(dst)
                            self.sync()
                            self.warm(files)
                            if s == 'naive':
                                cmd = (f'for f in {q(src)}/*; do h=$(sha256sum "$f" | cut -c1-64); '
                                       f'cp "$f" {q(dst)}/"$h"; done')
                            else:
                                cmd = f'cp -r {q(src)}/. {q(dst)}/'
                            t = self.timed(cmd, log=log)
                            listed = os.listdir(f'{c.bfs}/r{rep}' if s == 'blobfs' else dst)
                            want = n + 1 if s == 'blobfs' else n
                            if len(listed) != want:
                                raise BenchError(f'{len(listed)} entries after the copy, expected {want}')
                            if rb is not None and s != 'naive':
                                # 4b: every file (blobfs: every blob) read back, cold.
                                where = f'{c.bfs}/r{rep}' if s == 'blobfs' else dst
                                self.sync()
                                self.drop_caches()
                                try:
                                    tr = self.timed(f'find {q(where)} -maxdepth 1 -type f -print0 | '
                                                    'xargs -0 cat >/dev/null',
                                                    log=('4b', s) if rep == 0 else None)
                                    rb.samples[s].append(n / tr)
                                except BenchError as e:
                                    rb.failed.setdefault(s, str(e))
                            if s != 'blobfs':   # blobfs stores stay until the workload ends
                                self.run(f'rm -rf {q(dst)}')
                            self.sync()
                            return n / t
                        self.attempt(c, row, s, one)
                    if rb is not None:
                        self.git_reference(src, files, row, rep)
            finally:
                self.close_ctx(c)
                self.rmtree(src)

    def w_space(self):
        """Workload 5: space used by 1 KiB blobs."""
        n, size = self.n5, 1 * KiB
        payload = n * size
        ra = self.add_row('5', f'{n:,} blobs of 1 KiB: apparent bytes (du -sb) ÷ payload', 'ratio',
                          [('absmax', None, 1.10)], '≤ 1.10', better='lower')
        rb = self.add_row('5', f'{n:,} blobs of 1 KiB: allocated bytes (du -s --block-size=1) ÷ payload',
                          'ratio', [('absmax', None, 1.10)], '≤ 1.10', better='lower')
        tree = f'cp -r of {TREE}: allocated bytes (du -s --block-size=1) ÷ payload'
        rz = self.add_row('5b', f'{tree}, blobfs -o compress=zstd', 'ratio',
                          [('absmax', None, 0.35)], '≤ 0.35', better='lower')
        rp = self.add_row('5b', f'{tree}, blobfs without compression', 'ratio', better='lower')
        src = os.path.join(self.B, 'src', 'tiny')
        self.log(f'workload 5: generating {n} files of 1 KiB')
        files = self.gen_files(src, n, size)
        c = self.open_ctx('w5')
        try:
            def du(d, s):
                _, a, _, _ = self.run(f'du -sb {q(d)}', log=('5', s))
                _, b, _, _ = self.run(f'du -s --block-size=1 {q(d)}', log=('5', s))
                return int(a.split()[0]) / payload, int(b.split()[0]) / payload

            def ext4():
                self.timed(f'cp -r {q(src)}/. {q(c.ext4)}/', log=('5', 'ext4'))
                self.sync()
                return du(c.ext4, 'ext4')

            def pt():
                os.mkdir(c.pt + '/space')
                self.timed(f'cp -r {q(src)}/. {q(c.pt)}/space/', log=('5', 'pt'))
                self.sync()
                return du(c.pt_src + '/space', 'pt')

            def naive():
                # The same layout the shell loop makes (store/<sha256 of the content>),
                # written from Python: this figure is about space, not speed.
                self.record('5', 'naive', f'python3: for each file f: write its bytes to '
                            f'{c.naive}/<sha256 of f>   # the layout the shell loop makes')
                for p in files:
                    with open(p, 'rb') as f:
                        b = f.read()
                    with open(os.path.join(c.naive, hashlib.sha256(b).hexdigest()), 'wb') as f:
                        f.write(b)
                self.sync()
                return du(c.naive, 'naive')

            def blobfs():
                os.mkdir(c.bfs + '/space')
                self.timed(f'cp -r {q(src)}/. {q(c.bfs)}/space/incoming/', log=('5', 'blobfs'))
                got = len(os.listdir(c.bfs + '/space')) - 1
                if got != n:
                    raise BenchError(f'{got} blobs listed after the copy, expected {n}')
                self.record('5', 'blobfs', f'fusermount3 -u {c.bfs}   # then du of DATADIR')
                self.umount(c.bfs)
                return du(c.bdata, 'blobfs')

            for s, fn in (('ext4', ext4), ('pt', pt), ('naive', naive), ('blobfs', blobfs)):
                self.log(f'workload 5: {NAMES[s]}')
                self.attempt(c, [ra, rb], s, fn)
        finally:
            self.close_ctx(c)
            self.rmtree(src)
        self.w_space_tree(rz, rp)

    @staticmethod
    def tree_files():
        """Entries in TREE (for the free-inode check of the setup)."""
        n = 0
        for _, dirs, files in os.walk(TREE):
            n += len(dirs) + len(files)
        return n

    def w_space_tree(self, rz, rp):
        """Workload 5b: a source tree, TREE, copied with `cp -r` into ext4,
        into a new store of a blobfs with its default options and into one of
        a blobfs mounted with -o compress=zstd (each blobfs with a DATADIR of
        its own); figure: the allocated bytes of the directory (blobfs: the
        whole DATADIR after unmounting) ÷ the payload (the apparent sizes of
        the regular files). The tree is first copied into the bench directory
        without its symbolic links (blobfs refuses links: EPERM), and every
        system gets that copy. One run, as row 5."""
        for r in (rz, rp):
            for s in ('pt', 'naive'):
                r.text[s] = 'n/a (ext4 and blobfs only)'
        rz.refs['plain'] = ('blobfs without compression', [])
        base = os.path.join(self.B, 'w5b')
        src = os.path.join(self.B, 'src', 'tree')
        os.makedirs(base)
        bfs = {'plain': (base + '/bfs_data', base + '/bfs_mnt', ()),
               'zstd': (base + '/bfsz_data', base + '/bfsz_mnt', ('compress=zstd',))}
        try:
            self.log(f'workload 5b: copying {TREE} into the bench directory, without its symlinks')
            try:
                self.run(f'cp -r {q(TREE)} {q(src)} && find {q(src)} -type l -delete',
                         log=('5b', ''))
            except BenchError as e:
                for r in (rz, rp):
                    for s in ('ext4', 'blobfs'):
                        r.failed[s] = f'could not copy the tree: {self.show(str(e))}'
                raise
            nfiles, payload, contents = 0, 0, set()
            for d, _, names in os.walk(src):
                for name in names:
                    p = os.path.join(d, name)
                    st = os.lstat(p)
                    if stat.S_ISREG(st.st_mode):
                        nfiles += 1
                        payload += st.st_size
                        with open(p, 'rb') as f:
                            contents.add(hashlib.sha256(f.read()).hexdigest())
            if not payload:
                raise BenchError(f'{TREE} has no regular files to copy')
            tree = (f'cp -r of {TREE} ({nfiles:,} files, {payload / MB:,.1f} MB in all, '
                    f'{len(contents):,} distinct; its symlinks left out): allocated bytes (du -s --block-size=1) ÷ '
                    'payload')
            rz.label = f'{tree}, blobfs -o compress=zstd'
            rp.label = f'{tree}, blobfs without compression'

            def du(d, s):
                _, out, _, _ = self.run(f'du -s --block-size=1 {q(d)}', log=('5b', s))
                return int(out.split()[0]) / payload

            def ext4():
                os.mkdir(base + '/ext4')
                self.timed(f'cp -r {q(src)}/. {q(base)}/ext4/', log=('5b', 'ext4'))
                self.sync()
                return du(base + '/ext4', 'ext4')

            def blobfs(kind):
                data, mnt, _ = bfs[kind]
                os.mkdir(mnt + '/tree')
                self.timed(f'cp -r {q(src)}/. {q(mnt)}/tree/incoming/', log=('5b', 'blobfs'))
                got = len(os.listdir(mnt + '/tree')) - 1
                if got != len(contents):
                    raise BenchError(f'{got} blobs listed after the copy, expected {len(contents)} '
                                     '(the distinct contents of the files)')
                self.record('5b', 'blobfs', f'fusermount3 -u {mnt}   # then du of DATADIR')
                self.umount(mnt)
                return du(data, 'blobfs')

            def one(rows, s, fn, what=None):
                self.log(f'workload 5b: {what or NAMES[s]}')
                try:
                    v = fn()
                except (BenchError, OSError) as e:
                    e = self.show(str(e))
                    self.log(f'  {what or NAMES[s]}: FAILED: {e}')
                    for r in rows:
                        r.failed[s] = e
                    self.note(f'{rows[0].label}: {what or NAMES[s]} FAILED: {e}')
                    return
                for r in rows:
                    r.samples[s].append(v)
                self.log(f'  {what or NAMES[s]}: {v:.3f}')

            one([rz, rp], 'ext4', ext4)
            for kind, row in (('plain', rp), ('zstd', rz)):
                data, mnt, opts = bfs[kind]
                what = 'blobfs -o compress=zstd' if opts else 'blobfs without compression'
                try:
                    self.mount_blobfs(data, mnt, log='5b', options=opts)
                except (BenchError, OSError) as e:
                    e = self.show(str(e))
                    if opts:
                        row.text['blobfs'] = NO_COMPRESS
                        self.note(f'{row.label}: not measured, `blobfs -o compress=zstd` did not '
                                  f'mount: {e}')
                    else:
                        row.failed['blobfs'] = f'could not mount: {e}'
                        self.note(f'{row.label}: blobfs could not be mounted: {e}')
                    continue
                one([row], 'blobfs', lambda: blobfs(kind), what)
            if 'blobfs' not in rp.failed:
                rz.refs['plain'] = ('blobfs without compression', list(rp.samples['blobfs']))
        finally:
            for data, mnt, _ in bfs.values():
                if os.path.realpath(mnt) in self.mounts or self.is_mounted(mnt):
                    self.umount(mnt)
            self.rmtree(base)
            self.rmtree(src)

    def w_wa(self):
        """Workload 7: bytes written per byte saved."""
        rows = {}
        for size, count in self.wa:
            hs = human(size)
            pre = f'write amplification, {count} × {hs}'
            rows[size] = (
                self.add_row('7', f'{pre}: write_bytes ÷ payload', 'ratio',
                             [('absmax', None, 1.05)], '≤ 1.05', better='lower'),
                self.add_row('7', f'{pre}: wchar ÷ payload', 'ratio', better='lower'),
                self.add_row('7', f'{pre}: disk sectors written ÷ payload (/proc/diskstats '
                                  f'{self.disk}: the whole disk, other processes included; '
                                  'lowest of the runs)', 'ratio', better='lower', agg='min'),
            )
        for size, count in self.wa:
            hs = human(size)
            sec = f'7 ({hs})'
            src = os.path.join(self.B, 'src', f'wa{size // MiB}m')
            os.makedirs(src)
            self.log(f'workload 7: generating {count} files of {hs}')
            for i in range(count):
                self.gen_file(f'{src}/f{i:03d}', size)
            payload = size * count
            c = self.open_ctx(f'w7_{size // MiB}m')
            try:
                for rep in range(self.runs):
                    for s in self.order(rep):
                        def one(s=s, rep=rep):
                            log = (sec, s) if rep == 0 else None
                            if s == 'blobfs':
                                os.mkdir(f'{c.bfs}/r{rep}')
                                dst = f'{c.bfs}/r{rep}/incoming'
                            else:
                                dst = {'ext4': c.ext4, 'pt': c.pt, 'naive': c.naive}[s] + f'/r{rep}'
                                os.mkdir(dst)
                            if s == 'naive':
                                cmd = (f'for f in {q(src)}/*; do h=$(sha256sum "$f" | cut -c1-64); '
                                       f'cp "$f" {q(dst)}/"$h"; done')
                            else:
                                cmd = f'cp -r {q(src)}/. {q(dst)}/'
                            who = self.pid_of(c.bfs if s == 'blobfs' else c.pt) \
                                if s in ('blobfs', 'pt') else 'self'
                            self.warm([f'{src}/f{i:03d}' for i in range(count)])
                            self.sync()
                            io0 = self.proc_io(who)
                            d0 = self.disk_written() if self.disk else None
                            self.run(cmd, log=log)
                            self.sync()
                            io1 = self.proc_io(who)
                            d1 = self.disk_written() if self.disk else None
                            if log:
                                self.record(sec, s, 'sync')
                            listed = os.listdir(f'{c.bfs}/r{rep}' if s == 'blobfs' else dst)
                            want = count + 1 if s == 'blobfs' else count
                            if len(listed) != want:
                                raise BenchError(f'{len(listed)} entries after the copy, expected {want}')
                            if s != 'blobfs':
                                self.run(f'rm -rf {q(dst)}')
                                self.sync()
                            wb = (io1['write_bytes'] - io0['write_bytes']) / payload
                            wc = (io1['wchar'] - io0['wchar']) / payload
                            dk = (d1 - d0) / payload if d0 is not None else None
                            return wb, wc, dk
                        self.attempt(c, rows[size], s, one)
            finally:
                self.close_ctx(c)
                self.rmtree(src)

