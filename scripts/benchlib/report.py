# benchlib/report.py - renders docs/BENCHMARKS.md from the figures of a run
# as docs/benchmarks.json keeps them (never from a live run), so that
# `scripts/bench --render` can render it again without measuring: the
# results table, the table of ratios, where the chart is, why targets are not
# met, how each figure is measured, the commands, the notes and every sample.

import os

from .common import EXAMPLES, SYSTEMS, NAMES, SHORT, human, fmt_value
from .measure import Row


class Params:
    """The sizes and settings of the run, as the template reads them."""

    def __init__(self, data):
        for k, v in data['params'].items():
            setattr(self, k, v)
        self.quick, self.runs = data['quick'], data['runs']


def rows_of(data):
    return [Row.from_dict(d) for d in data['rows']]


def _line(cells):
    return '| ' + ' | '.join(str(c).replace('|', '\\|') for c in cells) + ' |'


def table(rows):
    hdr = ['#', 'workload', 'ext4', 'passthrough_ll', 'naive shell', 'blobfs',
           'blobfs ÷ ext4', 'blobfs ÷ passthrough_ll', 'target', 'met?']
    lines = ['| ' + ' | '.join(hdr) + ' |', '|' + '---|' * len(hdr)]
    for r in sorted(rows, key=lambda r: r.num):
        cells = [r.num, r.label] + [r.cell(s) for s in SYSTEMS] + \
                [r.ratio_cell('blobfs', 'ext4'), r.ratio_cell('blobfs', 'pt'),
                 r.target_text or '—', r.verdict() or '—']
        lines.append(_line(cells))
    return '\n'.join(lines)


def ratio_table(rows):
    pairs = [('pt', 'ext4'), ('naive', 'ext4'), ('blobfs', 'ext4'),
             ('naive', 'pt'), ('blobfs', 'pt'), ('blobfs', 'naive')]
    hdr = ['#', 'workload'] + [f'{SHORT.get(a, a)} ÷ {SHORT[b]}' for a, b in pairs]
    lines = ['| ' + ' | '.join(hdr) + ' |', '|' + '---|' * len(hdr)]
    for r in sorted(rows, key=lambda r: r.num):
        cells = [r.num, r.label] + [r.ratio_cell(a, b) for a, b in pairs]
        lines.append(_line(cells))
    return '\n'.join(lines)


def raw_samples(rows):
    """Every sample of every system, then of the references a target
    compares blobfs with (SHA-256, git, ...)."""
    out = []
    for r in sorted(rows, key=lambda r: r.num):
        parts = []
        for s in SYSTEMS:
            if r.samples[s] and s not in r.failed and s not in r.text:
                parts.append(f'{SHORT.get(s, s)} ' + ', '.join(fmt_value(r.fmt, v) for v in r.samples[s]))
        for what, samples in r.refs.values():
            if samples:
                parts.append(f'{what} (reference) ' + ', '.join(fmt_value(r.fmt, v) for v in samples))
        if parts:
            out.append(f'- {r.num}. {r.label}: ' + '; '.join(parts))
    return '\n'.join(out)


TITLES = {
    'build': 'Build',
    'mounts': 'Mounts: a fresh pair for each workload, in its own directory (shown for the first '
              'one); unmounted with `fusermount3 -u MNT`, then the bench waits for '
              'the daemon to exit',
    '1': '1. cp', '2': '2. dd conv=fsync', '3 cold': '3. cat, cold (FUSE mounts remounted, then drop caches)',
    '3 warm': '3. cat, warm (one untimed read first)',
    '4 (4 KiB)': '4. cp -r, 4 KiB files', '4 (64 KiB)': '4. cp -r, 64 KiB files',
    '5': '5. space', '6': '6. many blobs: building them',
    '6 mount': '6. mount (after drop caches; the warm mount follows an unmount without dropping)',
    '6 ls cold': '6. ls, cold (after drop caches)', '6 ls warm': '6. ls, warm (right after the cold one)',
    '6 stat': '6. stat (after drop caches)',
    '6 crash': '6. saves, then a crash (bench_fill\'s crash mode)',
    '6 crash mount': '6. the mount after the crash',
    '4b': '4b. reading back every file (blobfs: every blob), after drop caches',
    '4 git': '4. the git reference (a fresh repository under the bench directory)',
    '1b': '1b. a re-save (after a new save of the same content, a sync and 1 s)',
    '1c': '1c. cp into a blobfs mounted with -o compress=zstd (a mount of its own; one run after '
          'each round of row 1)',
    '2b': '2b. two large files at once',
    '5b': '5b. space of a source tree (with and without compression)',
    '8': '8. a store of ten million blobs: building it', '8 mount': '8. mount (warm)',
}


