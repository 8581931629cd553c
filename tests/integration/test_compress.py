"""Compression (-o compress=zstd[:LEVEL]) on a real mount, with real tools.

What is checked (docs/FORMAT.md, "Compressed record"):

- `cp -r` of a source tree (a copy of /usr/include/linux, or a generated
  tree of C-like text when it is missing, plus files at the chunk and
  large-blob edges) into incoming/: every content is a blob that
  `sha256sum` hashes to its name and that reads back as the source; the
  packs hold REC3 records (the empty and 1-byte blobs stay REC2); the data
  directory takes well under half the payload; fsck is clean;
- incompressible (random) files, small and large: REC2 only, read back
  exactly; the first-megabyte rule both ways (text then random: a REC3
  whose random chunks are stored raw; random then text: a REC2);
- a large compressible blob (one REC3 in a pack of its own): reads at exact
  offsets (O_DIRECT, so that the daemon sees each request as made) inside a
  chunk, across chunk boundaries, over many chunks, in the last partial
  chunk, across and past the end, backwards, from several threads on one
  descriptor and on several; `dd` with byte offsets, `tail -c`, `cat`;
- after unmount fsck is clean; a remount without compression (the default,
  then compress=none) reads everything the same, saves raw, dedups a content
  that is already there compressed (and back with compression, one stored
  raw); `blobfs stat` counts the bytes of deleted compressed records as
  dead (from the checkpoint and from a scan); compaction keeps REC3s;
- a closed incoming file that became a large (and a small) compressed blob
  takes an append (`cat >>`), a pwrite and a truncate: each is a new blob
  with the right content, the old ones stay;
- SIGKILL right after compressed saves, during a stream of them, and in the
  close() of a 48 MiB file (while it is compressed): every save whose
  close() returned is there after the remount and reads back, no staging
  file is left after the next clean unmount, fsck is clean;
- concurrent saves (the same content from several writers, distinct large
  ones compressed at once): one blob and one record each; a verified write
  to STORE/<hash> is compressed, a wrong one gives EIO and stores nothing;
- a flipped byte inside a stored (compressed) chunk: reading that chunk
  gives EIO, never other bytes, the blob's other chunks and the other blobs
  read fine, the log names the blob, fsck exits 1 naming it; fsck --repair
  drops it and everything else still reads; the same for a damaged header,
  chunk table or trailer of a REC3 amid others, with the index from the
  checkpoint or from a scan that must resynchronise past it;
- a chunk replaced by another valid zstd frame with every CRC made to agree
  (what a compressor bug would write): only the blob's SHA-256 sees it; a
  read in order one request at a time stops with EIO before the last bytes,
  fsck names the blob; read through the page cache (sha256sum twice) both
  fail: the read that reaches the end of a blob read whole hashes first what
  requests served out of order skipped, and a blob found corrupt has its
  cached pages dropped and later opens refused;
- -o compress=bogus, zstd:0, zstd:20 ... are refused at mount with a
  message and exit status 2, in the foreground and daemonized, with no
  mount left behind; zstd, zstd:1, zstd:19 and none mount.

Local backend only (compression is a property of the data directory).
"""

import errno
import os
import random
import shutil
import struct
import threading
import time
from pathlib import Path

import pytest

from blobfs_test import files
from blobfs_test.common import run
from blobfs_test.files import EMPTY_SHA256, expect_errno, read_blob_checked, read_file, write_all
from blobfs_test.mounting import (DEAD_MOUNT_ERRNOS, blobfs_tool, fsck_datadir, is_mounted,
                                  kill_daemon, mounts_under, unmount_dead_mount)
from blobfs_test.packs import crc32c
from blobfs_test.trees import check_tree_stored, run_ok, sha256

KiB = 1 << 10
MiB = 1 << 20
CHUNK = 64 * KiB

ZSTD = ['-o', 'compress=zstd']


# --------------------------------------------------------------------------
# contents


_WORDS = ('the quick brown fox jumps over a lazy dog while content addressed blob '
          'stores keep every chunk of sixty four kibibytes as one zstd frame or raw '
          'bytes when the frame would not be smaller struct int return static const '
          'uint64_t offset length hash seq pack record table trailer header').split()


def text_bytes(size, seed):
    """`size` bytes of compressible text: lines drawn from a pool of 128
    lines of words (different per seed), each with its own line number, so
    that no two chunks and no two seeds are alike."""
    rng = random.Random(f'text-{seed}')
    pool = [(' '.join(rng.choice(_WORDS) for _ in range(rng.randint(3, 11))) + '\n').encode()
            for _ in range(128)]
    out = bytearray()
    n = 0
    while len(out) < size:
        for line in rng.choices(pool, k=4096):
            out += b'%08d %s' % (n, line)
            n += 1
    return bytes(out[:size])


def random_bytes(size, seed):
    return random.Random(f'random-{seed}').randbytes(size)


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, flags, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def save(m, store, data, name):
    """Save through incoming/name (open, write, close); returns the hash
    once the blob is there with the right size."""
    return files.save(m.mnt, store, data, name=name)


# --------------------------------------------------------------------------
# the packs, with REC3 (blobfs_test.packs knows REC1/REC2 only)


PACK_HEADER_SIZE = 32
RECORD_HEADER_SIZE = 64
RECORD_TRAILER_SIZE = 16
END1 = 0x31444E45


class Rec:
    """One record as laid out in its pack. For a REC3: chunks is its table
    [(stored, crc)...] and chunk_at the file offset of each stored chunk."""

    def __init__(self, pack, offset, magic, kind, shift, seq, length, hexhash):
        self.pack, self.offset, self.magic, self.kind = pack, offset, magic, kind
        self.shift, self.seq, self.length, self.hash = shift, seq, length, hexhash
        self.nchunks = (length + (1 << shift) - 1) >> shift
        self.chunks = None
        self.chunk_at = None
        self.end = None

    @property
    def stored(self):
        return sum(s for s, _ in self.chunks) if self.chunks is not None else self.length

    def __repr__(self):
        return (f'<{self.magic} {self.pack.name}@{self.offset} kind {self.kind} '
                f'{self.hash[:12]} len {self.length} stored {self.stored}>')


def parse_pack(path):
    """Every record of a pack written by a healthy daemon, in file order;
    AssertionError when the bytes do not frame (CRCs are fsck's job)."""
    path = Path(path)
    data = path.read_bytes()
    assert data[:8] == b'BLOBPAK1', f'{path}: bad pack magic {data[:8]!r}'
    out = []
    off = PACK_HEADER_SIZE
    while off < len(data):
        assert off + RECORD_HEADER_SIZE <= len(data), f'{path}: short header at {off}'
        magic = data[off:off + 4].decode('latin-1')
        assert magic in ('REC1', 'REC2', 'REC3'), f'{path}: bad record magic {magic!r} at {off}'
        _, kind, shift, _, seq, length = struct.unpack_from('<IBBhQQ', data, off)
        rec = Rec(path, off, magic, kind, shift, seq, length, data[off + 24:off + 56].hex())
        if magic == 'REC3':
            assert kind == 1 and length > 0, f'{path}: {rec}: a REC3 must be a non-empty blob'
            table = off + RECORD_HEADER_SIZE
            rec.chunks = [struct.unpack_from('<II', data, table + 8 * i)
                          for i in range(rec.nchunks)]
            at = table + 8 * rec.nchunks
            rec.chunk_at = []
            for i, (stored, _) in enumerate(rec.chunks):
                clen = min(1 << shift, length - (i << shift))
                assert 1 <= stored <= clen, f'{path}: {rec}: chunk {i} stored {stored} of {clen}'
                rec.chunk_at.append(at)
                at += stored
            trailer = at
        else:
            trailer = off + RECORD_HEADER_SIZE + length + 4 * rec.nchunks
        assert trailer + RECORD_TRAILER_SIZE <= len(data), f'{path}: {rec} runs past the end'
        tmagic, _, tseq = struct.unpack_from('<IIQ', data, trailer)
        assert tmagic == END1 and tseq == seq, f'{path}: {rec}: bad trailer at {trailer}'
        rec.end = trailer + RECORD_TRAILER_SIZE
        out.append(rec)
        off = rec.end
    return out


