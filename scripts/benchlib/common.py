# benchlib/common.py - what every module of the bench shares: the paths of
# the repository and its binaries, the units, the systems under test and their
# names, the error a measurement raises, and the formatting of figures.

import os
import shlex

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
BLOBFS = os.path.join(REPO, 'build', 'blobfs')
BENCH_FILL = os.path.join(REPO, 'build', 'bench_fill')
EXAMPLES = '/usr/share/doc/libfuse3-dev/examples'
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MB = 1e6
SYSTEMS = ('ext4', 'pt', 'naive', 'blobfs')
NAMES = {'ext4': 'ext4', 'pt': 'passthrough_ll', 'naive': 'naive shell store', 'blobfs': 'blobfs'}
SHORT = {'ext4': 'ext4', 'pt': 'passthrough_ll', 'naive': 'naive'}
# What a row says in blobfs's column when this blobfs refuses -o compress=zstd.
NO_COMPRESS = 'n/a — this blobfs has no compress option'
q = shlex.quote


class BenchError(Exception):
    pass


def human(n):
    for unit, k in (('GiB', GiB), ('MiB', MiB), ('KiB', KiB)):
        if n >= k and n % k == 0:
            return f'{n // k} {unit}'
    return f'{n} B'


def fmt_value(fmt, v):
    if fmt in ('rate', 'files', 'count'):
        return f'{v:,.0f}'
    if fmt == 'ratio':
        return f'{v:.3f}'
    if fmt == 'mib':
        return f'{v:.1f}'
    if fmt == 'secs':
        return f'{v:.0f}' if v >= 1000 else f'{v:.3g}'
    return str(v)


def fmt_ratio(r):
    return f'{r:.2f}' if r >= 0.01 else f'{r:.3g}'


def one_line(s, limit=110):
    s = ' '.join(str(s).split())
    return s if len(s) <= limit else s[:limit - 1] + '…'
