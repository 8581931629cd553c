# benchlib/measure.py - how a figure is measured and kept: Row (one line of the
# table: every sample of every system, the targets, the ratios and the
# verdict; to and from JSON), and the Measure part of the bench: running and
# timing commands, dropping caches, reading /proc (io, status, diskstats),
# keeping samples per row and system (attempt), generating random sources,
# and describing the machine.

import hashlib
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import time

from .common import (REPO, MiB, GiB, SYSTEMS, NAMES, SHORT, q, BenchError,
                     fmt_value, fmt_ratio, one_line)


class Row:
    """One line of the table: a figure measured for each system."""

    def __init__(self, num, label, fmt, targets=(), target_text='', better='higher', agg='median'):
        self.num, self.label, self.fmt, self.agg = num, label, fmt, agg
        self.targets, self.target_text, self.better = list(targets), target_text, better
        self.samples = {s: [] for s in SYSTEMS}
        self.text = {}     # system -> what the cell says instead of a number
        self.failed = {}   # system -> the error
        # Figures blobfs is compared with that are not a system's column
        # (targets 'minref'): name -> (what it is, samples).
        self.refs = {}

    def ref(self, name):
        what, samples = self.refs.get(name, ('', []))
        return statistics.median(samples) if samples else None

    def value(self, s):
        if s in self.failed or s in self.text or not self.samples[s]:
            return None
        if self.agg == 'min':
            return min(self.samples[s])
        return statistics.median(self.samples[s])

    def cell(self, s):
        if s in self.failed:
            return 'FAILED: ' + one_line(self.failed[s], 90)
        if s in self.text:
            return self.text[s]
        v = self.value(s)
        return '—' if v is None else fmt_value(self.fmt, v)

    def ratio(self, s, base):
        v, b = self.value(s), self.value(base)
        if v is None or not b:
            return None
        return v / b

    def ratio_cell(self, s, base):
        r = self.ratio(s, base)
        return '—' if r is None else fmt_ratio(r)

    def verdict(self):
        """MET / NOT MET with the figures the target compares."""
        if not self.targets:
            return ''
        if 'blobfs' in self.failed:
            return 'NOT MET (blobfs failed)'
        if 'blobfs' in self.text:
            return 'n/a'
        b = self.value('blobfs')
        if b is None:
            return 'not measured'
        met, shown = True, []
        for kind, base, k in self.targets:
            if kind in ('min', 'max'):
                r = self.ratio('blobfs', base)
                if r is None:
                    return f'UNKNOWN ({SHORT[base]} not measured)'
                good = r >= k if kind == 'min' else r <= k
                shown.append(f'{fmt_ratio(r)}× {SHORT[base]}')
            elif kind == 'minref':
                ref = self.ref(base)
                if not ref:
                    return f'UNKNOWN ({self.refs.get(base, (base,))[0]} not measured)'
                good = b / ref >= k
                shown.append(f'{fmt_ratio(b / ref)}× {self.refs[base][0]} '
                             f'({fmt_value(self.fmt, ref)})')
            elif kind == 'absmax':
                good = b <= k
                shown.append(fmt_value(self.fmt, b))
            else:  # 'zero'
                good = b == 0
                shown.append(fmt_value(self.fmt, b))
            met = met and good
        return ('MET' if met else 'NOT MET') + ' (' + ', '.join(shown) + ')'

    def met(self):
        """True, False, or None when there is no target or it cannot be judged."""
        v = self.verdict()
        return True if v.startswith('MET') else False if v.startswith('NOT MET') else None

    def to_dict(self):
        """The row as docs/benchmarks.json keeps it: the samples (what the
        report is rendered from) and, for readers of the JSON, the figures
        and the verdict computed from them."""
        refs = {k: {'what': what, 'samples': list(smp), 'value': self.ref(k)}
                for k, (what, smp) in self.refs.items()}
        return {
            'num': self.num, 'label': self.label, 'fmt': self.fmt, 'agg': self.agg,
            'better': self.better, 'target_text': self.target_text,
            'targets': [list(t) for t in self.targets],
            'samples': {s: list(v) for s, v in self.samples.items()},
            'text': dict(self.text), 'failed': dict(self.failed), 'refs': refs,
            'value': {s: self.value(s) for s in SYSTEMS},
            'ratios': {f'blobfs/{b}': self.ratio('blobfs', b) for b in SYSTEMS if b != 'blobfs'},
            'verdict': self.verdict(), 'met': self.met(),
        }

    @classmethod
    def from_dict(cls, d):
        r = cls(d['num'], d['label'], d['fmt'], [tuple(t) for t in d['targets']],
                d['target_text'], d['better'], d['agg'])
        for s in SYSTEMS:
            r.samples[s] = list(d['samples'].get(s, []))
        r.text, r.failed = dict(d['text']), dict(d['failed'])
        r.refs = {k: (v['what'], list(v['samples'])) for k, v in d['refs'].items()}
        return r