def commands(data):
    cmds = data['commands']
    out = []
    out.append('`$B` is the bench directory (a fresh `' +
               (data['params']['dir'].rstrip('/') if data['params']['dir'] else '/var/tmp') +
               '/blobfs-bench.XXXXXX`, removed at the end), `$REPO` the repository. '
               'Each command is run with `bash -euo pipefail -c`; what is timed is the wall '
               'time of that command. Before every timed write the source is read once '
               '(so it is in the page cache) and `sync` is run; after it the copy is removed '
               'and `sync` is run again (not timed). "Drop caches" is '
               '`sync; echo 3 > /proc/sys/vm/drop_caches`.')
    keys = ['build', 'mounts', '1', '1b', '1c', '2', '2b', '3 cold', '3 warm', '4 (4 KiB)', '4 git',
            '4b', '4 (64 KiB)', '5', '5b'] + \
           [k for k in cmds if k.startswith('7')] + \
           ['6', '6 mount', '6 ls cold', '6 ls warm', '6 stat', '6 crash', '6 crash mount',
            '8', '8 mount']
    for key in keys:
        if key not in cmds:
            continue
        title = TITLES.get(key, key.replace('7 (', '7. write amplification, ').rstrip(')') +
                           (' blobs (counters read before and after, around the command and a sync)'
                            if key.startswith('7') else ''))
        out.append(f'\n**{title}**\n')
        for s, cmd in cmds[key]:
            who = f'{NAMES[s]}: ' if s else ''
            out.append(f'- {who}`{cmd}`')
    return '\n'.join(out)


def chart_text(chart):
    """chart: (file name relative to the report, or None, and what to say)."""
    name, said = chart
    if not name:
        return f'The chart was not drawn: {said}.'
    return f'![blobfs ÷ each baseline, per row]({name})\n\n{said}'


def rerun_text(data):
    took = (f'this one took {data["duration_s"] / 60:.0f} minutes' if not data['quick'] and not data['only']
            else 'much longer than this one')
    return ('Rerun: `scripts/bench` (the full run: ' + took + ') or `scripts/bench --quick` (smaller '
            'sizes, fewer runs); `--dir DIR` puts the bench directory under DIR, `--runs N` changes '
            'the number of runs, `--only 1,5` runs only those workloads (the report then says it is '
            'partial), `--output FILE` writes the report to FILE (and benchmarks.json and '
            'benchmarks.svg beside it), `--keep` keeps the bench directory. `scripts/bench --render` '
            'renders this file and the chart again from benchmarks.json, without measuring.')


