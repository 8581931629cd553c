# benchlib/systems.py - the systems under test and their lifecycle: a plain
# ext4 directory, libfuse's passthrough_ll (compiled at bench time), the naive
# shell store, blobfs (build/blobfs, copied into the bench directory, with
# -o options where a row asks for them) and git as a peer content-addressed
# store (the reference of row 4). Building, mounting, unmounting, killing,
# recovering a broken mount, the directories of one workload (Ctx), and the
# cleanup at the end.

import os
import shutil
import signal
import subprocess
import tempfile
import time

from .common import (REPO, BLOBFS, BENCH_FILL, EXAMPLES, GiB, q, BenchError, one_line)


class Ctx:
    """The directories and mounts of one workload."""


class Systems:
    """The systems half of the bench (mixed into cli.Bench)."""

    @staticmethod
    def mountinfo():
        res = {}
        with open('/proc/self/mountinfo') as f:
            for line in f:
                parts = line.split()
                mnt = parts[4].replace('\\040', ' ').replace('\\011', '\t').replace('\\134', '\\')
                res[mnt] = parts[2]
        return res

    def is_mounted(self, mnt):
        return os.path.realpath(mnt) in self.mountinfo()

    def healthy(self, mnt):
        if not self.is_mounted(mnt):
            return False
        try:
            self.run(f'stat {q(mnt)} >/dev/null', timeout=30)
            return True
        except BenchError:
            return False

    # ----------------------------------------------------------------- mounts

    def mount_pt(self, src, mnt, log=None):
        os.makedirs(mnt, exist_ok=True)
        cmd = [self.pt_bin, '-f', '-o', 'source=' + src, mnt]
        if log:
            self.record(log, 'pt', ' '.join(q(c) for c in cmd) + ' &   # then wait for the mount')
        logf = open(os.path.join(self.B, 'logs', 'passthrough_ll.log'), 'ab')
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                             start_new_session=True)
        logf.close()
        self.children.append(p)
        self.mounts[os.path.realpath(mnt)] = {'kind': 'pt', 'pid': p.pid, 'popen': p}
        while not self.is_mounted(mnt):
            if p.poll() is not None:
                del self.mounts[os.path.realpath(mnt)]
                raise BenchError(f'passthrough_ll exited {p.returncode} before mounting '
                                 f'(see {self.show(logf.name)})')
            if time.perf_counter() - t0 > 30:
                raise BenchError('passthrough_ll did not mount within 30 s')
            time.sleep(0.001)
        return time.perf_counter() - t0, p.pid

    def mount_blobfs(self, data, mnt, log=None, options=(), lock=None):
        """build/blobfs [-o OPT,...] DATA MNT; options: blobfs -o options
        (none: its defaults); lock: the file the daemon writes its pid to
        (DATA/lock by default; an s3:// mount's is CACHE/outbox/lock).
        Returns (seconds until it returned, daemon pid)."""
        os.makedirs(mnt, exist_ok=True)
        opts = ['-o', ','.join(options)] if options else []
        argv = [self.blobfs] + opts + [data, mnt]
        cmd = ' '.join(q(a) for a in argv)
        if log:
            self.record(log, 'blobfs', cmd + '   # daemonizes once mounted')
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, errors='replace')
        try:
            _, err = p.communicate(timeout=900)
        except BaseException:
            p.kill()
            p.wait()
            if self.is_mounted(mnt):
                self.mounts[os.path.realpath(mnt)] = {'kind': 'blobfs', 'pid': None}
            raise
        secs = time.perf_counter() - t0
        if p.returncode != 0:
            if self.is_mounted(mnt):
                self.mounts[os.path.realpath(mnt)] = {'kind': 'blobfs', 'pid': None}
                self.force_umount(mnt)
            raise BenchError(f'mount failed (exit {p.returncode}): ' + one_line(err, 300))
        if not self.is_mounted(mnt):
            raise BenchError('blobfs returned 0 but nothing is mounted on ' + self.show(mnt))
        self.mounts[os.path.realpath(mnt)] = {'kind': 'blobfs', 'pid': None}
        # The daemon writes its pid into DATADIR/lock after it has daemonized.
        pid = None
        for _ in range(5000):
            try:
                with open(lock or os.path.join(data, 'lock')) as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pid = None
            if pid and pid != p.pid and os.path.exists(f'/proc/{pid}'):
                break
            time.sleep(0.001)
        else:
            self.mounts[os.path.realpath(mnt)] = {'kind': 'blobfs', 'pid': None}
            raise BenchError('cannot find the daemon pid in DATADIR/lock')
        self.mounts[os.path.realpath(mnt)] = {'kind': 'blobfs', 'pid': pid}
        return secs, pid

    def pid_of(self, mnt):
        return self.mounts[os.path.realpath(mnt)]['pid']

    def wait_gone(self, m, timeout):
        pid, p = m.get('pid'), m.get('popen')
        t0 = time.time()
        while time.time() - t0 < timeout:
            if p is not None:
                if p.poll() is not None:
                    return True
            elif not pid or not os.path.exists(f'/proc/{pid}'):
                return True
            else:
                try:
                    with open(f'/proc/{pid}/stat') as f:
                        if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                            return True
                except OSError:
                    return True
            time.sleep(0.02)
        return False

    def umount(self, mnt, timeout=600):
        """fusermount3 -u, then waits for the daemon to exit; forces on failure."""
        key = os.path.realpath(mnt)
        m = self.mounts.get(key)
        err = ''
        for _ in range(40):
            if not self.is_mounted(key):
                break
            _, _, err, rc = self.run(f'fusermount3 -u {q(key)}', check=False, timeout=120)
            if rc == 0:
                break
            time.sleep(0.25)
        if self.is_mounted(key):
            self.note(f'fusermount3 -u {self.show(key)} kept failing ({one_line(err, 120)}); forced')
            self.force_umount(key)
            return
        if m and not self.wait_gone(m, timeout):
            self.note(f'{m["kind"]} daemon pid {m["pid"]} still running {timeout} s after '
                      'unmount; killed')
            self.kill(m)
        self.mounts.pop(key, None)

    def kill(self, m):
        pid = m.get('pid')
        if not pid:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if m.get('popen') is not None:
            try:
                m['popen'].wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def force_umount(self, mnt):
        key = os.path.realpath(mnt)
        m = self.mounts.pop(key, None)
        dev = self.mountinfo().get(key)
        if dev:
            # Abort the FUSE connection first so that nothing waits on a dead daemon.
            minor = dev.split(':')[1]
            try:
                with open(f'/sys/fs/fuse/connections/{minor}/abort', 'w') as f:
                    f.write('1')
            except OSError:
                pass
            self.run(f'fusermount3 -u {q(key)} || fusermount3 -uz {q(key)}', check=False,
                     timeout=60)
        if m:
            if not self.wait_gone(m, 5):
                self.kill(m)

    def mount_health_or_recover(self, c, s):
        """After a failure of s (pt or blobfs): remount if its mount is broken."""
        mnt, what = (c.bfs, 'blobfs') if s == 'blobfs' else (c.pt, 'passthrough_ll')
        if self.healthy(mnt):
            return
        self.note(f'{what} mount {self.show(mnt)} was broken after a failure; remounted')
        self.force_umount(mnt)
        try:
            if s == 'blobfs':
                self.mount_blobfs(c.bdata, c.bfs)
            else:
                self.mount_pt(c.pt_src, c.pt)
        except (BenchError, OSError) as e:
            if s == 'blobfs':
                c.bfs_err = f'could not remount: {e}'
            else:
                c.pt_err = f'could not remount: {e}'

    # ---------------------------------------------------------------- context

    def open_ctx(self, name):
        c = Ctx()
        c.name = name
        c.dir = os.path.join(self.B, name)
        c.ext4, c.naive = c.dir + '/ext4', c.dir + '/naive'
        c.pt_src, c.pt = c.dir + '/pt_src', c.dir + '/pt_mnt'
        c.bdata, c.bfs = c.dir + '/bfs_data', c.dir + '/bfs_mnt'
        for d in (c.ext4, c.naive, c.pt_src, c.pt, c.bfs):
            os.makedirs(d, exist_ok=True)
        c.pt_err = c.bfs_err = None
        log = None if 'mounts' in self.cmds else 'mounts'
        try:
            self.mount_pt(c.pt_src, c.pt, log=log)
        except BenchError as e:
            c.pt_err = str(e)
            self.note(f'{name}: passthrough_ll could not be mounted: {e}')
        try:
            self.mount_blobfs(c.bdata, c.bfs, log=log)
        except (BenchError, OSError) as e:
            c.bfs_err = str(e)
            self.note(f'{name}: blobfs could not be mounted: {e}')
        return c

    def close_ctx(self, c):
        for mnt in (c.pt, c.bfs):
            if os.path.realpath(mnt) in self.mounts or self.is_mounted(mnt):
                self.umount(mnt)
        self.rmtree(c.dir)

    def rmtree(self, d):
        inside = [m for m in self.mountinfo() if m == d or m.startswith(d.rstrip('/') + '/')]
        if inside:
            self.note(f'not removing {self.show(d)}: still mounted: {", ".join(inside)}')
            return
        shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------------ setup

    def setup(self):
        if self.args.dir:
            os.makedirs(self.args.dir, exist_ok=True)
            parent = os.path.realpath(self.args.dir)
        else:
            parent = '/var/tmp'
        self.B = tempfile.mkdtemp(prefix='blobfs-bench.', dir=parent)
        self.created_B = True
        for d in ('tools', 'src', 'logs'):
            os.makedirs(os.path.join(self.B, d))
        self.log(f'bench directory: {self.B}')
        st = os.stat(self.B)
        if st.st_dev != os.stat(REPO).st_dev:
            self.note(f'the bench directory is not on the same file system as the repository')
        major, minor = os.major(st.st_dev), os.minor(st.st_dev)
        try:
            with open(f'/sys/dev/block/{major}:{minor}/uevent') as f:
                self.disk = dict(line.strip().split('=', 1) for line in f if '=' in line)['DEVNAME']
        except (OSError, KeyError):
            self.disk = None
            self.note('cannot find the block device of the bench directory: the disk counters '
                      '(/proc/diskstats) are not measured')
        # Space: sources, a copy per system of the largest files and the
        # directory of a million small files; 1 GiB more for row 1c (its
        # 512 MiB source and blob) and row 5b (four copies of /usr/include).
        need = (4 if self.quick else 17) * GiB
        fs = os.statvfs(self.B)
        free = fs.f_bavail * fs.f_frsize
        if free < need:
            raise BenchError(f'{self.show(self.B)} has {free / GiB:.1f} GiB free; the '
                             f'{"quick" if self.quick else "full"} run needs {need // GiB} GiB '
                             '(use --dir on a larger file system)')
        inodes = self.n6 + 3 * self.n5 + 6 * self.n4 + 10000 + 2 * self.tree_files()
        if fs.f_favail < inodes:
            raise BenchError(f'{fs.f_favail} free inodes; the run needs {inodes}')
        # Build blobfs and its helper.
        self.log('building blobfs (meson/ninja)')
        build_cmd = f'cd {q(REPO)} && (test -f build/build.ninja || meson setup build) && ninja -C build'
        self.record('build', '', build_cmd)
        # The binaries are copied into the bench directory right after the build,
        # so that a rebuild by someone else during the run changes nothing.
        self.blobfs = os.path.join(self.B, 'tools', 'blobfs')
        self.bench_fill = os.path.join(self.B, 'tools', 'bench_fill')
        for attempt in range(1, 4):
            try:
                self.run(build_cmd, timeout=1800)
                for src, dst in ((BLOBFS, self.blobfs), (BENCH_FILL, self.bench_fill)):
                    shutil.copy2(src, dst)
                self.run(f'{q(self.blobfs)} --version && test -x {q(self.bench_fill)}')
                break
            except (BenchError, OSError) as e:
                if attempt == 3:
                    raise BenchError(f'cannot build blobfs: {e}')
                self.log(f'build failed ({one_line(e, 200)}); retrying in 30 s')
                time.sleep(30)
        self.record('build', '', f'cp build/blobfs build/bench_fill $B/tools/   # the copies are what runs')
        # libfuse's passthrough_ll example, compiled now (never kept in the repo).
        self.pt_bin = os.path.join(self.B, 'tools', 'passthrough_ll')
        cc = (f'gcc -O2 -Wall -I{EXAMPLES} {EXAMPLES}/passthrough_ll.c '
              f'$(pkg-config --cflags --libs fuse3) -o {q(self.pt_bin)}')
        self.record('build', '', cc)
        self.run(cc, timeout=300)
        self.drop_caches()
        self.machine()

    def git_reference(self, src, files, row, rep):
        """The same files stored by git (`git hash-object -w --stdin-paths`
        into a fresh repository beside them): the reference of row 4."""
        repo = os.path.join(self.B, 'git_ref')
        if os.path.exists(repo):
            self.rmtree(repo)
        try:
            self.run(f'git init -q {q(repo)}')
            listing = os.path.join(self.B, 'git_ref.paths')
            with open(listing, 'w') as f:
                f.write('\n'.join(files) + '\n')
            self.sync()
            self.warm(files)
            t = self.timed(f'git -C {q(repo)} hash-object -w --stdin-paths < {q(listing)} '
                           '>/dev/null', log=('4 git', 'ext4') if rep == 0 else None)
            row.refs['git'][1].append(len(files) / t)
        except BenchError as e:
            self.note(f'workload 4: the git reference failed: {e}')
        finally:
            if os.path.exists(repo):
                self.rmtree(repo)

    # ---------------------------------------------------------------- cleanup

    def cleanup(self):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for mnt in list(self.mounts):
            try:
                self.umount(mnt, timeout=60)
            except BaseException as e:
                self.log(f'cleanup: unmounting {mnt}: {e}')
                self.force_umount(mnt)
        if self.B:
            for mnt in self.mountinfo():
                if mnt.startswith(self.B + '/'):
                    self.log(f'cleanup: {mnt} still mounted; forcing it')
                    self.force_umount(mnt)
        for p in self.children:
            if p.poll() is None:
                try:
                    p.kill()
                    p.wait(timeout=30)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        if self.created_B and not self.args.keep:
            self.log(f'removing {self.B}')
            self.rmtree(self.B)
            if os.path.exists(self.B):
                self.log(f'could not remove {self.B} completely')