class Measure:
    """The measuring half of the bench (mixed into cli.Bench)."""

    # ------------------------------------------------------------------ utils

    def log(self, msg):
        el = time.time() - self.t0
        print(f'[{int(el) // 60:3d}:{int(el) % 60:02d}] {msg}', file=sys.stderr, flush=True)

    def note(self, msg):
        self.notes.append(msg)
        self.log('NOTE: ' + msg)

    def show(self, s):
        """A command or path as it appears in docs/BENCHMARKS.md."""
        if self.B:
            s = s.replace(self.B, '$B')
        s = re.sub(r'\b[0-9a-f]{64}\b', '<sha256>', s)
        return s.replace(REPO, '$REPO')

    def record(self, section, system, cmd):
        lst = self.cmds.setdefault(section, [])
        item = (system, self.show(cmd))
        if item not in lst:
            lst.append(item)

    def run(self, cmd, timeout=3600, check=True, log=None):
        """Runs cmd with bash -euo pipefail in its own process group; returns
        (seconds, stdout, stderr, returncode). log=(section, system) records it."""
        if log:
            self.record(log[0], log[1], cmd)
        t0 = time.perf_counter()
        p = subprocess.Popen(['bash', '-euo', 'pipefail', '-c', cmd], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True, text=True, errors='replace')
        try:
            out, err = p.communicate(timeout=timeout)
        except BaseException as e:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.communicate(timeout=30)
            except BaseException:
                pass
            if isinstance(e, subprocess.TimeoutExpired):
                raise BenchError(f'`{one_line(self.show(cmd), 80)}` timed out after {timeout} s')
            raise
        secs = time.perf_counter() - t0
        if check and p.returncode != 0:
            lines = [x for x in (err.strip() or out.strip()).splitlines() if x.strip()]
            why = one_line(self.show(lines[0]), 200) if lines else '(no message)'
            if len(lines) > 1:
                why += f' (+{len(lines) - 1} more lines, the last: {one_line(self.show(lines[-1]), 200)})'
            raise BenchError(f'`{one_line(self.show(cmd), 80)}` exited {p.returncode}: {why}')
        return secs, out, err, p.returncode

    def timed(self, cmd, log=None, timeout=3600):
        return self.run(cmd, timeout=timeout, log=log)[0]

    def sync(self):
        os.sync()

    def drop_caches(self):
        os.sync()
        if not self.cold_ok:
            return False
        try:
            with open('/proc/sys/vm/drop_caches', 'w') as f:
                f.write('3\n')
            return True
        except OSError as e:
            self.cold_ok = False
            self.note(f'dropping the page cache failed ({e.strerror}): every figure labelled '
                      '"cold" below is NOT cold (the caches were not dropped).')
            return False

    def cold(self, label):
        return label if self.cold_ok else label + ' [NOT COLD: drop_caches failed]'

    @staticmethod
    def proc_io(pid='self'):
        d = {}
        with open(f'/proc/{pid}/io') as f:
            for line in f:
                k, v = line.split(':')
                d[k.strip()] = int(v)
        return d

    def disk_written(self):
        """Bytes written to the bench directory's disk so far (/proc/diskstats)."""
        with open('/proc/diskstats') as f:
            for line in f:
                parts = line.split()
                if parts[2] == self.disk:
                    return int(parts[9]) * 512
        raise BenchError(f'{self.disk} not in /proc/diskstats')

    @staticmethod
    def proc_status(pid):
        d = {}
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(('VmRSS:', 'VmHWM:')):
                    k, v = line.split(':')
                    d[k] = int(v.split()[0]) * 1024
        d['fds'] = len(os.listdir(f'/proc/{pid}/fd'))
        return d

    def attempt(self, c, rows, s, fn):
        """Runs fn() for system s; fn returns one value per row (or a tuple).
        A failure marks the rows FAILED for s and the bench goes on."""
        rows = rows if isinstance(rows, (list, tuple)) else [rows]
        if all(s in r.failed for r in rows):
            return None
        pre = c.bfs_err if s == 'blobfs' else c.pt_err if s == 'pt' else None
        if pre:
            for r in rows:
                r.failed.setdefault(s, pre)
            return None
        try:
            vals = fn()
        except (BenchError, OSError) as e:
            e = self.show(str(e))
            self.log(f'  {NAMES[s]}: FAILED: {e}')
            for r in rows:
                r.failed[s] = e
            self.note(f'{rows[0].label}: {NAMES[s]} FAILED: {e}')
            if s in ('blobfs', 'pt'):
                self.mount_health_or_recover(c, s)
            return None
        if not isinstance(vals, tuple):
            vals = (vals,)
        shown = []
        for r, v in zip(rows, vals):
            if v is None:
                continue
            r.samples[s].append(v)
            shown.append(fmt_value(r.fmt, v))
        self.log(f'  {NAMES[s]}: {" | ".join(shown)}')
        return vals

    def order(self, rep):
        k = rep % len(SYSTEMS)
        return SYSTEMS[k:] + SYSTEMS[:k]

    def add_row(self, *a, **kw):
        r = Row(*a, **kw)
        self.rows.append(r)
        return r

    # ------------------------------------------------------------ generation

    def gen_file(self, path, size):
        h = hashlib.sha256()
        with open(path, 'wb') as f:
            left = size
            while left:
                b = os.urandom(min(left, 8 * MiB))
                h.update(b)
                f.write(b)
                left -= len(b)
        return h.hexdigest()

    def gen_files(self, d, n, size):
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            with open(os.path.join(d, f'f{i:07d}'), 'wb') as f:
                f.write(os.urandom(size))
        return [os.path.join(d, f'f{i:07d}') for i in range(n)]

    def warm(self, paths):
        for p in paths:
            with open(p, 'rb') as f:
                while f.read(8 * MiB):
                    pass

    def machine(self):
        info = self.info
        cpu = '?'
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
        _, out, _, _ = self.run('lscpu', check=False)
        ls = dict(line.split(':', 1) for line in out.splitlines() if ':' in line)
        ls = {k.strip(): v.strip() for k, v in ls.items()}
        extra = [f'family {ls["CPU family"]} model {ls["Model"]}'] if 'CPU family' in ls else []
        if 'Hypervisor vendor' in ls:
            extra.append(f'{ls["Hypervisor vendor"]} guest')
        info['CPU'] = cpu + (f' ({", ".join(extra)})' if extra else '')
        info['cores'] = str(os.cpu_count())
        with open('/proc/meminfo') as f:
            mem = int(f.readline().split()[1]) * 1024
        info['RAM'] = f'{mem / GiB:.1f} GiB'
        info['kernel'] = f'{platform.release()} ({platform.machine()})'
        try:
            with open('/etc/os-release') as f:
                osr = dict(line.strip().split('=', 1) for line in f if '=' in line)
            info['OS'] = osr.get('PRETTY_NAME', '?').strip('"')
        except OSError:
            pass
        _, out, _, _ = self.run(f'findmnt -no SOURCE,FSTYPE,OPTIONS -T {q(self.B)}', check=False)
        info['bench directory'] = f'{self.B} on {" ".join(out.split())}'
        if self.disk:
            _, out, _, _ = self.run(f'lsblk -dno NAME,SIZE,ROTA,MODEL /dev/{self.disk} 2>/dev/null '
                                    '|| true', check=False)
            drv = ''
            try:
                drv = os.path.basename(os.path.realpath(f'/sys/block/{self.disk}/device/driver'))
            except OSError:
                pass
            f = out.split()
            desc = f'/dev/{self.disk}'
            if len(f) >= 3:
                desc += f', {f[1]}, rotational={f[2]}' + (f', model {" ".join(f[3:])}' if len(f) > 3 else '')
            if drv:
                desc += f', driver {drv}'
            info['disk'] = desc
        _, v1, _, _ = self.run('pkg-config --modversion fuse3', check=False)
        _, v2, _, _ = self.run("dpkg-query -W -f='${Version}' libfuse3-3", check=False)
        info['libfuse'] = f'{v1.strip()} (Debian package libfuse3-3 {v2.strip()})'
        _, head, _, _ = self.run(f'git -C {q(REPO)} rev-parse HEAD', check=False)
        _, dirty, _, _ = self.run(f'git -C {q(REPO)} status --porcelain -- src meson.build '
                                  'meson_options.txt tests/bench', check=False)
        commit = head.strip() or '?'
        changed = [line[3:] for line in dirty.splitlines() if line.strip()]
        self.commit, self.commit_changes = commit, changed
        if changed:
            commit += ' plus uncommitted changes to ' + ', '.join(changed)
        info['blobfs commit'] = commit
        _, v, _, _ = self.run(f'{q(self.blobfs)} --version', check=False)
        with open(self.blobfs, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        info['blobfs binary'] = f'{v.strip()}; build/blobfs sha256 {digest}…, built by meson buildtype ' + \
            self.buildtype()
        _, v, _, _ = self.run('cp --version | head -1', check=False)
        _, g, _, _ = self.run('gcc -dumpfullversion', check=False)
        info['tools'] = f'{v.strip()}; gcc {g.strip()}'
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        info['open files limit (ulimit -n)'] = f'{soft} (hard {hard})'
        with open('/proc/loadavg') as f:
            info['load average at the start'] = ' '.join(f.read().split()[:3]) + \
                ' (1, 5, 15 min; other work on the machine makes the figures noisier)'
        info['drop caches'] = ('works (sync; echo 3 > /proc/sys/vm/drop_caches)' if self.cold_ok
                               else 'FAILED: cold figures are not cold')

    def buildtype(self):
        try:
            _, out, _, _ = self.run(f'meson introspect --buildoptions {q(REPO)}/build', check=False)
            for o in json.loads(out):
                if o.get('name') == 'buildtype':
                    return str(o.get('value'))
        except (ValueError, BenchError):
            pass
        return '?'

