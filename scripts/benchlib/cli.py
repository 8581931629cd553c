# benchlib/cli.py - the command line of scripts/bench and the run as a whole:
# the flags, the sizes of a full and a quick run, the order of the workloads,
# the JSON of a run (docs/benchmarks.json: every sample, the targets and
# verdicts, the machine, the commit, the duration) and the rendering of the
# report and the chart from it (after a run, or alone with --render).

import argparse
import json
import os
import resource
import signal
import sys
import time

from .common import REPO, EXAMPLES, MiB, GiB, NAMES, BenchError
from .measure import Measure
from .systems import Systems
from .workloads_io import WorkloadsIO, SIZE_1C, TREE
from .workloads_scale import WorkloadsScale
from .workloads_s3 import WorkloadsS3
from .workloads_http import WorkloadsHTTP
from . import chart, report

FORMAT = 'blobfs-bench/1'


class Bench(WorkloadsIO, WorkloadsScale, WorkloadsS3, WorkloadsHTTP, Systems, Measure):
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.runs = args.runs or (2 if self.quick else 3)
        if self.quick:
            self.big, self.n4, self.n5, self.n6 = 256 * MiB, 1000, 10000, 100000
            self.wa = [(1 * MiB, 64), (256 * MiB, 1)]
        else:
            self.big, self.n4, self.n5, self.n6 = 1 * GiB, 10000, 100000, 1000000
            self.wa = [(1 * MiB, 64), (256 * MiB, 2)]
        self.nstat = 10000
        self.only = set(args.only.split(',')) if args.only else None
        self.t0 = time.time()
        self.rows = []
        self.notes = []
        self.cmds = {}          # section -> [(system, command)]
        self.mounts = {}        # mountpoint -> {'kind', 'pid', 'popen'}
        self.children = []      # Popen objects we started (passthrough_ll)
        self.cold_ok = True
        self.B = None
        self.created_B = False
        self.info = {}
        self.disk = None
        self.commit, self.commit_changes = '?', []

    def wanted(self, key):
        """Whether workload key runs: all of them, or those --only names (a
        row's number names its workload: 2, 3, 1b, 1c, 2b run workload 1)."""
        if not self.only:
            return True
        also = {'1': {'1b', '1c', '2', '2b', '3'}, '4': {'4b'}, '5': {'5b'}, '9': {'9b', '9c'}, '10': {'10b', '10c', '10d'}}
        return key in self.only or bool(self.only & also.get(key, set()))

    def main(self):
        workloads = [('1', self.w_big), ('4', self.w_small), ('5', self.w_space),
                     ('7', self.w_wa), ('6', self.w_many), ('8', self.w_ten_million),
                     ('9', self.w_s3), ('10', self.w_http)]
        try:
            self.setup()
            self.log(('QUICK run' if self.quick else 'full run') + f', {self.runs} runs per figure')
            for key, fn in workloads:
                if not self.wanted(key):
                    continue
                try:
                    fn()
                except BenchError as e:
                    self.note(f'workload {key} stopped: {e}')
                except OSError as e:
                    self.note(f'workload {key} stopped: {e}')
            duration = time.time() - self.t0
        finally:
            self.cleanup()
        with open('/proc/loadavg') as f:
            self.info['load average at the end'] = ' '.join(f.read().split()[:3])
        data = self.data(duration)
        paths = outputs(self.args)
        write_json(data, paths['json'])
        out = render(data, paths)
        kind = 'QUICK run (smaller sizes, fewer runs)' if self.quick else 'full run'
        print(f'\nblobfs benchmarks — {kind}, medians of {self.runs} runs\n')
        print(report.table(self.rows))
        if self.notes:
            print('\nNotes:')
            for n in self.notes:
                print('- ' + n)
        print(f'\nWritten to {out} and {paths["json"]} ({duration / 60:.1f} minutes).')

    def data(self, duration):
        """The run as docs/benchmarks.json keeps it."""
        return {
            'format': FORMAT,
            'generated': time.strftime('%Y-%m-%d %H:%M %Z'),
            'generated_unix': round(time.time(), 3),
            'duration_s': round(duration, 1),
            'quick': self.quick,
            'only': sorted(self.only) if self.only else None,
            'runs': self.runs,
            'command': ' '.join(['scripts/bench'] + sys.argv[1:]),
            'commit': self.commit,
            'uncommitted_changes': self.commit_changes,
            'machine': self.info,
            'params': {
                'big': self.big, 'n4': self.n4, 'n5': self.n5, 'n6': self.n6,
                'nstat': self.nstat, 'wa': [list(x) for x in self.wa], 'size_1c': SIZE_1C,
                'tree': TREE, 'disk': self.disk, 'dir': self.args.dir,
                'nofile_soft': resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                'examples': EXAMPLES,
            },
            'systems': dict(NAMES),
            'rows': [r.to_dict() for r in self.rows],
            'notes': list(self.notes),
            'commands': {k: [list(c) for c in v] for k, v in self.cmds.items()},
        }