def render(data, chart, json_name='benchmarks.json'):
    """The whole of docs/BENCHMARKS.md for data (a run as the JSON keeps
    it); chart as chart_text takes it; json_name: the JSON file as a link
    from the report."""
    p = Params(data)
    p.json_name = json_name
    rows = rows_of(data)
    kind = 'QUICK run' if p.quick else 'full run'
    if data['only']:
        kind += f', PARTIAL (workloads {",".join(sorted(data["only"]))} only)'
    title = f'# blobfs benchmarks ({kind})'
    qnote = ''
    if p.quick:
        qnote = ('\n> **This is a quick run** (`scripts/bench --quick`): smaller sizes '
                 f'({human(p.big)} instead of 1 GiB, {p.n4:,} instead of 10,000 small '
                 f'files, {p.n5:,} instead of 100,000 1 KiB blobs, {p.n6:,} instead of '
                 f'1,000,000 blobs in workload 6) and {p.runs} runs per figure. '
                 'Run `scripts/bench` for the full table.\n')
    machine = '\n'.join(f'- **{k}**: {v}' for k, v in data['machine'].items())
    notes = list(data['notes'])
    if any('Too many open files' in n or 'EMFILE' in n for n in notes):
        soft = p.nofile_soft
        notes.append('"Too many open files" (EMFILE) from passthrough_ll is how it is built: it '
                     'keeps an O_PATH descriptor open for every inode the kernel has looked up '
                     'and not forgotten, and with plenty of memory the kernel forgets nothing, '
                     f'so past about {soft:,} files (the open-file limit of a process on this '
                     'machine) creating or looking up more files fails. This is reported as '
                     'measured, not worked around.')
    notes = '\n'.join(f'- {n}' for n in notes) or '- Nothing: every figure was measured.'
    rerun = rerun_text(data)
    chart = chart_text(chart)
    return f'''{title}

Generated by `scripts/bench{" --quick" if p.quick else ""}` on {data["generated"]}, in {data["duration_s"] / 60:.0f} minutes. Do not edit: the script rewrites this whole file.
{qnote}
What is measured: each workload runs side by side, in the same run and on the same disk, against
(a) **ext4**, a plain directory (the kernel, no FUSE); (b) **passthrough_ll**, libfuse's low-level
passthrough example compiled at bench time from `{EXAMPLES}/passthrough_ll.c` and mounted with its
defaults over a directory; (c) a **naive shell store** (`h=$(sha256sum f | cut -c1-64); cp f store/$h`);
(d) **blobfs** (`build/blobfs DATADIR MNT`, default options; files saved by writing
`MNT/STORE/incoming/NAME`; rows 1c and 5b also mount one with `-o compress=zstd`). Each figure is
the median of {p.runs} runs (interleaved: run 1 of every system, then run 2, ... with the order
rotated) unless it says otherwise; "cold" means the page cache was dropped (and FUSE file systems
remounted) just before. MB = 10^6 bytes. The ratio columns are blobfs's figure divided by the
baseline's; for rates (MB/s, files/s) higher is better, for times, sizes, descriptor counts and
write amplification lower is better. Each target is checked against figures measured in this run.
Every sample of every row, the targets, the verdicts and the machine are in
[{p.json_name}]({p.json_name}); this file and the chart are rendered from it.

{rerun}

## Machine

{machine}

## Results

{table(rows)}

### Chart

{chart}

### Every figure as a ratio

{ratio_table(rows)}

## Why a target is not met (measured while building blobfs)

Rows 1 to 8: figures from the full run of 2026-11-30 08:38 (commit 0d0f4e6) unless said
otherwise, with those of the run before it (2026-11-30, commit 6808cdd) where the two disagree.
The tables above come from a later full run (2026-11-30 21:09, commit 21210cc), with no other
benchmark or test running on the machine. Since the runs the paragraphs below quote, the engine
changed only in its reads (a large blob hashed ahead on another core, CRC32C on three lanes, and
a record checked whole remembered until the unmount): that moves row 3's cold `cat` (781 MB/s in
the run of 5133951, 1,032 in this one) and rows 10b and 10d; elsewhere, where the tables differ
from the figures below it is this machine's noise (row 1b's re-save: 451, 916 and 710 MB/s in
the three runs of 5133951). Row 9b's paragraph quotes the run of 5133951 (this one: 540 against
234 files/s in its first run, 2.3×); row 10b's, this one's. The profiles and counts were made outside this script (rerun them with the daemon
in the foreground, `build/blobfs -f DATADIR MNT`, with `perf record -g -p PID` or `-d` for the
requests). Rows met in one run and missed in the other are listed too: their ratio swings with
the baseline.

- **1. `cp` of 1 GiB (≥ 0.65× one-core SHA-256: met, 1.03×; ≥ 1.5× passthrough_ll: 1.14×; the run
  before: 1.01× and 0.91×).**
  The SHA-256 and the chunk CRCs are off the request path (digest threads read each MiB back
  from the page cache on the other core), so blobfs now runs at the speed of the copy itself,
  which is what passthrough_ll does too: the kernel copies each WRITE's bytes from the request
  into a file's page cache (blobfs: its staging file; passthrough_ll: its backing file); in a
  profile of the daemon during a large `cp` that copy (`copy_folio_from_iter_atomic` under
  `pwrite64`) was 60% of the samples. Doing 1.5× better than a passthrough that does the same copy
  needs not copying at all: splicing the request's pages from /dev/fuse into the staging file, or
  the kernel's FUSE passthrough of writes to a backing file (libfuse ≥ 3.16; Debian 12 has 3.14).
  Neither is built.
- **2. `dd bs=1M conv=fsync` (≥ 0.5× ext4: met, 0.54×; 0.50× the run before, on the line).** Why it
  stays close to the line: the same `dd` timed without
  `conv=fsync` and followed by a timed `sync` splits it (1 GiB, the two quiet runs of five, the
  data directory on this disk): ext4 takes 0.26–0.36 s to copy the bytes into its page cache and
  0.68–0.70 s to write them to the disk; blobfs takes 0.97–0.98 s for the ingest (row 1's copy
  through /dev/fuse, the blob saved at close) and 0.65–0.67 s for the same write-back. The disk's
  share is the same; the difference is the ingest, so what would lift this row is what would lift
  row 1 (no copy of each WRITE into the staging file). Tried and not kept: starting each MiB's
  write-back as the digest thread hashes it (`sync_file_range`), so that the fsync finds it done:
  the `sync` after the ingest fell from 0.68–0.91 s to 0.28–0.61 s, but the ingest slowed from
  1.05–1.11 s to 1.32–1.43 s (the same two cores submit and complete the disk's writes) and the
  sum did not improve, while a `cp` without fsync got slower.
- **2b. Two files at once (≥ 1.4× one file: 1.26×; 1.27× the run before).** The machine's two cores
  are the bound: one
  1 GiB `cp` into blobfs keeps 1.32 cores busy (the request thread's copies, the digest thread's
  SHA-256, `cp` itself), two at once 1.84 (`/proc/stat` around the copies, data directory on this
  disk), so two files can at best go 2 ÷ 1.32 = 1.5× as fast before any cost of sharing the cores.
  On a machine with more cores the target is in reach; here it would need less CPU per byte (the
  copy of row 1).
- **3. Warm `cat` (≥ 0.9× ext4: met, 0.97×; 0.69× the run before and in the run of the tables; 0.96× alone in a run of `--only 3`).** ext4 read 12,445 and 12,885 MB/s
  in the two runs, blobfs 12,107 and 8,940: blobfs's own figure swings. A warm read never reaches
  the daemon: with `-d` it sees
  only LOOKUP, OPEN, FLUSH and RELEASE, no READ (blob pages are kept across opens). It is the
  kernel's page-cache read path for a FUSE inode: `perf record cat` of a cached 1 GiB blob shows
  48% `_copy_to_iter`, 24% a spinlock of the page LRU, 7% `filemap_get_read_batch` and 6%
  `workingset_activation` (4 KiB folios); the same `cat` on ext4 is 82% `_copy_to_iter` (large
  folios). FUSE gets large folios only in later kernels' FUSE code; nothing in the daemon changes it.
- **4. `cp -r` of 10,000 files of 4 KiB (≥ 3.5× passthrough_ll: 1.62×; ≥ 1.5× git: met, 2.05×; the
  run before: 1.43× and 1.75×).**
  Each file costs the same round trips through /dev/fuse in blobfs as in passthrough_ll: LOOKUP
  (negative), CREATE, GETXATTR of `security.capability` (the kernel asks before a write; libfuse
  3.14 cannot negotiate `HANDLE_KILLPRIV_V2`), WRITE, FLUSH, RELEASE: six requests, two context
  switches each. blobfs makes each cheaper (no file per blob: the blob is appended to a pack from
  memory; one worker per CPU), hence 1.4–1.6×; 3.5× would need fewer requests per file than
  passthrough_ll, which the protocol of this kernel and libfuse does not offer.
- **4b. Reading those files back, cold (≥ 1.0× ext4: met, 1.59×; 0.58× the run before).** blobfs read
  4,407 and 4,034 files/s in the two runs, ext4 2,766 and 7,012: the ratio follows ext4's figure,
  which depends on where its 10,000 small files landed on this virtual disk. Against the faster
  ext4 the target is missed, and this is why: ext4 serves
  each file from the kernel; blobfs answers LOOKUP, OPEN, READ and RELEASE for each through
  /dev/fuse. The reads themselves are cheaper (one pack, in order) but four round trips per 4 KiB
  file cost more than ext4's whole read. Fewer round trips would remove it: READDIRPLUS (the
  listing `find` makes would answer the LOOKUPs; each entry then holds a kernel reference, which
  the bound on blob nodes must take into account) and the kernel's no-open mode (an OPEN answered
  ENOSYS once, no OPEN or RELEASE after; reads then carry no handle, so a reader would be opened per
  READ or cached per inode). Neither is built.
- **5. 1 KiB blobs, space (≤ 1.10: 1.145).** Per blob: 84 bytes of record framing (the 64-byte
  checksummed header with the hash, one 4-byte chunk checksum, the 16-byte trailer: what makes
  every record self-describing and verifiable after a crash) plus the blob's 64-byte entry in the
  index checkpoint (what makes a mount of a million blobs take 0.2 s): 148 bytes per 1024, 1.145.
  The packs alone: 1.08. The hash alone is in both (64 of the 148 bytes). Reaching 1.10 needs both
  a shorter record for small blobs (a 40-byte header and an 8-byte trailer) and a compressed
  checkpoint (the non-hash fields of an entry compress to a few bytes): a format change not made.
- **6. RSS with 1,000,000 blobs (≤ 64 MiB, a bound of the first round: 68.7 MiB; 70.8 the run
  before, whose index was read 84% full).** The index: 1.12 million 56-byte slots (a checkpoint is read
  into a table 89% full), 60 MiB. An idle daemon is 5 MiB (4.2 MiB of it the pages of its shared
  libraries: libcrypto, libzstd, libfuse, libc), and the 10,000 names looked up add 2.4 MiB. The
  slot grew from 48 to 56 bytes when it took each blob's saved time (so that a stat reads no
  pack); a 48-byte slot would meet the bound again (51 MiB of slots, about 59 in all): its 16 bytes other than the hash would
  have to hold the pack id, offset, length, kind, time and disk size, 192 bits today, e.g. with
  24-bit pack ids, 40-bit lengths (longer ones in a side table) and the time as a 32-bit offset
  from a store-wide epoch. A change of the index, not made.
- **9b. S3, 1,000 files of 4 KiB (≥ 5× `s3cmd sync`: 2.33×, 446 against 191 files/s, medians
  of the three runs of the run of the tables; 2.36× in the run before; rows 9 and 9c met:
  1.26× `s3cmd put`, a cached blob read at 0.97× a local blobfs).** The target is above what
  radosgw on this machine takes from any client: `curl --parallel` PUTting the same files 32 at
  once, beside it in the same run, reached 573 files/s (3.0× `s3cmd sync`; its runs 522, 573,
  715 against blobfs's 402, 446, 475), so 5× (955 files/s) would be more than curl's best run.
  blobfs reaches 0.78× of curl there.
  What it took: a close no longer asks the object store anything (the upload's PUT with
  `If-None-Match: *` finds out whether the blob was there; 239 files/s, 1.37×, when each close
  made a HEAD) and 32 upload threads instead of 8 (with 8, about 440 files/s against curl's
  600 in a run of workload 9 alone). What is left between blobfs and curl: blobfs's finish line
  is the bucket's listing polled every 50 ms (each listing of up to 1,000 keys is work for the
  same radosgw), and its `cp -r` and the daemon share the two cores with radosgw and the
  memstore OSD. Reaching 5× of `s3cmd sync` here would need a faster object store, not a
  faster client: with every debug log of radosgw and the OSD off as well (`config set debug_*
  0/0` on their admin sockets), `curl --parallel` PUT the 1,000 files at 753-802 files/s (three
  runs, 624-739 with the logs as they are), still below 955.
- **10b and 10d. A GET of a 512 MiB blob over HTTP: 10b met since a record checked whole is
  remembered (1.27× nginx in the run of the tables, the median of 1,933 against 1,523 MB/s; the
  three runs 1.05×, 1.31× and 1.28×, nginx itself moving between 1,460 and 1,846); 10d, each GET
  hashing the blob (`-o rehash`, as the first GET of a blob since the mount does), 0.66×, 1,186
  against 1,810 MB/s.** nginx sends the cached file with `sendfile`: no byte passes through it.
  blobfs checks every chunk's CRC32C before it goes out, and the whole SHA-256 of a blob read
  whole (README, promise 4). The history: 0.49× (665 against 1,350 MB/s in the run of 5133951)
  while every GET hashed inline; 0.67× (1,136 against 1,688, the run of fc3cf41) once the SHA-256
  of a large raw blob moved to a thread of its own (`src/local_ahead.c`) and CRC32C to three lanes
  (8.9 to 24 GB/s). That is where 10d stays, because hashing every GET needs about 2.4 cores at
  0.8× of nginx on this two-core machine shared by client and server: SHA-256 0.86 of a core
  (1.65 GB/s, `openssl speed -evp sha256`), `curl` about 0.8 (0.55-0.6 s of CPU per GiB), the
  daemon's pread, CRC32C and send about 0.7. What met 10b: a record of 1 MiB or more that a read
  found to hash to its name is remembered until the unmount (`src/local_checked.c`) and later
  reads check its chunk CRCs only, as the kernel's page cache serves a blob read once through the
  mount; the bench reads the blob through the mount before its GETs, so both GETs of each run are
  such later reads. A prototype that skipped the hash measured the same (1,482 and 1,818 against
  nginx's 1,517 and 1,795 MB/s). The bytes still pass through the daemon (pread, check, send):
  `sendfile` would send bytes nobody checked. Rows 10 (0.58× nginx) and 10c (uploads at 695-723
  MB/s, about 1.0× `curl -T` into nginx's WebDAV, which only writes a file) are met or have no
  target.
- **passthrough_ll in workload 5** fails: it keeps a descriptor per looked-up inode, and this
  machine's 20,000-descriptor limit ends its `cp -r` of 100,000 files ("failed to close").

## How each figure is measured

1. `cp` of a {human(p.big)} random file (in the page cache) into the directory / `incoming/`; MB/s = size ÷ wall time of `cp` (for the naive store, of `sha256sum` + `cp`). Nothing is synced inside the timing: ext4 and passthrough_ll return with the data in the page cache, blobfs returns when `close()` has saved the blob. 1c: the same `cp`, of a new {human(p.size_1c)} random (incompressible) file, into a blobfs of its own mounted with `-o compress=zstd`, one run after each round of row 1 (so interleaved with its runs); its reference is row 1's figure for blobfs (without compression) from those same rounds.
2. The same with `dd bs=1M conv=fsync` (durable ingest).
3. `cat FILE >/dev/null` of a {human(p.big)} file/blob. Cold: the FUSE file systems are unmounted and mounted again, then the page cache is dropped. Warm: after one untimed read. After the runs the blob read back from blobfs is checked with `sha256sum`.
4. `cp -r SRC/. DEST/` of {p.n4:,} files (into `incoming/` of a new store for blobfs, into a new directory otherwise); files/s = files ÷ wall time. The naive store loops over the files in shell. The number of entries is checked afterwards.
5. {p.n5:,} random 1 KiB files copied in (`cp -r`); then `du -sb` (apparent size) and `du -s --block-size=1` (allocated blocks) of the directory holding them (passthrough_ll: its underlying directory; blobfs: the whole DATADIR after unmounting; naive: the store directory, filled from Python with the same layout as the shell loop), divided by the payload ({p.n5:,} × 1024 bytes). One run (the result is deterministic). 5b: `{p.tree}` is first copied into the bench directory without its symbolic links (blobfs refuses links); that copy is copied with `cp -r` into an ext4 directory, into `incoming/` of a new store of a blobfs with its default options and into one of a blobfs mounted with `-o compress=zstd` (each with a DATADIR of its own); then `du -s --block-size=1` of the ext4 directory / of the whole DATADIR after unmounting, divided by the payload (the sum of the apparent sizes of the regular files). One run; the number of blobs listed is checked against the number of distinct contents.
6. A store of {p.n6:,} random 1 KiB blobs made with `build/bench_fill` (through the store API, not mounted), compared with one ext4 directory of {p.n6:,} 1 KiB files named by their SHA-256 (which is also what the naive store would be) and passthrough_ll mounted over that directory. Mount time: until `build/blobfs` returns (it daemonizes once mounted) / until passthrough_ll's mount appears. `ls -f DIR | wc -l` (the count is checked). `stat` of {p.nstat:,} random names (a different random sample each run) by a Python loop over `os.stat` in a child process; failures are counted by errno. Then the daemon's VmRSS and VmHWM (`/proc/PID/status`) and its open descriptors (`ls /proc/PID/fd | wc -l`).
7. `cp -r` of N files of 1 MiB / 256 MiB into `incoming/` (blobfs) or a directory, followed by `sync`. write_bytes and wchar are read from `/proc/PID/io` before and after: for blobfs and passthrough_ll, of the daemon (which does the writing); for ext4 and the naive store, of the bench process, which the counters of its reaped children (`cp`, `sha256sum`) are added to. Disk: sectors written to `{p.disk}` in `/proc/diskstats`, around the command and the `sync`; this counts everything written to the disk meanwhile, file-system metadata and journal included, but also whatever other processes on the machine wrote, so this row shows the lowest of the runs (other writers only add) and has no target. The target is checked on write_bytes. Each ratio is bytes ÷ payload.
9. Stores on an S3 object store: the one-node Ceph of `scripts/ceph-dev` (radosgw on loopback, a memstore OSD: the objects live in its memory), started for the workload when it is not running. 9: a 256 MiB random file (64 MiB in a quick run) uploaded with `s3cmd put` (its multipart upload, 15 MiB parts), and copied with `cp` into `incoming/` of a blobfs mounted on `s3://blobfs-bench/PREFIX` with `-o sync` (close() returns once the object store has the blob: the same finish line); MB/s = size ÷ wall time. 9b: 1,000 files of 4 KiB (200 in a quick run) with `s3cmd sync DIR/ s3://…/`, with `curl --parallel --parallel-max 32` PUTting every file (one config file of upload-file/url pairs, SigV4 by curl: radosgw's own ceiling for small PUTs here, whatever the client), and with `cp -r` into `incoming/` of a blobfs without `-o sync` (default 32 upload threads), timed until the bucket lists every blob (polled every 50 ms with boto3); files/s. 9c: the blob of row 9 read once through the mount (fetched and verified into the read cache), the mount remounted and the page cache dropped, then `cat` of it, next to a `cat` of the same file from a local blobfs (also remounted, caches dropped).
10. The HTTP API: a blobfs mounted with `-o http=127.0.0.1:18480,tokens=FILE` (the same daemon serves the mount and HTTP), 1,000 files of 4 KiB and one of 512 MiB (128 MiB in a quick run) copied into a store through the mount; nginx (Debian's, `worker_processes 2`, `sendfile on`, access log off, keep-alive) serving hard links of the same files, named by their hashes, from the same disk, on 127.0.0.1:18481. 10: `wrk -t2 -c32 -d10s` with a Lua script that asks for the 1,000 blobs in turn; requests/s (any answer other than 200 fails the run). 10b: the large blob (in the page cache, and read once through the mount, which checks it whole, so that the GETs check its chunk CRCs only: README, promise 4) fetched twice on one kept-alive connection by one `curl`; MB/s = 2 × size ÷ wall time. 10d: 10b again after the workload's other runs, the daemon mounted again with `-o rehash` (every GET hashes the blob whole, as the first GET of a blob since the mount does), next to nginx again. 10c: the large file (in the page cache) uploaded with `curl -T` to `PUT /stores/s/blobs/HASH` (a verified save; the blob deleted first), next to `curl -T` into nginx's WebDAV (`dav_methods PUT`) and `cp` into the mount's `incoming/` (the blob deleted first); MB/s = size ÷ wall time. The two servers alternate which goes first from run to run.

## Commands

{commands(data)}

## Notes

{notes}

## Raw samples

{raw_samples(rows)}
'''


def write(data, out, chart, json_name='benchmarks.json'):
    """Writes the report to out (through a temporary file and a rename)."""
    doc = render(data, chart, json_name)
    os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
    tmp = out + '.tmp'
    with open(tmp, 'w') as f:
        f.write(doc)
    os.replace(tmp, out)
    return out
