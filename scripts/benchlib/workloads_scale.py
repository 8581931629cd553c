# benchlib/workloads_scale.py - the workloads of many blobs: 6 (a store of a
# million small blobs beside one ext4 directory of as many files and
# passthrough_ll over it: mount, ls, stat, the daemon's memory and
# descriptors, and the mount after a crash) and 8 (ten million blobs, blobfs
# only). Each makes its rows, then measures them.

import hashlib
import json
import os
import random
import signal
import time

from .common import (KiB, MiB, NAMES, q, BenchError, fmt_value)
from .systems import Ctx

# Run in a child process so that a hung or failing file system cannot take the
# benchmark with it, and so that the descriptors it uses are not ours.
STAT_PROGRAM = r'''
import errno, json, os, sys, time
d = sys.argv[1]
names = open(sys.argv[2]).read().split()
ok, errs, first = 0, {}, None
t0 = time.perf_counter()
for n in names:
    try:
        os.stat(os.path.join(d, n))
        ok += 1
    except OSError as e:
        k = errno.errorcode.get(e.errno, str(e.errno))
        errs[k] = errs.get(k, 0) + 1
        if first is None:
            first = '%s: %s' % (n, e.strerror)
t = time.perf_counter() - t0
print(json.dumps({'secs': t, 'ok': ok, 'errors': errs, 'first': first}))
'''