def outputs(args):
    """The report (--output, default docs/BENCHMARKS.md) and, beside it,
    benchmarks.json and benchmarks.svg."""
    md = os.path.abspath(args.output or os.path.join(REPO, 'docs', 'BENCHMARKS.md'))
    d = os.path.dirname(md)
    return {'md': md, 'json': os.path.join(d, 'benchmarks.json'),
            'svg': os.path.join(d, 'benchmarks.svg')}


def write_json(data, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write('\n')
    os.replace(tmp, path)


def render(data, paths):
    """The chart, then the report, from data; returns the report's path."""
    try:
        svg, said = chart.draw(data, paths['svg'])
    except Exception as e:      # the report is written without the chart
        svg, said = None, f'drawing it failed ({type(e).__name__}: {e})'
    rel = os.path.relpath(svg, os.path.dirname(paths['md'])) if svg else None
    if not svg:
        print(f'scripts/bench: the chart was not drawn: {said}', file=sys.stderr)
    json_name = os.path.relpath(paths['json'], os.path.dirname(paths['md']))
    return report.write(data, paths['md'], (rel, said), json_name)


def render_only(args):
    paths = outputs(args)
    try:
        with open(paths['json']) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print(f'scripts/bench: cannot read {paths["json"]}: {e}', file=sys.stderr)
        return 1
    if data.get('format') != FORMAT:
        print(f'scripts/bench: {paths["json"]} is not a {FORMAT} file', file=sys.stderr)
        return 1
    out = render(data, paths)
    print(f'Rendered {out} from {paths["json"]}.')
    return 0


def main():
    ap = argparse.ArgumentParser(prog='scripts/bench',
                                 description='Benchmarks blobfs against ext4, passthrough_ll and a '
                                             'naive shell store; writes docs/benchmarks.json, and '
                                             'docs/BENCHMARKS.md and docs/benchmarks.svg from it.')
    ap.add_argument('--quick', action='store_true', help='smaller sizes, fewer runs (a few minutes)')
    ap.add_argument('--dir', help='make the bench directory under DIR (default /var/tmp)')
    ap.add_argument('--runs', type=int, help='runs per figure (default 3, quick 2)')
    ap.add_argument('--only', help='comma-separated workload numbers (for debugging; the report '
                                   'says it is partial)')
    ap.add_argument('--output', help='write the report here instead of docs/BENCHMARKS.md '
                                     '(benchmarks.json and benchmarks.svg go beside it)')
    ap.add_argument('--keep', action='store_true', help='keep the bench directory')
    ap.add_argument('--render', '--render-only', dest='render', action='store_true',
                    help='measure nothing: render the report and the chart again from the '
                         'benchmarks.json beside the report')
    args = ap.parse_args()
    if args.render:
        return render_only(args)

    def on_signal(sig, frame):
        raise KeyboardInterrupt(f'signal {sig}')
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    b = Bench(args)
    try:
        b.main()
    except KeyboardInterrupt:
        print('scripts/bench: interrupted; cleaned up; the report was not written',
              file=sys.stderr)
        return 130
    except BenchError as e:
        print(f'scripts/bench: {e}', file=sys.stderr)
        return 1
    return 0