def zstd_rle_frame(byte, n):
    """A zstd frame (RFC 8878) of one RLE block: `n` (256..65791) times
    `byte`, in 11 bytes: magic, a single-segment header with a 2-byte
    content size, the block header (last block, type RLE, size n), the
    byte."""
    assert 256 <= n <= 65791
    return (struct.pack('<IB', 0xFD2FB528, 0x60) + struct.pack('<H', n - 256) +
            (1 | 1 << 1 | n << 3).to_bytes(3, 'little') + bytes([byte]))


def pack_paths(datadir, store='s'):
    return sorted((Path(datadir) / 'stores' / store).glob('pack-*.pack'))


def store_records(datadir, store='s'):
    """{pack path: [Rec...]} for every pack of the store."""
    return {p: parse_pack(p) for p in pack_paths(datadir, store)}


def blob_records(datadir, store='s'):
    """{hash: Rec} of the newest blob record of each hash."""
    out = {}
    for recs in store_records(datadir, store).values():
        for r in recs:
            if r.kind == 1 and (r.hash not in out or r.seq > out[r.hash].seq):
                out[r.hash] = r
    return out


def sha256sum(paths):
    """{path: hash} as the sha256sum program computes them."""
    r = run_ok(['sha256sum', '--'] + [str(p) for p in paths], timeout=120)
    out = {}
    for line in r.stdout.splitlines():
        h, _, p = line.partition('  ')
        out[p] = h
    assert len(out) == len(paths), r.stdout[-2000:]
    return out


def check_blobs_read_back(m, store, contents, what=''):
    """Each {hash: bytes} is listed, `sha256sum` hashes it to its name, and
    a sequential read gives exactly its bytes."""
    listed = set(files.blob_names(m.mnt, store))
    missing = sorted(h for h in contents if h not in listed)
    assert not missing, f'{what}: {len(missing)} of {len(contents)} blobs missing: {missing[:5]}'
    paths = [m.path(store, h) for h in sorted(contents)]
    sums = sha256sum(paths)
    wrong = [p for p in paths if sums[p] != os.path.basename(p)]
    assert not wrong, f'{what}: sha256sum of a blob is not its name: {wrong[:5]}'
    for h, data in contents.items():
        assert read_blob_checked(m.path(store, h), data) == data, f'{what}: {h} reads back wrong'


def fsck_clean(datadir, what=''):
    r = fsck_datadir(datadir)
    assert r.returncode == 0, f'{what}: fsck exit {r.returncode}\n{r.stdout}{r.stderr}'
    assert ' 0 problems' in r.stderr, r.stdout + r.stderr
    return r