class WorkloadsScale:
    """Workloads 6 and 8 (mixed into cli.Bench)."""

    def w_many(self):
        """Workload 6: a store of a million small blobs."""
        n, size, k = self.n6, 1 * KiB, self.nstat
        pre = f'{n:,} blobs of 1 KiB'
        rm_c = self.add_row('6', self.cold(f'{pre}: mount time, cold (s)'), 'secs',
                            [('absmax', None, 1.0)], '≤ 1 s', better='lower')
        rm_w = self.add_row('6', f'{pre}: mount time, warm (s)', 'secs',
                            [('absmax', None, 1.0)], '≤ 1 s', better='lower')
        rl_c = self.add_row('6', self.cold(f'{pre}: `ls -f | wc -l`, cold (s)'), 'secs',
                            [('max', 'ext4', 2.0)], '≤ 2× ext4', better='lower')
        rl_w = self.add_row('6', f'{pre}: `ls -f | wc -l`, warm (s)', 'secs',
                            [('max', 'ext4', 2.0)], '≤ 2× ext4', better='lower')
        rs = self.add_row('6', self.cold(f'{pre}: stat of {k:,} random blobs, cold (s)'), 'secs',
                          better='lower')
        rf = self.add_row('6', f'{pre}: stats that failed (of {k:,})', 'count',
                          [('zero', None, 0)], 'every stat works', better='lower')
        rr = self.add_row('6', f'{pre}: daemon VmRSS after the workload (MiB)', 'mib',
                          [('absmax', None, 64.0)], '≤ 64 MiB', better='lower')
        rh = self.add_row('6', f'{pre}: daemon VmHWM after the workload (MiB)', 'mib',
                          [('absmax', None, 64.0)], '≤ 64 MiB', better='lower')
        rd = self.add_row('6', f'{pre}: daemon open file descriptors', 'count', better='lower')
        rk = self.add_row('6', f'{pre} saved since the mount, then the daemon killed: the next '
                          'mount (s)', 'secs', [('absmax', None, 1.0)], '≤ 1 s', better='lower')
        for s in ('ext4', 'pt', 'naive'):
            rk.text[s] = 'n/a (blobfs only)'
        for r in (rm_c, rm_w, rr, rh, rd):
            r.text['ext4'] = 'n/a (kernel)'
            r.text['naive'] = 'n/a (no daemon)'
        for r in (rl_c, rl_w, rs, rf):
            r.text['naive'] = 'same as ext4'
        base = os.path.join(self.B, 'w6')
        ext_dir = os.path.join(base, 'ext4', 'd')
        os.makedirs(ext_dir)
        self.log(f'workload 6: creating {n:,} files of 1 KiB named by their sha256 in one ext4 '
                 'directory')
        t0 = time.time()
        self.record('6', 'ext4', f'python3: {n:,} × (os.urandom(1024), write to {self.show(ext_dir)}/<sha256>)')
        rng = random.Random(6)
        for _ in range(n):
            b = rng.randbytes(size)
            fd = os.open(os.path.join(ext_dir, hashlib.sha256(b).hexdigest()),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b)
            os.close(fd)
        self.sync()
        self.note(f'workload 6: creating the ext4 directory of {n:,} files took '
                  f'{time.time() - t0:.0f} s (including sync)')
        names_ext4 = [x for x in os.listdir(ext_dir)]
        c = Ctx()
        c.name = 'w6'
        c.bdata, c.bfs = base + '/bfs_data', base + '/bfs_mnt'
        c.pt_src, c.pt = base + '/ext4', base + '/pt_mnt'
        c.pt_err = c.bfs_err = None
        os.makedirs(c.bfs)
        os.makedirs(c.pt)
        self.log(f'workload 6: filling a blobfs store with {n:,} blobs (build/bench_fill)')
        try:
            t = self.timed(f'{q(self.bench_fill)} {q(c.bdata)} many {n} {size} 6', log=('6', 'blobfs'),
                           timeout=7200)
            self.sync()
            self.note(f'workload 6: bench_fill of {n:,} blobs took {t:.0f} s')
        except BenchError as e:
            c.bfs_err = f'bench_fill failed: {e}'
            self.note(f'workload 6: {c.bfs_err}')
        namefile = os.path.join(base, 'sample')

        def ls(d, want, s, rep, what):
            t, out, _, _ = self.run(f'ls -f {q(d)} | wc -l', log=(f'6 {what}', s) if rep == 0 else None)
            got = int(out.strip())
            if got != want:
                raise BenchError(f'`ls -f` listed {got} entries, expected {want}')
            return t

        def stat(d, names, s, rep):
            sample = random.Random(1000 + rep).sample(names, min(k, len(names)))
            with open(namefile, 'w') as f:
                f.write('\n'.join(sample) + '\n')
            if rep == 0:
                self.record('6 stat', s, f'python3 -c "for n in sample: os.stat(\'{self.show(d)}/\' + n)"'
                                         f'   # {k:,} random names, one process, timed inside')
            _, out, _, _ = self.run(f'python3 -c {q(STAT_PROGRAM)} {q(d)} {q(namefile)}',
                                    timeout=3600)
            return json.loads(out)

        def do_stat(s, d, names, rep):
            self.drop_caches()
            res = stat(d, names, s, rep)
            fails = k - res['ok']
            if fails:
                errs = ', '.join(f'{v:,} × {e}' for e, v in sorted(res['errors'].items()))
                msg = f'{fails:,} of {k:,} stats failed ({errs}); the first: {res["first"]}'
                rs.failed.setdefault(s, msg)
                self.note(f'workload 6: {NAMES[s]}: {msg}')
                return None, fails
            return res['secs'], 0

        def measure(s, rep):
            """One run for s; a failing step marks its rows FAILED and the
            other steps are still measured."""
            vals = {}

            def step(rows, fn):
                try:
                    v = fn()
                except (BenchError, OSError) as e:
                    e = self.show(str(e))
                    for r in rows:
                        r.failed.setdefault(s, e)
                    self.note(f'workload 6: {NAMES[s]}: {rows[0].label}: {e}')
                    return False
                for r, x in zip(rows, v if isinstance(v, tuple) else (v,)):
                    if x is not None:
                        vals[r] = x
                return True

            def safe_umount(mnt):
                try:
                    self.umount(mnt)
                except (BenchError, OSError) as e:
                    self.note(f'workload 6: unmounting {self.show(mnt)}: {e}')
                    self.force_umount(mnt)

            daemon_rows = [rm_c, rm_w, rl_c, rl_w, rs, rf, rr, rh, rd]
            if s == 'ext4':
                step([rl_c], lambda: (self.drop_caches(), ls(ext_dir, n + 2, s, rep, 'ls cold'))[1])
                step([rl_w], lambda: ls(ext_dir, n + 2, s, rep, 'ls warm'))
                step([rs, rf], lambda: do_stat(s, ext_dir, names_ext4, rep))
            else:
                err = c.bfs_err if s == 'blobfs' else c.pt_err
                if err:
                    for r in daemon_rows:
                        r.failed.setdefault(s, err)
                    return
                mnt = c.bfs if s == 'blobfs' else c.pt
                d = c.bfs + '/many' if s == 'blobfs' else c.pt + '/d'
                want = n + 3 if s == 'blobfs' else n + 2

                def mount(log=None):
                    if s == 'blobfs':
                        return self.mount_blobfs(c.bdata, c.bfs, log=log)[0]
                    return self.mount_pt(c.pt_src, c.pt, log=log)[0]

                self.drop_caches()
                if not step([rm_c], lambda: mount('6 mount' if rep == 0 else None)):
                    if self.is_mounted(mnt):
                        self.force_umount(mnt)
                    return
                pid = self.pid_of(mnt)
                step([rl_c], lambda: (self.drop_caches(), ls(d, want, s, rep, 'ls cold'))[1])
                step([rl_w], lambda: ls(d, want, s, rep, 'ls warm'))
                if s == 'blobfs':
                    if not names.get('blobfs'):
                        try:
                            names['blobfs'] = [x for x in os.listdir(d) if x != 'incoming']
                        except OSError as e:
                            self.note(f'workload 6: blobfs: listing {self.show(d)} for the sample: {e}')
                    if names.get('blobfs'):
                        step([rs, rf], lambda: do_stat(s, d, names['blobfs'], rep))
                    else:
                        rs.failed.setdefault(s, 'no names to stat: the store could not be listed')
                else:
                    step([rs, rf], lambda: do_stat(s, d, names_ext4, rep))

                def status():
                    ps = self.proc_status(pid)
                    return ps['VmRSS'] / MiB, ps['VmHWM'] / MiB, ps['fds']
                step([rr, rh, rd], status)
                safe_umount(mnt)

                def warm_mount():
                    t = mount()
                    safe_umount(mnt)
                    return t
                step([rm_w], warm_mount)
            shown = []
            for r, v in vals.items():
                r.samples[s].append(v)
                shown.append(f'{r.label.split(": ", 1)[-1]}: {fmt_value(r.fmt, v)}')
            self.log(f'  {NAMES[s]}: {" | ".join(shown)}')

        names = {}
        try:
            for rep in range(self.runs):
                self.log(f'workload 6: run {rep + 1}/{self.runs}')
                for s in self.order(rep):
                    if s != 'naive':
                        measure(s, rep)
            self.w_many_after_crash(base, n, size, rk)
        finally:
            for mnt in (c.pt, c.bfs):
                if os.path.realpath(mnt) in self.mounts or self.is_mounted(mnt):
                    self.umount(mnt)
            self.log('workload 6: removing its files')
            self.rmtree(base)

    def w_ten_million(self):
        """Workload 8, blobfs only: a store of ten million small blobs (a
        million in a quick run): the mount after a clean unmount, a stat of
        10,000 of them (every one must work) and the daemon's RSS."""
        n = 1000000 if self.quick else 10000000
        pre = f'{n:,} blobs of 100 B'
        rm = self.add_row('8', f'{pre}: mount after a clean unmount, warm (s)', 'secs',
                          [('absmax', None, 2.0)], '≤ 2 s', better='lower')
        rf = self.add_row('8', f'{pre}: stats that failed (of 10,000)', 'count',
                          [('zero', None, 0)], 'every stat works', better='lower')
        rr = self.add_row('8', f'{pre}: daemon VmRSS after the stats (MiB)', 'mib',
                          [('absmax', None, 640.0)], '≤ 640 MiB', better='lower')
        for r in (rm, rf, rr):
            for s in ('ext4', 'pt', 'naive'):
                r.text[s] = 'n/a (blobfs only)'
        base = os.path.join(self.B, 'w8')
        data, mnt = base + '/data', base + '/mnt'
        os.makedirs(mnt)
        try:
            self.log(f'workload 8: filling a store with {n:,} blobs (build/bench_fill)')
            self.timed(f'{q(self.bench_fill)} {q(data)} many {n} 100 8', log=('8', 'blobfs'),
                       timeout=7200)
            self.sync()
            # The sample: names the store layer can tell without a mount
            # would need the index; a listing through the mount gives them.
            self.mount_blobfs(data, mnt)
            sample, k = [], 0
            for e in os.scandir(mnt + '/many'):
                if e.name != 'incoming' and k % (n // 10000) == 0:
                    sample.append(e.name)
                k += 1
            self.umount(mnt)
            namefile = base + '/sample'
            with open(namefile, 'w') as f:
                f.write('\n'.join(sample[:10000]) + '\n')
            for rep in range(self.runs):
                t, _ = self.mount_blobfs(data, mnt, log='8 mount' if rep == 0 else None)
                rm.samples['blobfs'].append(t)
                _, out, _, _ = self.run(f'python3 -c {q(STAT_PROGRAM)} {q(mnt + "/many")} '
                                        f'{q(namefile)}', timeout=3600)
                res = json.loads(out)
                rf.samples['blobfs'].append(len(sample[:10000]) - res['ok'])
                rr.samples['blobfs'].append(self.proc_status(self.pid_of(mnt))['VmRSS'] / MiB)
                self.umount(mnt)
        except (BenchError, OSError) as e:
            for r in (rm, rf, rr):
                r.failed.setdefault('blobfs', self.show(str(e)))
        finally:
            if self.is_mounted(mnt):
                self.force_umount(mnt)
            self.rmtree(base)

    def w_many_after_crash(self, base, n, size, row):
        """6, blobfs only: n blobs saved by a running store (its background
        threads: flushes, checkpoints), which then ends without closing, as
        a daemon killed with SIGKILL would (bench_fill's crash mode); the
        next mount is timed (warm: the machine did not restart)."""
        data, mnt = base + '/crash_data', base + '/crash_mnt'
        self.log(f'workload 6: {n:,} blobs saved, then a crash (bench_fill crash)')
        try:
            self.timed(f'{q(self.bench_fill)} {q(data)} many {n} {size} 7 crash',
                       log=('6 crash', 'blobfs'), timeout=7200)
            self.sync()
            for rep in range(self.runs):
                t, _ = self.mount_blobfs(data, mnt, log='6 crash mount' if rep == 0 else None)
                row.samples['blobfs'].append(t)
                # Killed again, so that each mount is one after a crash.
                pid = self.pid_of(mnt)
                if pid:
                    os.kill(int(pid), signal.SIGKILL)
                self.force_umount(mnt)
        except (BenchError, OSError) as e:
            row.failed['blobfs'] = self.show(str(e))
        finally:
            if self.is_mounted(mnt):
                self.force_umount(mnt)

