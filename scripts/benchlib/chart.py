# benchlib/chart.py - draws the chart of a run (docs/benchmarks.svg) from the
# figures as docs/benchmarks.json keeps them: for each row, blobfs's figure
# divided by each baseline's (ext4, passthrough_ll, the naive store, and the
# references a row compares with: SHA-256 by openssl, git hash-object, a new
# save, blobfs without compression; the payload for rows of bytes ÷ payload),
# as horizontal bars from 1.0 on a log-scale axis, with the target ratio
# marked where the row has one. matplotlib (Agg backend, no display) is the
# only dependency outside the standard library, and an optional one: without
# it draw() says why and the report is written without the chart.

import re
import textwrap
from collections import Counter

from .common import fmt_ratio
from .measure import Row

# Baselines in the order of the bars, with their colours (colour-blind safe).
COLOURS = {
    'ext4': '#0072B2', 'passthrough_ll': '#E69F00', 'naive': '#009E73',
    'SHA-256': '#D55E00', 'git hash-object': '#CC79A7', 'payload': '#7F7F7F',
    'blobfs without compression': '#56B4E9', 'a new save': '#BCBD22', 'one file': '#8C564B',
}
LABELS = {'SHA-256': 'SHA-256 (openssl dgst)', 'payload': 'payload (bytes ÷ payload)'}
SYSTEM_BASES = (('ext4', 'ext4'), ('pt', 'passthrough_ll'), ('naive', 'naive'))


def bars(row):
    """[(baseline, blobfs ÷ baseline, target ratio or None)] of one row;
    only ratios that can be drawn on a log axis (both figures > 0)."""
    target = {}
    for kind, base, k in row.targets:
        if kind in ('min', 'max', 'minref'):
            target[base] = k
    out = []
    for s, name in SYSTEM_BASES:
        r = row.ratio('blobfs', s)
        if r and r > 0:
            out.append((name, r, target.get(s)))
    b = row.value('blobfs')
    if not b or b <= 0:
        return out
    for key, (what, _) in row.refs.items():
        ref = row.ref(key)
        if ref and ref > 0:
            out.append((what, b / ref, target.get(key)))
    if row.fmt == 'ratio':
        k = next((k for kind, _, k in row.targets if kind == 'absmax'), None)
        out.append(('payload', b, k))
    return out


def short(label, width=62):
    """A row's label in at most two lines: without its longer parentheses
    (sizes and commands; units stay), cut in the middle if still too long,
    so that what tells rows apart (usually at the end) stays."""
    label = re.sub(r' \([^()]{14,}\)', '', label)
    if len(label) > 2 * width:
        label = label[:width - 8] + ' … ' + label[-(width + 5):]
    return '\n'.join(textwrap.wrap(label, width)[:2])


def draw(data, path):
    """Draws the chart of data into path (.svg or .png). Returns (path or
    None, one paragraph for the report: what the chart shows, or why it was
    not drawn)."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except Exception as e:      # ImportError, or a broken installation
        return None, (f'matplotlib could not be imported ({type(e).__name__}: {e}); '
                      'install python3-matplotlib and run `scripts/bench --render`')
    rows = sorted((Row.from_dict(d) for d in data['rows']), key=lambda r: r.num)
    groups, left_out = [], Counter()
    for r in rows:
        b = bars(r)
        if b:
            groups.append((r, b))
        else:
            left_out[r.num] += 1
    if not groups:
        return None, 'no row has a figure of blobfs and of a baseline to compare'

    matplotlib.rcParams['svg.hashsalt'] = 'blobfs-bench'   # the same ids on every render
    matplotlib.rcParams['svg.fonttype'] = 'none'           # text stays text (diffable)
    nbars = sum(len(b) for _, b in groups)
    fig, ax = plt.subplots(figsize=(13, 1.6 + 0.22 * nbars + 0.18 * len(groups)))
    y, ticks, ticklabels, xs, used = 0.0, [], [], [1.0], []
    for r, bs in groups:
        h = 0.8
        top = y
        for name, ratio, k in bs:
            colour = COLOURS.get(name, '#999999')
            if name not in used:
                used.append(name)
            ax.barh(y, ratio - 1.0, left=1.0, height=h, color=colour, edgecolor='none')
            # A dot at the end, so that a ratio close to 1 still shows.
            ax.plot([ratio], [y], marker='o', markersize=3.5, color=colour)
            ax.annotate(f'{fmt_ratio(ratio)}×', (ratio, y), xytext=(3 if ratio >= 1 else -3, 0),
                        textcoords='offset points', va='center', fontsize=7,
                        ha='left' if ratio >= 1 else 'right')
            xs.append(ratio)
            if k is not None:
                ax.plot([k], [y], marker='|', markersize=11, markeredgewidth=2.2, color='black')
                xs.append(k)
            y -= 1
        ticks.append((top + y + 1) / 2)
        arrow = '↑' if r.better == 'higher' else '↓'
        ticklabels.append(f'{r.num}  {short(r.label)} {arrow}')
        y -= 0.6
    ax.set_xscale('log')
    lo, hi = min(xs), max(xs)
    ax.set_xlim(lo / 3, hi * 3)
    ax.set_ylim(y + 0.3, 0.9)
    ax.axvline(1.0, color='black', linewidth=1)
    ax.set_yticks(ticks)
    ax.set_yticklabels(ticklabels, fontsize=7.5)
    ax.tick_params(axis='y', length=0)
    ax.grid(axis='x', which='major', color='#dddddd', linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_xlabel('blobfs ÷ baseline (log scale; bars start at 1.0)')
    kind = 'quick run' if data['quick'] else 'full run'
    if data['only']:
        kind += ', partial'
    ax.set_title(f'blobfs against each baseline, per row ({kind}, {data["generated"]}); '
                 '↑ higher is better, ↓ lower is better', fontsize=9)
    handles = [Patch(color=COLOURS.get(n, '#999999'), label=LABELS.get(n, n)) for n in used]
    handles.append(Line2D([], [], color='black', marker='|', linestyle='none', markersize=11,
                          markeredgewidth=2.2, label='target ratio'))
    ax.legend(handles=handles, fontsize=7.5, loc='upper right', framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, metadata={'Date': None} if path.endswith('.svg') else None)
    plt.close(fig)
    said = ('For each row, blobfs\'s figure divided by each baseline\'s (the ratio columns of the '
            'table, plus the references a target compares with, and for rows of bytes ÷ payload '
            'the figure itself), on a log scale: bars start at 1.0, so a bar to the right means '
            'blobfs\'s figure is the larger one; ↑ rows are better higher, ↓ rows better lower. '
            'A black tick is the target ratio of that baseline.')
    if left_out:
        parts = [f'{n} ({c} rows)' if c > 1 else n for n, c in left_out.items()]
        said += (' Rows with no ratio to draw (blobfs only with no reference, not measured, or '
                 'a baseline of 0) are not in the chart: ' + ', '.join(parts) + '.')
    return path, said