def open_direct(path):
    """A descriptor whose reads reach the daemon as they are made (O_DIRECT:
    no page cache, no readahead, any offset and length). Falls back to a
    cached descriptor with readahead off if the kernel refuses O_DIRECT."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    return fd


# --------------------------------------------------------------------------
# cp -r of a source tree


def _build_source_tree(root):
    """/usr/include/linux (real text) when there is one, else 400 generated
    C-like files; plus the edge sizes of gen/. Returns a description."""
    root = Path(root)
    if os.path.isdir('/usr/include/linux'):
        shutil.copytree('/usr/include/linux', root / 'linux', symlinks=False)
        what = 'a copy of /usr/include/linux'
    else:
        for i in range(400):
            p = root / 'gen-src' / f'd{i % 13}' / f'file{i}.h'
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b'/* generated */\n#define X%d %d\n' % (i, i) +
                          text_bytes(random.Random(i).randint(200, 40 * KiB), f'src-{i}'))
        what = '400 generated text files'
    gen = root / 'gen'
    gen.mkdir(parents=True)
    edges = {
        'empty': b'',
        'one byte': b'x',
        'one chunk': text_bytes(CHUNK, 'one chunk'),
        'one chunk and a byte': text_bytes(CHUNK + 1, 'one chunk +1'),
        'just below large_blob': text_bytes(MiB - 1, 'below large'),
        'large_blob and a byte': text_bytes(MiB + 1, 'large +1'),
        # 32 chunks: compressed by one thread; 33: by two (823e718)
        'large 2MiB': text_bytes(2 * MiB, 'large 2MiB'),
        'large 2MiB and a byte': text_bytes(2 * MiB + 1, 'large 2MiB +1'),
        'large 3MiB': text_bytes(3 * MiB + 7, 'large 3MiB'),
        'dup of one chunk': text_bytes(CHUNK, 'one chunk'),
    }
    for name, data in edges.items():
        (gen / name).write_bytes(data)
    return what, {name: sha256(d) for name, d in edges.items()}


def test_cp_r_of_a_source_tree_is_stored_compressed(make_mount, tmp_path, metric):
    src = tmp_path / 'src'
    what, edges = _build_source_tree(src)
    m = make_mount(extra_args=ZSTD)
    os.mkdir(m.path('s'))
    t0 = time.monotonic()
    run_ok(['cp', '-r', str(src), m.path('s', 'incoming')], timeout=120)
    cp_seconds = time.monotonic() - t0
    # contents, the store's exact blob set, directories, receipts
    tree = check_tree_stored(m.mnt, 's', 'src', src, before=set())
    # sha256sum of each blob is its name (check_tree_stored compared each
    # with its source's bytes)
    hashes = sorted(set(tree.values()))
    sums = sha256sum([m.path('s', h) for h in hashes])
    wrong = sorted(h for h in hashes if sums[m.path('s', h)] != h)
    assert not wrong, f'sha256sum of {len(wrong)} blobs differs from their names: {wrong[:5]}'
    sizes = {h: os.stat(m.path('s', h)).st_size for h in hashes}
    m.umount()

    recs = blob_records(m.data)
    assert set(recs) == set(hashes), 'the packs do not hold exactly the saved blobs'
    rec3 = [h for h in hashes if recs[h].magic == 'REC3']
    assert recs[EMPTY_SHA256].magic == 'REC2', recs[EMPTY_SHA256]
    assert recs[edges['one byte']].magic == 'REC2', recs[edges['one byte']]
    for name in ('one chunk', 'one chunk and a byte', 'just below large_blob',
                 'large_blob and a byte', 'large 2MiB', 'large 2MiB and a byte', 'large 3MiB'):
        assert recs[edges[name]].magic == 'REC3', f'{name}: {recs[edges[name]]}'
    for name in ('large_blob and a byte', 'large 2MiB', 'large 2MiB and a byte', 'large 3MiB'):
        big = recs[edges[name]]
        assert len(parse_pack(big.pack)) == 1, f'{name}: {big}: expected a pack of its own'
    below = recs[edges['just below large_blob']]
    assert len(parse_pack(below.pack)) > 1, f'{below}: a small blob goes to the shared pack'
    assert len(rec3) >= 0.9 * len(hashes), (
        f'only {len(rec3)} of {len(hashes)} text blobs were stored compressed')
    fsck_clean(m.data, 'after cp -r')

    payload = sum(sizes.values())
    on_disk = files.du_bytes(m.data)
    ratio = on_disk / payload
    # the tree alone, without the generated edge files (highly compressible)
    tree_hashes = {h for rel, h in tree.items() if not rel.startswith('gen/')} - set(edges.values())
    tree_payload = sum(sizes[h] for h in tree_hashes)
    tree_disk = sum(recs[h].end - recs[h].offset for h in tree_hashes)
    metric(f'{what}: {len(tree_hashes)} blobs, {tree_payload} bytes of content in records of '
           f'{tree_disk} bytes ({tree_disk / tree_payload:.2f}x); with the edge files: '
           f'{len(hashes)} blobs, {payload} bytes, DATADIR {on_disk} bytes ({ratio:.2f}x), '
           f'{len(rec3)} REC3; cp -r {cp_seconds:.2f}s')
    assert tree_disk < 0.5 * tree_payload, (
        f'the records of {what} take {tree_disk / tree_payload:.2f}x their content '
        f'(expected < 0.5x)')
    assert ratio < 0.5, f'the data directory takes {ratio:.2f}x the payload (expected < 0.5x)'


# --------------------------------------------------------------------------
# incompressible data


def test_incompressible_blobs_are_stored_raw(make_mount, tmp_path):
    contents = {
        'r1': random_bytes(1, 1),
        'r1000': random_bytes(1000, 2),
        'r64k': random_bytes(CHUNK, 3),
        'r200k': random_bytes(200 * KiB + 3, 4),
        'r1M': random_bytes(MiB, 5),
        'r3M': random_bytes(3 * MiB, 6),
        # a megabyte of random first: given up, REC2 whatever follows
        'random then text': random_bytes(MiB, 7) + text_bytes(MiB + 100, 7),
        # text first: a REC3 whose random chunks are kept raw
        'text then random': text_bytes(MiB, 8) + random_bytes(MiB + 100, 8),
    }
    src = tmp_path / 'src'
    src.mkdir()
    for name, data in contents.items():
        (src / name).write_bytes(data)
    m = make_mount(extra_args=ZSTD)
    os.mkdir(m.path('s'))
    run_ok(['cp'] + [str(src / n) for n in contents] + [m.path('s', 'incoming')])
    by_hash = {sha256(d): d for d in contents.values()}
    check_blobs_read_back(m, 's', by_hash, 'incompressible')
    # a read across the text/random edge of the mixed blob
    mixed = contents['text then random']
    fd = open_direct(m.path('s', sha256(mixed)))
    try:
        assert files.read_exact(fd, 3000, MiB - 1000) == mixed[MiB - 1000:MiB + 2000]
    finally:
        os.close(fd)
    m.umount()

    recs = blob_records(m.data)
    for name, data in contents.items():
        if name == 'text then random':
            continue
        r = recs[sha256(data)]
        assert r.magic == 'REC2', f'{name} ({len(data)} bytes) was not stored raw: {r}'
        if len(data) >= MiB:
            assert len(parse_pack(r.pack)) == 1, f'{name}: {r} is not alone in its pack'
            assert all(x.magic != 'REC3' for x in parse_pack(r.pack))
    r = recs[sha256(mixed)]
    assert r.magic == 'REC3', f'text then random: {r}'
    first = MiB // CHUNK
    assert all(s < CHUNK for s, _ in r.chunks[:first]), f'text chunks not compressed: {r.chunks}'
    assert all(s == min(CHUNK, len(mixed) - i * CHUNK)
               for i, (s, _) in enumerate(r.chunks) if i >= first), (
        f'random chunks not kept raw: {r.chunks[first:]}')
    # written exactly as without compression: the packs of the raw blobs
    # hold their REC2s and nothing else (header 64 + data + 4 per chunk +
    # trailer 16, after a 32-byte pack header)
    raw = [recs[sha256(d)] for n, d in contents.items() if n != 'text then random']
    raw_packs = {r.pack for r in raw}
    expected = 32 * len(raw_packs) + sum(64 + r.length + 4 * r.nchunks + 16 for r in raw)
    assert sum(p.stat().st_size for p in raw_packs) == expected, [
        (p.name, p.stat().st_size) for p in raw_packs]
    fsck_clean(m.data, 'incompressible')


# --------------------------------------------------------------------------
# a large compressible blob, read at any offset


def _ranges(size):
    """(offset, length) pairs: inside a chunk, across boundaries, many
    chunks, the last partial chunk, across and past the end."""
    last = (size // CHUNK) * CHUNK
    fixed = [
        (0, 1), (0, 100), (1000, 100), (CHUNK - 1, 1), (CHUNK - 10, 20), (CHUNK, 1),
        (CHUNK, CHUNK), (3 * CHUNK - 5, 200000), (5 * CHUNK + 17, 3 * CHUNK),
        (7 * CHUNK - 1, 2), (MiB - 3, 6), (MiB, 4096), (2 * MiB - 4096, 8192),
        (last - 1, 2), (last, 10), (last + 5, size - last - 5), (size - 100, 100),
        (size - 50, 4096), (size - 1, 1), (size - 1, 10), (size, 10), (size + 1, 10),
        (size + 10 * MiB, 4096),
    ]
    rng = random.Random(4242)
    rand = [(rng.randrange(size), rng.choice((1, 7, 512, 4096, CHUNK, 100000))) for _ in range(60)]
    return fixed + rand


def test_large_compressible_blob_random_access(make_mount, tmp_path, metric):
    size = 12 * MiB + 12345          # not a multiple of the chunk size
    data = text_bytes(size, 'big')
    h = sha256(data)
    src = tmp_path / 'big.txt'
    src.write_bytes(data)
    m = make_mount(extra_args=ZSTD)
    os.mkdir(m.path('s'))
    run_ok(['cp', str(src), m.path('s', 'incoming', 'big.txt')])
    blob = m.path('s', h)
    assert os.stat(blob).st_size == size

    # exact offsets, before anything was read in order
    fd = open_direct(blob)
    try:
        for off, n in _ranges(size):
            got = files.read_exact(fd, n, off)
            assert got == data[off:off + n], f'pread({n} bytes at {off}) of a {size}-byte blob'
        # backwards, chunk by chunk, then forwards on the same descriptor
        for i in reversed(range(0, size, CHUNK)):
            assert files.read_exact(fd, 5000, i) == data[i:i + 5000], f'backwards at {i}'
        whole = files.read_exact(fd, size + 1, 0)
        assert whole == data, 'a sequential read after random ones differs'
    finally:
        os.close(fd)

    # several threads on one descriptor and on descriptors of their own
    errors = []
    shared = open_direct(blob)

    def reader(seed, own):
        rng = random.Random(seed)
        fd = open_direct(blob) if own else shared
        try:
            for _ in range(60):
                off = rng.randrange(size)
                n = rng.choice((1, 100, 4096, CHUNK + 3, 200000))
                if files.read_exact(fd, n, off) != data[off:off + n]:
                    errors.append(f'thread {seed}: {n} bytes at {off} differ')
                    return
        except OSError as e:
            errors.append(f'thread {seed}: {e}')
        finally:
            if own:
                os.close(fd)

    threads = [threading.Thread(target=reader, args=(i, i % 2 == 0)) for i in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        os.close(shared)
    assert not any(t.is_alive() for t in threads), 'reader threads hang'
    assert not errors, '\n'.join(errors)

    # the tools
    r = run_ok(['dd', f'if={blob}', 'bs=4096', 'skip=15', 'count=2', 'status=none'], text=False)
    assert r.stdout == data[15 * 4096:17 * 4096], 'dd skip=15 count=2 (across the first chunk end)'
    for skip, count in ((CHUNK - 6, 12), (5 * CHUNK + 1, 3 * CHUNK), (size - 1000, 5000)):
        r = run_ok(['dd', f'if={blob}', 'bs=64K', 'iflag=skip_bytes,count_bytes,direct',
                    f'skip={skip}', f'count={count}', 'status=none'], text=False)
        assert r.stdout == data[skip:skip + count], f'dd skip={skip} count={count} bytes'
    r = run_ok(['tail', '-c', '70000', blob], text=False)
    assert r.stdout == data[-70000:], 'tail -c 70000'
    t0 = time.monotonic()
    r = run_ok(['cat', blob], text=False, timeout=120)
    cat_seconds = time.monotonic() - t0
    assert r.stdout == data, 'cat of the whole blob differs from the source'
    run_ok(['cmp', str(src), blob])
    assert files.read_file(m.path('s', 'incoming', 'big.txt')) == data, 'the receipt differs'
    m.umount()

    recs = blob_records(m.data)
    rec = recs[h]
    assert rec.magic == 'REC3', rec
    assert [r.hash for r in parse_pack(rec.pack)] == [h], f'{rec} is not alone in its pack'
    assert rec.length == size and len(rec.chunks) == (size + CHUNK - 1) // CHUNK
    assert rec.pack.stat().st_size < 0.4 * size, (
        f'pack of {rec.pack.stat().st_size} bytes for {size} bytes of text')
    fsck_clean(m.data, 'large blob')
    metric(f'{size} bytes of text in a pack of {rec.pack.stat().st_size} bytes '
           f'({rec.pack.stat().st_size / size:.2f}x); cat {cat_seconds:.2f}s')


# --------------------------------------------------------------------------
# remount without compression; compaction


def test_remount_without_compression_reads_everything_and_saves_raw(make_mount):
    m = make_mount(extra_args=['-o', 'compress=zstd:19'])
    os.mkdir(m.path('s'))
    old = {
        'small': text_bytes(5000, 'r-small'),
        'chunks': text_bytes(5 * CHUNK - 100, 'r-chunks'),
        'large': text_bytes(MiB + MiB // 2 + 3, 'r-large'),
        'random': random_bytes(30000, 'r-random'),
    }
    old_h = {name: save(m, 's', d, name) for name, d in old.items()}
    m.umount()
    fsck_clean(m.data, 'after saves with compress=zstd:19')
    recs = blob_records(m.data)
    for name in ('small', 'chunks', 'large'):
        assert recs[old_h[name]].magic == 'REC3', f'{name}: {recs[old_h[name]]}'
    assert recs[old_h['random']].magic == 'REC2'
    old_recs = {h: (r.pack.name, r.offset, r.magic) for h, r in recs.items()}

    contents = {old_h[n]: d for n, d in old.items()}
    new_h = {}
    for opts, tag in (([], 'default'), (['-o', 'compress=none'], 'none')):
        m.extra_args = opts
        m.mount()
        check_blobs_read_back(m, 's', contents, f'remount ({tag})')
        # a content already there compressed: deduplicated, nothing written
        assert save(m, 's', old['chunks'], f'again-{tag}') == old_h['chunks']
        for kind, size in (('small', 7 * CHUNK + 5), ('large', 2 * MiB + 1)):
            d = text_bytes(size, f'new-{tag}-{kind}')
            new_h[f'{tag}-{kind}'] = h = save(m, 's', d, f'new-{kind}')
            contents[h] = d
        check_blobs_read_back(m, 's', contents, f'after new saves ({tag})')
        m.umount()
        recs = blob_records(m.data)
        for h, where in old_recs.items():
            assert (recs[h].pack.name, recs[h].offset, recs[h].magic) == where, (
                f'{h}: the old record moved or changed: {recs[h]} (was {where})')
        for name, h in new_h.items():
            assert recs[h].magic == 'REC2', f'saved without compression ({name}): {recs[h]}'
        fsck_clean(m.data, f'after the remount ({tag})')
    # and back with compression: all of it reads; a content stored raw is
    # not stored again compressed
    m.extra_args = ZSTD
    m.mount()
    check_blobs_read_back(m, 's', contents, 'remount with compress=zstd')
    raw_h = new_h['default-large']
    assert save(m, 's', contents[raw_h], 'again') == raw_h
    m.umount()
    recs = [r for rs in store_records(m.data).values() for r in rs if r.hash == raw_h]
    assert [r.magic for r in recs] == ['REC2'], f'{raw_h}: {recs}'
    fsck_clean(m.data, 'after the last remount')


def test_compaction_keeps_compressed_records(make_mount):
    m = make_mount(extra_args=ZSTD)
    os.mkdir(m.path('s'))
    contents = {}
    for i in range(24):
        d = text_bytes(random.Random(i).randint(1000, 5 * CHUNK), f'compact-{i}')
        contents[save(m, 's', d, f'f{i}')] = d
    doomed = sorted(contents)[::2]
    for h in doomed:
        os.unlink(m.path('s', h))
    kept = {h: d for h, d in contents.items() if h not in doomed}
    m.umount()
    # the bytes the deleted (compressed) records take are counted dead:
    # from the checkpoint's disk sizes, and from a scan without it
    recs = blob_records(m.data)
    assert all(r.magic == 'REC3' for r in recs.values()), recs
    deleted = sum(recs[h].end - recs[h].offset for h in doomed)
    checkpoint = Path(m.data, 'stores', 's', 'checkpoint')
    for how in ('checkpoint', 'scan'):
        if how == 'scan':
            checkpoint.unlink()
        r = blobfs_tool('stat', m.data)
        assert r.returncode == 0, f'blobfs stat: {r.returncode}\n{r.stdout}{r.stderr}'
        line = next(x for x in r.stdout.splitlines() if x.startswith('store=s '))
        dead = int(line.split('dead_bytes=')[1].split()[0])
        assert deleted * 0.99 <= dead <= deleted, (
            f'{how}: stat says dead_bytes={dead}, the deleted records take {deleted}: {line}')
    before = sum(p.stat().st_size for p in pack_paths(m.data))
    r = blobfs_tool('compact', m.data)
    assert r.returncode == 0, f'blobfs compact: {r.returncode}\n{r.stdout}{r.stderr}'
    after = sum(p.stat().st_size for p in pack_paths(m.data))
    recs = blob_records(m.data)
    assert all(recs[h].magic == 'REC3' for h in kept), 'compaction changed a record\'s format'
    assert after < before, f'compaction gave nothing back ({before} -> {after} bytes)'
    fsck_clean(m.data, 'after compact')
    m.mount()
    check_blobs_read_back(m, 's', kept, 'after compact')
    for h in doomed:
        expect_errno(errno.ENOENT, os.stat, m.path('s', h))


# --------------------------------------------------------------------------
# writing to a closed incoming file that became a compressed blob


def test_writing_to_a_closed_file_that_became_a_compressed_blob(make_mount, tmp_path):
    m = make_mount(extra_args=ZSTD)
    os.mkdir(m.path('s'))
    inc = lambda name: m.path('s', 'incoming', name)   # noqa: E731
    expected = {}

    def check(name, data, what):
        h = sha256(data)
        expected[h] = data
        assert os.stat(m.path('s', h)).st_size == len(data), f'{what}: no blob of the new content'
        assert read_blob_checked(m.path('s', h), data) == data, f'{what}: blob reads back wrong'
        files.assert_receipt(inc(name), data)
        for oh, od in expected.items():
            assert read_blob_checked(m.path('s', oh), od) == od, f'{what}: older blob {oh} changed'

    big = text_bytes(3 * MiB + 100, 'append-big')
    save(m, 's', big, 'big')
    check('big', big, 'first save')
    more = text_bytes(100 * KiB + 1, 'append-more')
    (tmp_path / 'more').write_bytes(more)
    # an append by a shell, after the close
    run_ok(f'cat "{tmp_path / "more"}" >> "{inc("big")}"', shell=True)
    big += more
    check('big', big, 'cat >>')
    # a pwrite in the middle (inside a chunk that was stored compressed)
    fd = os.open(inc('big'), os.O_RDWR)
    try:
        assert os.pwrite(fd, b'<<overwritten>>', MiB + 12345) == 15
    finally:
        os.close(fd)
    big = big[:MiB + 12345] + b'<<overwritten>>' + big[MiB + 12345 + 15:]
    check('big', big, 'pwrite')
    # a shrink by truncate(2) on the name: still a large blob
    os.truncate(inc('big'), 2 * MiB + 3)
    big = big[:2 * MiB + 3]
    check('big', big, 'truncate')
    # a small compressed blob, appended to
    small = text_bytes(300 * KiB, 'append-small')
    save(m, 's', small, 'small')
    check('small', small, 'small save')
    write_file(inc('small'), b'tail\n', os.O_WRONLY | os.O_APPEND)
    small += b'tail\n'
    check('small', small, 'small append')
    assert set(files.blob_names(m.mnt, 's')) == set(expected), 'stray or missing blobs'
    m.umount()
    recs = blob_records(m.data)
    for h, d in expected.items():
        assert recs[h].magic == 'REC3', f'{len(d)}-byte text blob not compressed: {recs[h]}'
    fsck_clean(m.data, 'after rewrites')
    m.mount()
    check_blobs_read_back(m, 's', expected, 'after a remount')


# --------------------------------------------------------------------------
# SIGKILL


def _stream_saves(m, bases, sizes, state, lock, killed, errors, tag):
    """Saves distinct compressible contents (a counter line before one of
    `bases`) one after the other until the daemon dies: state[h] = 'acked'
    once close() returned, 'maybe' for the one the kill cut; sizes[h] its
    size (the content is checked by its hash)."""
    i = 0
    while True:
        data = b'%s %d\n' % (tag.encode(), i) + bases[i % len(bases)]
        h = sha256(data)
        with lock:
            state[h] = 'maybe'
            sizes[h] = len(data)
        try:
            write_file(m.path('s', 'incoming', f'stream-{tag}-{i}'), data)
        except OSError as e:
            if not (killed.is_set() and e.errno in DEAD_MOUNT_ERRNOS):
                errors.append(f'save of {len(data)} bytes: {e}')
            return
        with lock:
            state[h] = 'acked'
        i += 1
        if i > 10000:
            errors.append('the daemon was not killed')
            return


def test_sigkill_after_compressed_saves(make_mount, metric):
    m = make_mount(extra_args=ZSTD)
    os.mkdir(m.path('s'))
    contents = {}      # the saves of the main thread, checked byte for byte
    sizes = {}         # every save, by hash
    state = {}
    lock = threading.Lock()
    counts = []
    bases = [text_bytes(n, f'stream base {n}') for n in (150 * KiB, 3 * MiB // 2, 3 * MiB)]
    for rnd, delay in enumerate((0.3, 0.8)):
        # saves that returned just before the kill
        batch = [text_bytes(n, f'kill{rnd}-{n}') for n in (100, 10 * KiB, 200 * KiB + 1,
                                                            MiB - 1, MiB, 5 * MiB // 2)]
        batch += [random_bytes(50 * KiB, f'kill{rnd}'), random_bytes(2 * MiB, f'kill{rnd}'),
                  text_bytes(MiB, f'kill{rnd}-mix') + random_bytes(MiB, f'kill{rnd}-mix')]
        for i, d in enumerate(batch):
            h = save(m, 's', d, f'round{rnd}-{i}')
            contents[h] = d
            sizes[h] = len(d)
            state[h] = 'acked'
        # and a stream of compressed saves going on when the daemon dies
        killed = threading.Event()
        errors = []
        t = threading.Thread(target=_stream_saves,
                             args=(m, bases, sizes, state, lock, killed, errors, f'r{rnd}'))
        t.start()
        time.sleep(delay)
        killed.set()
        status = kill_daemon(m)
        t.join(60)
        assert not t.is_alive(), 'the writer is still blocked after the kill'
        assert not errors, errors
        assert status == -9, f'daemon exit status {status} after SIGKILL'
        r = unmount_dead_mount(m.mnt)
        assert r.returncode == 0, f'fusermount3 -u of the dead mount: {r.stderr}'
        m.mount()
        listed = set(files.blob_names(m.mnt, 's'))
        with lock:
            acked = {h for h, s in state.items() if s == 'acked'}
            maybe = {h for h, s in state.items() if s == 'maybe'}
        lost = sorted(acked - listed)
        assert not lost, (f'round {rnd}: {len(lost)} saves whose close() returned are gone: '
                          f'{[(h, sizes[h]) for h in lost]}\n{m.log_tail(40)}')
        unknown = sorted(listed - acked - maybe)
        assert not unknown, f'round {rnd}: blobs never saved are listed: {unknown}'
        check_blobs_read_back(m, 's', {h: d for h, d in contents.items() if h in listed},
                              f'after kill {rnd}')
        for h in sorted(listed - set(contents)):
            got = read_file(m.path('s', h))
            assert len(got) == sizes[h] and sha256(got) == h, (
                f'after kill {rnd}: {h} reads {len(got)} bytes hashing to {sha256(got)} '
                f'(saved {sizes[h]} bytes)')
        assert os.listdir(m.path('s', 'incoming')) == [], 'incoming/ is not empty after the remount'
        with lock:
            for h in maybe:
                state[h] = 'acked' if h in listed else 'gone'
        counts.append(f'round {rnd} (kill at {delay}s): {len(acked)} acked, '
                      f'{len(maybe & listed)} of {len(maybe)} cut saves there')
        m.umount()
        stale = sorted(p.name for p in Path(m.data, 'stores', 's').iterdir()
                       if p.name.startswith('staging'))
        assert not stale, f'staging files left after a clean unmount: {stale}'
        fsck_clean(m.data, f'after kill {rnd}')
        recs = blob_records(m.data)
        n3 = sum(1 for h in listed if recs[h].magic == 'REC3')
        assert n3 >= len(listed) // 2, f'only {n3} of {len(listed)} blobs were compressed'
        m.mount()
    # a kill while a 48 MiB file is being closed, that is compressed
    huge = b''.join(b'huge %d\n' % k + bases[1] for k in range(32))
    h = sha256(huge)
    in_close = threading.Event()
    errors = []

    def close_slowly():
        try:
            fd = os.open(m.path('s', 'incoming', 'huge'), os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError as e:
            errors.append(f'open: {e}')
            in_close.set()
            return
        try:
            write_all(fd, huge)
        except OSError as e:
            errors.append(f'write: {e}')
        in_close.set()
        try:
            os.close(fd)
        except OSError as e:
            if e.errno not in DEAD_MOUNT_ERRNOS:
                errors.append(f'close: {e}')

    t = threading.Thread(target=close_slowly)
    t.start()
    assert in_close.wait(120), 'the write of 48 MiB did not end'
    time.sleep(0.03)
    kill_daemon(m)
    t.join(60)
    assert not t.is_alive() and not errors, errors
    staging_at_kill = sorted(p.name for p in Path(m.data, 'stores', 's').iterdir()
                             if p.name.startswith('staging'))
    r = unmount_dead_mount(m.mnt)
    assert r.returncode == 0, f'fusermount3 -u of the dead mount: {r.stderr}'
    m.mount()
    listed = set(files.blob_names(m.mnt, 's'))
    with lock:
        acked = {h for h, s in state.items() if s == 'acked'}
    assert acked <= listed, f'acked saves lost: {sorted(acked - listed)}'
    assert listed <= acked | {h}, f'unknown blobs: {sorted(listed - acked - {h})}'
    if h in listed:
        assert read_file(m.path('s', h)) == huge, 'the blob cut by the kill reads back wrong'
    m.umount()
    stale = sorted(p.name for p in Path(m.data, 'stores', 's').iterdir()
                   if p.name.startswith('staging'))
    assert not stale, f'staging files left after a clean unmount: {stale}'
    fsck_clean(m.data, 'after a kill in close')
    counts.append(f'kill in the close of 48 MiB: staging files at the kill {staging_at_kill}, '
                  f'blob {"there" if h in listed else "not there"} after the remount')
    m.mount()
    metric('SIGKILL: ' + '; '.join(counts))


# --------------------------------------------------------------------------
# concurrent saves; a verified write by name


def test_concurrent_compressed_saves(make_mount):
    """Writers at once: the same large and small contents from several
    (one blob, one record each), distinct large ones (each compressed while
    the others are), with a barrier so that the commits overlap."""
    m = make_mount(extra_args=ZSTD)
    os.mkdir(m.path('s'))
    same_large = text_bytes(3 * MiB + 11, 'same large')
    same_small = text_bytes(200 * KiB, 'same small')
    jobs = [same_large] * 4 + [same_small] * 4 + \
        [text_bytes(4 * MiB + i, f'distinct {i}') for i in range(3)]
    barrier = threading.Barrier(len(jobs))
    errors = []

    def writer(i, data):
        try:
            fd = os.open(m.path('s', 'incoming', f'w{i}'), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                write_all(fd, data)
                barrier.wait(60)
            finally:
                os.close(fd)
        except (OSError, threading.BrokenBarrierError) as e:
            errors.append(f'writer {i}: {e!r}')

    threads = [threading.Thread(target=writer, args=(i, d)) for i, d in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), 'writers hang'
    assert not errors, errors
    contents = {sha256(d): d for d in jobs}
    assert set(files.blob_names(m.mnt, 's')) == set(contents)
    check_blobs_read_back(m, 's', contents, 'concurrent saves')
    m.umount()
    stale = sorted(p.name for p in Path(m.data, 'stores', 's').iterdir()
                   if p.name.startswith('staging'))
    assert not stale, f'staging files left after a clean unmount: {stale}'
    all_recs = [r for recs in store_records(m.data).values() for r in recs if r.kind == 1]
    per_hash = {}
    for r in all_recs:
        per_hash.setdefault(r.hash, []).append(r)
    dups = {h[:12]: rs for h, rs in per_hash.items() if len(rs) > 1}
    assert not dups, f'contents stored more than once: {dups}'
    assert all(rs[0].magic == 'REC3' for rs in per_hash.values()), per_hash
    fsck_clean(m.data, 'concurrent saves')


@pytest.mark.parametrize('size', [70000, 3 * MiB + 1], ids=['small', '3MiB'])
def test_verified_write_by_name_is_compressed(make_mount, size):
    m = make_mount(extra_args=ZSTD)
    os.mkdir(m.path('s'))
    data = text_bytes(size, f'by name {size}')
    h = sha256(data)
    write_file(m.path('s', h), data, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert read_blob_checked(m.path('s', h), data) == data
    # the wrong content under a name: EIO at close, nothing stored
    other = text_bytes(size, f'by name, the wrong one {size}')
    wrong_name = sha256(other + b'!')
    fd = os.open(m.path('s', wrong_name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, other)
    finally:
        expect_errno(errno.EIO, os.close, fd)
    assert set(files.blob_names(m.mnt, 's')) == {h}
    m.umount()
    assert blob_records(m.data)[h].magic == 'REC3'
    stale = sorted(p.name for p in Path(m.data, 'stores', 's').iterdir()
                   if p.name.startswith('staging'))
    assert not stale, f'staging files left after a clean unmount: {stale}'
    fsck_clean(m.data, 'verified writes')


# --------------------------------------------------------------------------
# damage


def _expect_eio_at_the_damage(fd, n, off, data):
    """pread of n bytes at off, over good bytes and then damaged ones: EIO,
    or (when the kernel split the request) a short read of the right bytes,
    after which a read from where it stopped gives EIO."""
    try:
        got = os.pread(fd, n, off)
    except OSError as e:
        assert e.errno == errno.EIO, e
        return
    assert 0 < len(got) < n, f'pread({n} bytes at {off}) over a damaged chunk gave {len(got)}'
    assert got == data[off:off + len(got)], f'pread({n} bytes at {off}) gave other bytes'
    expect_errno(errno.EIO, os.pread, fd, n - len(got), off + len(got))


def test_damaged_compressed_chunk_gives_eio(make_mount):
    m = make_mount(extra_args=ZSTD)
    os.mkdir(m.path('s'))
    contents = {
        'victim small': text_bytes(5 * CHUNK - 100, 'victim small'),
        'victim large': text_bytes(3 * MiB + 5, 'victim large'),
        # a REC3 whose chunks past the first megabyte are stored raw
        'victim raw chunk': text_bytes(MiB, 'victim raw') + random_bytes(MiB + 3, 'victim raw'),
        'other 1000': text_bytes(1000, 'other 1000'),
        'other 70000': text_bytes(70000, 'other 70000'),
        'other random': random_bytes(20000, 'other random'),
        'other large': text_bytes(2 * MiB, 'other large'),
    }
    hashes = {name: save(m, 's', d, name) for name, d in contents.items()}
    m.umount()
    recs = blob_records(m.data)
    flips = {}
    for name, chunk in (('victim small', 2), ('victim large', 20), ('victim raw chunk', 20)):
        rec = recs[hashes[name]]
        assert rec.magic == 'REC3', rec
        stored, _ = rec.chunks[chunk]
        if name == 'victim raw chunk':
            assert stored == CHUNK, f'{name}: chunk {chunk} is not stored raw ({stored} bytes)'
        else:
            assert stored < CHUNK, f'{name}: chunk {chunk} is not compressed ({stored} bytes)'
        at = rec.chunk_at[chunk] + stored // 2
        with open(rec.pack, 'r+b') as f:
            f.seek(at)
            b = f.read(1)
            f.seek(at)
            f.write(bytes([b[0] ^ 0x5A]))
        flips[name] = (rec, chunk, at)
    assert recs[hashes['victim small']].pack == recs[hashes['other 1000']].pack, \
        'expected the small victim in the shared pack'

    nlogs = len(m.log_files)
    m.mount()
    for name, (rec, chunk, _) in flips.items():
        data = contents[name]
        path = m.path('s', hashes[name])
        fd = open_direct(path)
        try:
            assert files.read_exact(fd, 4096, 0) == data[:4096], f'{name}: chunk 0'
            after = (chunk + 2) * CHUNK
            assert files.read_exact(fd, 1000, after) == data[after:after + 1000], \
                f'{name}: chunk {chunk + 2}'
            expect_errno(errno.EIO, os.pread, fd, 10, chunk * CHUNK + 100)
            _expect_eio_at_the_damage(fd, 2 * CHUNK, (chunk - 1) * CHUNK, data)
        finally:
            os.close(fd)
        # in order, through the page cache: the good bytes, then EIO
        expect_errno(errno.EIO, read_blob_checked, path, data)
        r = run_ok(f'cat "{path}" > /dev/null; echo "exit $?"', shell=True,
                   env={**os.environ, 'LC_ALL': 'C'})
        assert r.stdout.strip() != 'exit 0', f'{name}: cat of a damaged blob succeeded'
        assert 'Input/output error' in r.stderr, r.stderr
    for name, d in contents.items():
        if name not in flips:
            assert read_blob_checked(m.path('s', hashes[name]), d) == d, f'{name} reads wrong'
    log = ''.join(Path(p).read_text(errors='replace') for p in m.log_files[nlogs:])
    for name in flips:
        assert any(hashes[name] in line and 'chunk' in line for line in log.splitlines()), \
            f'no log line names the damaged blob {name} ({hashes[name]}):\n{log[-3000:]}'
    m.umount()

    r = fsck_datadir(m.data)
    assert r.returncode == 1, f'fsck exit {r.returncode}\n{r.stdout}{r.stderr}'
    for name, (rec, _, _) in flips.items():
        assert any(hashes[name] in line for line in r.stdout.splitlines()), \
            f'fsck does not name {name} ({hashes[name]}):\n{r.stdout}'
    for name in contents:
        if name not in flips:
            assert hashes[name] not in r.stdout, f'fsck names the intact blob {name}:\n{r.stdout}'
    r = fsck_datadir(m.data, repair=True)
    assert r.returncode in (0, 1), f'fsck --repair exit {r.returncode}\n{r.stdout}{r.stderr}'
    fsck_clean(m.data, 'after fsck --repair')
    m.mount()
    for name in flips:
        expect_errno(errno.ENOENT, os.stat, m.path('s', hashes[name]))
    check_blobs_read_back(m, 's', {hashes[n]: d for n, d in contents.items() if n not in flips},
                          'after fsck --repair')


@pytest.mark.parametrize('checkpoint', ['scanned', 'checkpointed'])
@pytest.mark.parametrize('region', ['header length', 'table stored size', 'table crc',
                                    'trailer'])
def test_damaged_compressed_record_frame(make_mount, region, checkpoint):
    """A REC3 in the middle of a shared pack, between REC3s and a REC2,
    with a byte of its header, chunk table or trailer flipped. With the
    checkpoint gone the mount scans the pack and must find the records
    after it (resync over a REC3 whose table lies); with it, the blob is
    still indexed. Either way: the victim gives EIO or is absent (EIO when
    checkpointed), never other bytes; every other blob reads exactly; fsck
    exits 1 naming it; after fsck --repair, fsck is clean and the others
    read."""
    m = make_mount(extra_args=ZSTD)
    os.mkdir(m.path('s'))
    names = ['before', 'victim', 'after raw', 'after']
    contents = {'before': text_bytes(70000, 'f before'),
                'victim': text_bytes(5 * CHUNK + 9, 'f victim'),
                'after raw': random_bytes(9000, 'f after raw'),
                'after': text_bytes(3 * CHUNK, 'f after')}
    hashes = {n: save(m, 's', contents[n], n) for n in names}
    m.umount()
    [pack] = pack_paths(m.data)
    recs = parse_pack(pack)
    assert [r.hash for r in recs] == [hashes[n] for n in names], recs
    assert [r.magic for r in recs] == ['REC3', 'REC3', 'REC2', 'REC3'], recs
    victim = recs[1]
    off = {'header length': victim.offset + 17,
           'table stored size': victim.offset + RECORD_HEADER_SIZE + 8 * 2 + 1,
           'table crc': victim.offset + RECORD_HEADER_SIZE + 8 * 3 + 5,
           'trailer': victim.end - RECORD_TRAILER_SIZE + 5}[region]
    with open(pack, 'r+b') as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x21]))
    checkpoint_file = Path(m.data, 'stores', 's', 'checkpoint')
    assert checkpoint_file.exists(), 'a clean unmount writes the index checkpoint'
    if checkpoint == 'scanned':
        checkpoint_file.unlink()
    m.mount()
    for n in names:
        path = m.path('s', hashes[n])
        if n != 'victim':
            assert read_blob_checked(path, contents[n]) == contents[n], f'{n} reads wrong'
            continue
        try:
            got = read_blob_checked(path, contents[n])
        except OSError as e:
            assert e.errno in (errno.EIO, errno.ENOENT), e
            if checkpoint == 'checkpointed':
                assert e.errno == errno.EIO, f'the checkpoint lists the blob: {e}'
        else:
            raise AssertionError(f'the damaged blob read back ({len(got)} bytes)')
    saved_after = save(m, 's', text_bytes(20000, 'saved after'), 'new')
    m.umount()
    r = fsck_datadir(m.data)
    assert r.returncode == 1, f'fsck exit {r.returncode}\n{r.stdout}{r.stderr}'
    assert hashes['victim'] in r.stdout or pack.name in r.stdout, r.stdout
    r = fsck_datadir(m.data, repair=True)
    assert r.returncode in (0, 1), f'fsck --repair exit {r.returncode}\n{r.stdout}{r.stderr}'
    fsck_clean(m.data, 'after fsck --repair')
    m.mount()
    others = {hashes[n]: contents[n] for n in names if n != 'victim'}
    others[saved_after] = text_bytes(20000, 'saved after')
    check_blobs_read_back(m, 's', others, 'after fsck --repair')


def _forge_a_chunk(make_mount, k=5):
    """A mount holding a large REC3 blob (2 MiB + 777 bytes of text) whose
    chunk k was replaced by another valid zstd frame of the same length
    (64 KiB of 'Z'), with its CRC, the table's CRC and the pack made to
    agree: no checksum below the blob's hash sees it; and another blob.
    Returns (mount, hash, data, forged data, other hash, other data), the
    daemon running on the forged pack (checkpoint removed: it knew the old
    pack size)."""
    assert crc32c(b'123456789') == 0xE3069283
    m = make_mount(extra_args=ZSTD)
    os.mkdir(m.path('s'))
    data = text_bytes(2 * MiB + 777, 'forged')
    other = text_bytes(MiB + 5, 'forged, the other')
    h = save(m, 's', data, 'victim')
    h_other = save(m, 's', other, 'other')
    m.umount()
    rec = blob_records(m.data)[h]
    assert rec.magic == 'REC3' and [r.hash for r in parse_pack(rec.pack)] == [h], rec
    stored, _ = rec.chunks[k]
    frame = zstd_rle_frame(ord('Z'), CHUNK)
    table_at = rec.offset + RECORD_HEADER_SIZE
    buf = bytearray(rec.pack.read_bytes())
    buf[rec.chunk_at[k]:rec.chunk_at[k] + stored] = frame
    struct.pack_into('<II', buf, table_at + 8 * k, len(frame), crc32c(frame))
    table = bytes(buf[table_at:table_at + 8 * rec.nchunks])
    trailer = rec.end - RECORD_TRAILER_SIZE + len(frame) - stored
    struct.pack_into('<I', buf, trailer + 4, crc32c(table))
    rec.pack.write_bytes(bytes(buf))
    assert parse_pack(rec.pack)[0].chunks[k] == (len(frame), crc32c(frame))
    Path(m.data, 'stores', 's', 'checkpoint').unlink()
    m.mount()
    forged = data[:k * CHUNK] + b'Z' * CHUNK + data[(k + 1) * CHUNK:]
    return m, h, data, forged, h_other, other


def test_forged_chunk_is_caught_by_the_blob_hash(make_mount, metric):
    """A chunk that decodes to other bytes of the right length, with every
    CRC agreeing (what a compressor or table bug would write): a read in
    order, one request at a time (O_DIRECT), stops with EIO before the last
    bytes (the forged chunk's bytes do come out: only the hash sees them);
    the other blob reads; fsck exits 1 naming the blob."""
    m, h, data, forged, h_other, other = _forge_a_chunk(make_mount)
    fd = os.open(m.path('s', h), os.O_RDONLY | os.O_DIRECT)
    got = bytearray()
    try:
        while True:
            piece = os.read(fd, 128 * KiB)
            if not piece:
                raise AssertionError(f'read all {len(got)} bytes of a blob that does not hash '
                                     f'to its name, without an error')
            got += piece
    except OSError as e:
        assert e.errno == errno.EIO, e
    finally:
        os.close(fd)
    assert bytes(got) == forged[:len(got)], 'bytes other than the forged chunk differ'
    assert len(got) < len(data), 'the last bytes came out although the hash does not match'
    assert read_blob_checked(m.path('s', h_other), other) == other
    m.umount()
    r = fsck_datadir(m.data)
    assert r.returncode == 1, f'fsck exit {r.returncode}\n{r.stdout}{r.stderr}'
    assert any(h in line for line in r.stdout.splitlines()), r.stdout
    assert h_other not in r.stdout, r.stdout
    metric(f'forged chunk: a read in order stopped with EIO after {len(got)} of '
           f'{len(data)} bytes; fsck: {[x for x in r.stdout.splitlines() if h in x][0][:160]}')


def test_forged_chunk_read_through_the_page_cache_fails_every_time(make_mount):
    """Ordinary tools read a blob through the page cache: `sha256sum`, then
    `sha256sum` again, must each fail (EIO), never print a hash that is not
    the blob's name."""
    m, h, data, forged, h_other, other = _forge_a_chunk(make_mount)
    env = {**os.environ, 'LC_ALL': 'C'}
    for attempt in (1, 2):
        r = run(['sha256sum', m.path('s', h)], text=True, env=env)
        assert r.returncode != 0 and 'Input/output error' in r.stderr, (
            f'sha256sum #{attempt} of a blob that does not hash to its name: exit '
            f'{r.returncode}, {r.stdout.split()[:1]} (name {h})')


# --------------------------------------------------------------------------
# the option


BAD_VALUES = ['bogus', 'zstd:0', 'zstd:20', 'zstd:', 'zstd:abc', 'zstd:3x', 'zstdx', 'gzip',
              'ZSTD', 'zstd:-1', '']


@pytest.mark.parametrize('value', BAD_VALUES, ids=lambda v: v or 'empty')
def test_bad_compress_values_are_refused(blobfs_bin, tmp_path, value):
    data, mnt = tmp_path / 'data', tmp_path / 'mnt'
    data.mkdir()
    mnt.mkdir()
    r = run([blobfs_bin, '-f', '-o', f'compress={value}', str(data), str(mnt)],
            text=True, timeout=30)
    assert r.returncode == 2, f'compress={value}: exit {r.returncode}\n{r.stderr}'
    assert f'bad value in -o compress={value}' in r.stderr, r.stderr
    assert 'zstd[:LEVEL]' in r.stderr, r.stderr
    assert not mounts_under(tmp_path), 'a mount was left behind'
    assert os.listdir(data) == [], 'the data directory was set up anyway'


def test_bad_compress_level_is_refused_when_daemonized(daemon_runner, tmp_path):
    data, mnt = tmp_path / 'data', tmp_path / 'mnt'
    data.mkdir()
    mnt.mkdir()
    for value in ('zstd:20', 'bogus'):
        rc, out, err = daemon_runner.run(['-o', f'compress={value}', data, mnt], mnt)
        assert rc == 2, f'compress={value}, daemonized: exit {rc}\n{out}{err}'
        assert f'bad value in -o compress={value}' in err, err
        assert not is_mounted(os.path.realpath(mnt)), 'a mount was left behind'


@pytest.mark.parametrize('value', ['zstd', 'zstd:1', 'zstd:19', 'none'])
def test_good_compress_values_mount(make_mount, value):
    m = make_mount(extra_args=['-o', f'compress={value}'])
    os.mkdir(m.path('s'))
    d = text_bytes(3 * CHUNK + 1, value)
    h = save(m, 's', d, 'f')
    assert read_file(m.path('s', h)) == d
    m.umount()
    assert blob_records(m.data)[h].magic == ('REC2' if value == 'none' else 'REC3')
