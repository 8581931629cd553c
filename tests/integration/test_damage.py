"""Damaged packs: bytes flipped in record headers, data, chunk tables,
trailers, pack headers and the durable marker; packs truncated at random
points; garbage appended.

The contract under test: a read gives the exact original bytes or fails with
EIO, never different bytes; damage in one record never makes other blobs
unreadable; at mount a torn tail is cut off (the cut bytes kept in
DATADIR/quarantine/<store>/) and damage in the middle is skipped and
reported; `blobfs fsck` reports what damage remains (exit 1, a line naming
the blob's hash or the damaged offset); after `blobfs fsck --repair`,
`blobfs fsck` exits 0 and every blob is exact or absent.

BLOBFS_DAMAGE_ROUNDS (default 12) sets the number of random rounds,
BLOBFS_DAMAGE_SEED the seed of the random damage.
"""

import errno
import os
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from blobfs_test import files
from blobfs_test.common import env_int
from blobfs_test.files import expect_errno, read_blob_checked, save
from blobfs_test.mounting import fsck_datadir
from blobfs_test.packs import MARKER_NAME, PACK_HEADER_SIZE, crc32c, pack_files, parse_store

KiB = 1 << 10
MiB = 1 << 20

ROUNDS = env_int('BLOBFS_DAMAGE_ROUNDS', 12)
STORE = 'dmg'


# --------------------------------------------------------------------------
# building the store


def _build_store(m, rng):
    """Saves a mix of blobs with small packs, deletes a few (so that there
    are tombstones, but no pack gets more than ~35% dead and none is worth
    compacting), unmounts. Returns (live {hex: bytes}, deleted {hex: bytes})."""
    os.mkdir(m.path(STORE))
    sizes = [0, 1, 100, 4095, 4096, 65535, 65536, 65537, 131071, 131072, 131073,
             3 * 65536 + 5, 200000, 250000]
    sizes += [rng.randint(1, 120 * KiB) for _ in range(24)]
    sizes += [MiB, MiB + 65537, MiB + MiB // 2]          # each in a pack of its own
    rng.shuffle(sizes)
    blobs = {}
    for i, size in enumerate(sizes):
        data = rng.randbytes(size)
        blobs[save(m.mnt, STORE, data, name=f'b{i}')] = data
    m.umount()
    # choose deletions with the records in view
    records = parse_store(m.data, STORE)
    to_delete = []
    large_deleted = False
    for pack, recs in records.items():
        size = pack.stat().st_size
        small = [r for r in recs if r.is_blob and 0 < r.end - r.offset < 0.35 * size]
        if len(recs) >= 3 and small:
            to_delete.append(rng.choice(small).hash)
        elif len(recs) == 1 and recs[0].length >= MiB and not large_deleted:
            to_delete.append(recs[0].hash)          # a large blob: its pack goes at once
            large_deleted = True
        if len(to_delete) >= 5:
            break
    m.mount()
    for h in to_delete:
        os.unlink(m.path(STORE, h))
    m.umount()
    deleted = {h: blobs.pop(h) for h in to_delete}
    return blobs, deleted


# --------------------------------------------------------------------------
# damage


class Damage:
    """Damage applied to a copy of a pristine DATADIR, and what it touched."""

    def __init__(self):
        self.actions = []          # human-readable, for failure messages
        self.bytes_flipped = 0

    def __str__(self):
        return '; '.join(self.actions)


def _flip(path, offset, rng, count=1):
    """XOR `count` bytes starting at offset with random non-zero values."""
    with open(path, 'r+b') as f:
        f.seek(offset)
        old = f.read(count)
        new = bytes(b ^ rng.randrange(1, 256) for b in old)
        f.seek(offset)
        f.write(new)
    return len(old)


def _apply_random_damage(rng, datadir, records, damage):
    """One random damage to datadir (whose packs were `records` before)."""
    packs = [p for p in records]
    kind = rng.choice(['header', 'data', 'data', 'table', 'trailer', 'pack header', 'marker',
                       'other store file', 'anywhere', 'truncate', 'truncate', 'garbage'])
    live_path = lambda p: Path(datadir) / p.relative_to(p.parents[2])   # noqa: E731
    if kind in ('header', 'data', 'table', 'trailer'):
        candidates = [r for recs in records.values() for r in recs
                      if kind == 'header' or kind == 'trailer' or r.length > 0]
        rec = rng.choice(candidates)
        start, end = {
            'header': (rec.offset, rec.data_offset),
            'data': (rec.data_offset, rec.table_offset),
            'table': (rec.table_offset, rec.trailer_offset),
            'trailer': (rec.trailer_offset, rec.end),
        }[kind]
        off = rng.randrange(start, end)
        count = 1 if rng.random() < 0.7 else rng.randint(2, 8)
        count = min(count, end - off)
        n = _flip(live_path(rec.pack), off, rng, count)
        damage.bytes_flipped += n
        damage.actions.append(f'flipped {n} byte(s) of the {kind} of {rec} at {off}')
    elif kind == 'pack header':
        pack = rng.choice(packs)
        off = rng.randrange(PACK_HEADER_SIZE)
        damage.bytes_flipped += _flip(live_path(pack), off, rng)
        damage.actions.append(f'flipped byte {off} of the pack header of {pack.name}')
    elif kind in ('marker', 'other store file'):
        # the durable marker, or any other file the daemon keeps next to the
        # packs (an index checkpoint, say): none of them holds blob bytes
        sdir = Path(datadir, 'stores', STORE)
        others = sorted(p for p in sdir.iterdir() if p.is_file() and p.stat().st_size and
                        not p.name.startswith('pack-') and p.name != MARKER_NAME)
        target = rng.choice(others) if kind != 'marker' and others else sdir / MARKER_NAME
        off = rng.randrange(target.stat().st_size)
        damage.bytes_flipped += _flip(target, off, rng)
        damage.actions.append(f'flipped byte {off} of {target.name}')
    elif kind == 'anywhere':
        pack = rng.choice(packs)
        size = live_path(pack).stat().st_size
        if size == 0:       # emptied by an earlier damage of this round
            return
        off = rng.randrange(size)
        damage.bytes_flipped += _flip(live_path(pack), off, rng)
        damage.actions.append(f'flipped byte {off} of {pack.name} (size {size})')
    elif kind == 'truncate':
        pack = rng.choice(packs)
        size = live_path(pack).stat().st_size
        if size == 0:
            return
        at = rng.randrange(PACK_HEADER_SIZE, size) if size > PACK_HEADER_SIZE and \
            rng.random() < 0.9 else rng.randrange(size)
        os.truncate(live_path(pack), at)
        damage.actions.append(f'truncated {pack.name} from {size} to {at} bytes')
    else:
        pack = rng.choice(packs)
        n = rng.randint(1, 3000)
        junk = rng.randbytes(n)
        if rng.random() < 0.3:
            junk = b'REC1' + junk       # starts like a record header
        with open(live_path(pack), 'ab') as f:
            f.write(junk)
        damage.actions.append(f'appended {len(junk)} bytes of garbage to {pack.name}')


def _differing_offsets(old, new):
    """Offsets (within both lengths) where two byte strings differ."""
    n = min(len(old), len(new))
    diff = set()
    for b in range(0, n, 4096):
        if old[b:b + 4096] != new[b:b + 4096]:
            diff.update(i for i in range(b, min(b + 4096, n)) if old[i] != new[i])
    return diff


class Assessment:
    """Which records a damage touched (found by comparing the damaged packs
    with the pristine ones), and later which of the damage is still in the
    pack files."""

    def __init__(self, pristine, current, records):
        self.pristine = Path(pristine)
        self.current = Path(current)
        self.records = records
        self.touched_hashes = set()     # hashes of touched records (blob or tombstone)
        self.diff = {}                  # pack name -> damaged offsets (within both lengths)
        for pack, recs in records.items():
            old = self._old(pack)
            new = self._now(pack)
            diff = _differing_offsets(old, new or b'')
            self.diff[pack.name] = diff
            header_hit = new is None or len(new) < PACK_HEADER_SIZE or any(
                o < PACK_HEADER_SIZE for o in diff)
            for r in recs:
                if header_hit or r.end > len(new) or any(r.offset <= o < r.end for o in diff):
                    self.touched_hashes.add(r.hash)

    def _rel(self, pack):
        return pack.relative_to(pack.parents[2])

    def _old(self, pack):
        return (self.pristine / self._rel(pack)).read_bytes()

    def _now(self, pack):
        try:
            return (self.current / self._rel(pack)).read_bytes()
        except FileNotFoundError:
            return None

    def damage_in_place(self):
        """What of the damage is still in the pack files now (after a mount
        that may have cut torn tails): [(record or None, pack name, why)]."""
        out = []
        for pack, recs in self.records.items():
            old, cur = self._old(pack), self._now(pack)
            if cur is None:
                continue
            still = {o for o in self.diff[pack.name] if o < len(cur) and cur[o] != old[o]}
            if len(cur) < PACK_HEADER_SIZE or any(o < PACK_HEADER_SIZE for o in still):
                out.append((None, pack.name, 'pack header'))
            for r in recs:
                if any(r.offset <= o < r.end for o in still):
                    out.append((r, pack.name, 'flipped bytes'))
            if len(cur) > len(old):
                out.append((None, pack.name, f'{len(cur) - len(old)} bytes after the last record'))
            elif PACK_HEADER_SIZE < len(cur) < len(old) and len(cur) not in {r.end for r in recs}:
                torn = next(r for r in recs if r.offset < len(cur) < r.end)
                out.append((torn, pack.name, f'record cut short at {len(cur)}'))
        return out


def _mentions(lines, pack_name, rec):
    """True if a line of fsck names the record's hash, or names its pack and
    an offset inside the record (or a damaged range that covers it)."""
    for line in lines:
        if rec is not None and rec.hash in line:
            return True
        if pack_name not in line and pack_name.removeprefix('pack-').removesuffix('.pack') \
                not in line:
            continue
        if rec is None:
            return True
        nums = [int(x) for x in re.findall(r'(?<![0-9a-f])\d+(?![0-9a-f])', line)]
        if any(rec.offset <= x < rec.end for x in nums):
            return True
        for a in nums:
            for b in nums:
                if a <= rec.offset < a + b or a <= rec.offset < b:
                    return True
    return False


# --------------------------------------------------------------------------
# checks through the mount


def _where_is(records, h):
    return ', '.join(f'{"blob" if r.is_blob else "tombstone"} record at {r.pack.name}@{r.offset}'
                     for recs in records.values() for r in recs if r.hash == h) or 'no record'


def _check_blobs(m, live, deleted, touched_hashes, after_repair, where, records):
    """Every live blob: exact; or, if its record was touched, EIO (not after
    a repair) or absent. Every deleted blob: absent, unless its tombstone
    (or its own record) was touched, then exact or absent. Returns a dict of
    outcome counts."""
    outcome = {'exact': 0, 'EIO': 0, 'absent': 0, 'resurrected': 0}
    listed = set(files.blob_names(m.mnt, STORE))
    unknown = listed - set(live) - set(deleted)
    assert not unknown, f'{where}: names that were never saved are listed: {sorted(unknown)}'
    for h, data in list(live.items()) + list(deleted.items()):
        is_deleted = h in deleted
        touched = h in touched_hashes
        try:
            st = os.stat(m.path(STORE, h))
        except OSError as e:
            assert e.errno == errno.ENOENT, f'{where}: stat {h}: {e}'
            assert h not in listed, f'{where}: {h} is listed but stat gives ENOENT'
            assert touched or is_deleted, (
                f'{where}: blob {h} ({len(data)} bytes, {_where_is(records, h)}), whose '
                f'record was not touched, is gone')
            outcome['absent'] += 1
            continue
        assert not is_deleted or touched, (
            f'{where}: deleted blob {h} is back although its tombstone was not touched')
        assert h in listed, f'{where}: {h} can be stat()ed but is not listed'
        assert st.st_size == len(data), f'{where}: {h}: size {st.st_size}, saved {len(data)}'
        try:
            got = read_blob_checked(m.path(STORE, h), expected=data)
        except OSError as e:
            assert e.errno == errno.EIO, f'{where}: reading {h}: {e} (expected EIO at worst)'
            assert touched and not after_repair, (
                f'{where}: reading {h} ({len(data)} bytes) gives EIO although '
                f'{"fsck --repair ran" if after_repair else "its record was not touched"}')
            outcome['EIO'] += 1
            continue
        assert got == data, f'{where}: {h}: read {len(got)} bytes, saved {len(data)}'
        outcome['resurrected' if is_deleted else 'exact'] += 1
    return outcome


def _log_since(m, nlogs):
    return ''.join(Path(f).read_text(errors='replace') for f in m.log_files[nlogs:])


def _check_quarantine(datadir, before, after, where):
    """Each pack that the mount made shorter had its cut bytes copied into
    DATADIR/quarantine/<store>/ first."""
    qdir = Path(datadir, 'quarantine', STORE)
    kept = [p.read_bytes() for p in qdir.iterdir()] if qdir.is_dir() else []
    for name, old in before.items():
        new = after.get(name)
        if new is None or len(new) >= len(old):
            continue
        assert old[:len(new)] == new, f'{where}: {name} was changed, not just cut'
        cut = old[len(new):]
        assert any(cut == q or (cut in q) for q in kept), (
            f'{where}: {name} was cut from {len(old)} to {len(new)} bytes, but the '
            f'{len(cut)} bytes cut are not in {qdir} ({len(kept)} files there)')


def _pack_contents(datadir):
    return {p.name: p.read_bytes() for p in pack_files(datadir, STORE)}


# --------------------------------------------------------------------------
# the tests


def test_damage_rounds(make_mount, tmp_path, metric):
    # A fixed default keeps CI repeatable; set the variable to explore.
    seed = env_int('BLOBFS_DAMAGE_SEED', 20261121)
    rng = random.Random(seed)
    m = make_mount(extra_args=['-o', 'pack_size=256K'])
    live, deleted = _build_store(m, rng)
    records = parse_store(m.data, STORE)
    assert len(records) >= 6, f'expected several packs, got {len(records)}'
    pristine = tmp_path / 'pristine'
    shutil.copytree(m.data, pristine)
    totals = {'bytes flipped': 0, 'damages': 0, 'fsck reports': 0, 'repairs': 0,
              'exact': 0, 'EIO': 0, 'absent': 0, 'resurrected': 0, 'tails cut': 0}
    for rnd in range(1, ROUNDS + 1):
        shutil.rmtree(m.data)
        shutil.copytree(pristine, m.data)
        damage = Damage()
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            _apply_random_damage(rng, m.data, records, damage)
        totals['bytes flipped'] += damage.bytes_flipped
        totals['damages'] += len(damage.actions)
        where = f'round {rnd} (seed {seed}): {damage}'
        assess = Assessment(pristine, m.data, records)
        before = _pack_contents(m.data)

        # 1. mount the damaged store and read everything
        nlogs = len(m.log_files)
        m.mount()
        try:
            out = _check_blobs(m, live, deleted, assess.touched_hashes, False, where, records)
        except AssertionError as e:
            raise AssertionError(
                f'{e}\n--- daemon log of this round ---\n{_log_since(m, nlogs)}') from None
        for k, v in out.items():
            totals[k] += v
        m.umount()
        after = _pack_contents(m.data)
        _check_quarantine(m.data, before, after, where)
        totals['tails cut'] += sum(1 for n in before if n in after and
                                   len(after[n]) < len(before[n]))

        # 2. fsck reports what is left of the damage
        left = assess.damage_in_place()
        r = fsck_datadir(m.data)
        report = r.stdout.splitlines()
        if left:
            assert r.returncode == 1, (f'{where}: damage is still on disk ({left}) but '
                                       f'fsck exits {r.returncode}\n{r.stdout}{r.stderr}')
            for rec, pack_name, why in left:
                assert _mentions(report, pack_name, rec), (
                    f'{where}: fsck does not report the damage of {rec or pack_name} '
                    f'({why})\n{r.stdout}')
            totals['fsck reports'] += 1
        else:
            assert r.returncode == 0, (f'{where}: nothing damaged is left on disk after the '
                                       f'mount, yet fsck exits {r.returncode}\n'
                                       f'{r.stdout}{r.stderr}')

        # 3. repair, then fsck is clean and every blob is exact or absent
        r = fsck_datadir(m.data, repair=True)
        assert r.returncode in (0, 1), f'{where}: fsck --repair exits {r.returncode}\n' \
                                       f'{r.stdout}{r.stderr}'
        totals['repairs'] += 1
        r = fsck_datadir(m.data)
        assert r.returncode == 0, (f'{where}: fsck after fsck --repair exits {r.returncode}\n'
                                   f'{r.stdout}{r.stderr}')
        m.mount()
        try:
            _check_blobs(m, live, deleted, assess.touched_hashes, True, where + ' (repaired)',
                         records)
        except AssertionError as e:
            raise AssertionError(
                f'{e}\n--- daemon log of this round ---\n{_log_since(m, nlogs)}') from None
        m.umount()
    metric(f'{ROUNDS} rounds (seed {seed}) on {len(live)} blobs + {len(deleted)} deleted in '
           f'{len(records)} packs: ' + ', '.join(f'{k} {v}' for k, v in totals.items()))


def _small_store(m, sizes, store='photos'):
    os.mkdir(m.path(store))
    blobs = {}
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        blobs[save(m.mnt, store, data, name=str(i))] = data
    return blobs


def _record_of(records, h):
    return next(r for recs in records.values() for r in recs if r.hash == h and r.is_blob)


@pytest.mark.parametrize('size', [2 * 65536 * 16 + 777, 24 * 65536 * 16 + 777],
                         ids=['2MiB-hashed-inline', '24MiB-hashed-ahead'])
def test_resealed_chunk_is_caught_by_the_blob_hash(make_mount, size):
    """A chunk of a raw record changed and its CRC32C, the table's and the
    trailer's made to agree (what only the SHA-256 can see): a read in order,
    one request at a time (O_DIRECT), stops with EIO before the last bytes,
    and `sha256sum` (through the page cache, the kernel's readahead) fails
    twice. 24 MiB is past the size where a thread hashes ahead of the reads
    (local_ahead.c), 2 MiB below it."""
    m = make_mount()
    os.mkdir(m.path('s'))
    data = random.Random(size).randbytes(size)
    h = save(m.mnt, 's', data, 'victim')
    m.umount()
    rec = _record_of(parse_store(m.data, 's'), h)
    k = (size // 65536) // 2
    buf = bytearray(rec.pack.read_bytes())
    at = rec.data_offset + k * 65536
    buf[at + 100] ^= 0x20
    struct.pack_into('<I', buf, rec.table_offset + 4 * k, crc32c(buf[at:at + 65536]))
    struct.pack_into('<I', buf, rec.trailer_offset + 4,
                     crc32c(buf[rec.table_offset:rec.trailer_offset]))
    rec.pack.write_bytes(bytes(buf))
    Path(m.data, 'stores', 's', 'checkpoint').unlink(missing_ok=True)
    m.mount()
    fd = os.open(m.path('s', h), os.O_RDONLY | os.O_DIRECT)
    got = 0
    try:
        while True:
            piece = os.read(fd, 128 * 1024)
            assert piece, f'read all {got} bytes of a blob that does not hash to its name'
            got += len(piece)
    except OSError as e:
        assert e.errno == errno.EIO, e
    finally:
        os.close(fd)
    assert got < size, 'the last bytes came out although the hash does not match'
    m.umount()
    m.mount()
    for attempt in (1, 2):
        r = subprocess.run(['sha256sum', m.path('s', h)], capture_output=True, text=True,
                           env={**os.environ, 'LC_ALL': 'C'})
        assert r.returncode != 0 and 'Input/output error' in r.stderr, (
            f'sha256sum #{attempt}: exit {r.returncode}, {r.stdout.split()[:1]} (name {h})')


def _reseal(rec, k, mask=0x20):
    """Changes a byte of (whole) chunk k of raw record rec in its pack, in
    place (the same file, as something outside blobfs would), and makes the
    chunk's CRC32C, the table's and the trailer's agree again."""
    with open(rec.pack, 'r+b') as f:
        at = rec.data_offset + k * 65536
        f.seek(at)
        chunk = bytearray(f.read(65536))
        chunk[100] ^= mask
        f.seek(at)
        f.write(chunk)
        f.seek(rec.table_offset)
        table = bytearray(f.read(rec.trailer_offset - rec.table_offset))
        struct.pack_into('<I', table, 4 * k, crc32c(bytes(chunk)))
        f.seek(rec.table_offset)
        f.write(table)
        f.seek(rec.trailer_offset + 4)
        f.write(struct.pack('<I', crc32c(bytes(table))))


def _read_direct(path):
    """The whole file read in order with O_DIRECT, past the kernel's page
    cache: every read reaches the daemon. Returns the bytes or the errno."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as e:
        return e.errno
    pieces = []
    try:
        while piece := os.read(fd, 1 << 20):
            pieces.append(piece)
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)
    return b''.join(pieces)


@pytest.mark.parametrize('rehash', [False, True], ids=['default', 'rehash'])
def test_a_large_blob_is_hashed_whole_once_per_mount(make_mount, rehash):
    """A blob of 1 MiB or more read whole and found to hash to its name is
    remembered until the unmount (README promise 4): later reads check each
    chunk's CRC32C, not the whole SHA-256 again; -o rehash hashes every whole
    read. Shown by what only the SHA-256 sees: a chunk changed in place in
    the pack with its CRCs re-sealed after the first read reads as changed
    while the mount lasts, and with rehash is refused with EIO; after a
    remount it is refused either way. A flipped byte whose CRC was not
    re-sealed is refused in both modes. 24 MiB: hashed ahead on a thread."""
    size = 24 * MiB + 777
    m = make_mount(extra_args=['-o', 'rehash'] if rehash else [])
    os.mkdir(m.path('s'))
    data = random.Random(size).randbytes(size)
    h = save(m.mnt, 's', data, 'big')
    m.umount()
    rec = _record_of(parse_store(m.data, 's'), h)
    m.mount()
    assert _read_direct(m.path('s', h)) == data
    with open(rec.pack, 'r+b') as f:           # CRC not re-sealed: refused always
        f.seek(rec.data_offset + 300 * 65536 + 5)
        b = f.read(1)
        f.seek(rec.data_offset + 300 * 65536 + 5)
        f.write(bytes([b[0] ^ 1]))
    assert _read_direct(m.path('s', h)) == errno.EIO
    assert 'chunk 300 fails its checksum' in m.log()
    with open(rec.pack, 'r+b') as f:
        f.seek(rec.data_offset + 300 * 65536 + 5)
        f.write(b)
    assert _read_direct(m.path('s', h)) == data
    k = 200
    _reseal(rec, k)
    changed = bytearray(data)
    changed[k * 65536 + 100] ^= 0x20
    got = _read_direct(m.path('s', h))
    if rehash:
        assert got == errno.EIO, 'with -o rehash, a re-sealed chunk passed a second whole read'
    else:
        assert got == bytes(changed), 'a whole read after the first was not served from CRCs alone'
    m.umount()
    m.mount()
    assert _read_direct(m.path('s', h)) == errno.EIO, 'the remount did not hash the blob afresh'
    assert 'does not hash to the blob' in m.log(), 'no log line'


def test_flipped_data_byte_gives_eio_and_a_log_line(make_mount):
    """One flipped byte in chunk 2 of a 5-chunk blob: reading it gives EIO,
    the log names store, blob, pack and offset, the blob's other chunks and
    the other blobs of the pack read fine; fsck names the blob; after
    fsck --repair the blob is gone and everything else is there."""
    m = make_mount()
    sizes = [1000, 5 * 65536 - 100, 70000, 0, 3000]
    blobs = _small_store(m, sizes)
    victim = next(h for h, d in blobs.items() if len(d) == 5 * 65536 - 100)
    m.umount()
    records = parse_store(m.data, 'photos')
    rec = _record_of(records, victim)
    assert len(records[rec.pack]) == len(sizes), 'expected all blobs in one pack'
    flip_at = rec.data_offset + 2 * 65536 + 1234
    _flip(rec.pack, flip_at, random.Random(1))
    nlogs = len(m.log_files)
    m.mount()
    data = blobs[victim]
    fd = os.open(m.path('photos', victim), os.O_RDONLY)
    try:
        assert files.read_exact(fd, 4096, 0) == data[:4096]
        assert files.read_exact(fd, 4096, 4 * 65536) == data[4 * 65536:4 * 65536 + 4096]
        expect_errno(errno.EIO, os.pread, fd, 4096, 2 * 65536)
    finally:
        os.close(fd)
    expect_errno(errno.EIO, read_blob_checked, m.path('photos', victim), data)
    for h, d in blobs.items():
        if h != victim:
            assert read_blob_checked(m.path('photos', h), d) == d
    log = _log_since(m, nlogs)
    pack_id = rec.pack.name[len('pack-'):-len('.pack')]
    lines = [line for line in log.splitlines()
             if 'photos' in line and victim in line and pack_id in line]
    assert lines, f'no log line names store photos, blob {victim} and pack {pack_id}:\n{log}'
    assert any(rec.offset <= int(x) <= flip_at
               for line in lines for x in re.findall(r'offset (\d+)', line)), (
        f'no log line names an offset within the damaged record '
        f'({rec.offset}..{flip_at}):\n' + '\n'.join(lines))
    m.umount()
    r = fsck_datadir(m.data)
    assert r.returncode == 1, r.stdout + r.stderr
    assert any(victim in line and rec.pack.name in line for line in r.stdout.splitlines()), \
        r.stdout
    r = fsck_datadir(m.data, repair=True)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert list(Path(m.data, 'quarantine', 'photos').iterdir()), \
        'fsck --repair kept no copy of the damaged pack in quarantine/photos'
    r = fsck_datadir(m.data)
    assert r.returncode == 0, r.stdout + r.stderr
    m.mount()
    expect_errno(errno.ENOENT, os.stat, m.path('photos', victim))
    assert sorted(files.blob_names(m.mnt, 'photos')) == sorted(h for h in blobs if h != victim)
    for h, d in blobs.items():
        if h != victim:
            assert read_blob_checked(m.path('photos', h), d) == d


@pytest.mark.parametrize('checkpoint', ['scanned', 'checkpointed'])
@pytest.mark.parametrize('region', ['header', 'chunk table', 'trailer'])
def test_damaged_record_in_the_middle_is_skipped_and_reported(make_mount, region, checkpoint):
    """Without an index checkpoint the mount scans the pack and reports the
    damage. With one (written at the last clean unmount), the mount reads
    only the checkpoint and what follows it, as documented: the damage is
    then reported when the damaged blob is read (EIO and a log line naming
    the pack), and by fsck. Either way every other blob reads exactly."""
    m = make_mount()
    blobs = _small_store(m, [5000, 70000, 6000, 7000])
    m.umount()
    records = parse_store(m.data, 'photos')
    recs = records[pack_files(m.data, 'photos')[0]]
    victim = recs[1]
    off = {'header': victim.offset + 40, 'chunk table': victim.table_offset + 1,
           'trailer': victim.trailer_offset + 9}[region]
    _flip(victim.pack, off, random.Random(2))
    checkpoint_file = os.path.join(m.data, 'stores', 'photos', 'checkpoint')
    assert os.path.exists(checkpoint_file), 'a clean unmount writes the index checkpoint'
    if checkpoint == 'scanned':
        os.unlink(checkpoint_file)
    nlogs = len(m.log_files)
    m.mount()
    if checkpoint == 'scanned':
        log = _log_since(m, nlogs)
        assert any(victim.pack.name in line for line in log.splitlines()), \
            f'the mount does not report the damage in {victim.pack.name}:\n{log}'
    for h, d in blobs.items():
        if h == victim.hash:
            try:
                assert read_blob_checked(m.path('photos', h), d) == d
            except OSError as e:
                assert e.errno in (errno.ENOENT, errno.EIO), e
                if checkpoint == 'checkpointed':
                    assert e.errno == errno.EIO, 'the checkpoint still lists the blob'
        else:
            assert read_blob_checked(m.path('photos', h), d) == d
    if checkpoint == 'checkpointed':
        log = _log_since(m, nlogs)
        pack_id = victim.pack.name[len('pack-'):-len('.pack')]
        assert any((victim.pack.name in line or f'pack {pack_id}' in line) and 'photos' in line
                   for line in log.splitlines()), \
            f'reading the damaged blob does not report the damage in {victim.pack.name}:\n{log}'
    # the store keeps working: a new save, a delete
    extra = save(m.mnt, 'photos', b'saved after the damage')
    m.umount()
    r = fsck_datadir(m.data)
    assert r.returncode == 1, r.stdout + r.stderr
    assert _mentions(r.stdout.splitlines(), victim.pack.name, victim), r.stdout
    r = fsck_datadir(m.data, repair=True)
    r = fsck_datadir(m.data)
    assert r.returncode == 0, r.stdout + r.stderr
    m.mount()
    for h, d in blobs.items():
        if h != victim.hash:
            assert read_blob_checked(m.path('photos', h), d) == d
    assert files.read_file(m.path('photos', extra)) == b'saved after the damage'


@pytest.mark.parametrize('how', ['cut in the last record', 'cut in a record header',
                                 'garbage appended', 'record-like garbage appended'])
def test_torn_tail_is_cut_and_kept_in_quarantine(make_mount, how):
    m = make_mount()
    blobs = _small_store(m, [5000, 70000, 6000, 130000])
    m.umount()
    pack = pack_files(m.data, 'photos')[0]
    recs = parse_store(m.data, 'photos')[pack]
    last = recs[-1]
    size = pack.stat().st_size
    if how == 'cut in the last record':
        os.truncate(pack, last.data_offset + 70000)
        lost = {last.hash}
    elif how == 'cut in a record header':
        os.truncate(pack, last.offset + 10)
        lost = {last.hash}
    else:
        junk = os.urandom(777)
        if how.startswith('record-like'):
            junk = b'REC1\x01\x10' + junk
        with open(pack, 'ab') as f:
            f.write(junk)
        lost = set()
    damaged = pack.read_bytes()
    good_end = last.offset if lost else size
    nlogs = len(m.log_files)
    m.mount()
    log = _log_since(m, nlogs)
    assert any(pack.name in line and 'cut' in line for line in log.splitlines()), log
    for h, d in blobs.items():
        if h in lost:
            expect_errno(errno.ENOENT, os.stat, m.path('photos', h))
        else:
            assert read_blob_checked(m.path('photos', h), d) == d
    # appending after the cut gives a clean pack
    extra = save(m.mnt, 'photos', b'appended after the cut')
    m.umount()
    assert pack.read_bytes()[:good_end] == damaged[:good_end]
    qfiles = list(Path(m.data, 'quarantine', 'photos').iterdir())
    assert any(q.read_bytes() == damaged[good_end:] for q in qfiles), (
        f'the {len(damaged) - good_end} bytes cut are not in quarantine: '
        f'{[(q.name, q.stat().st_size) for q in qfiles]}')
    r = fsck_datadir(m.data)
    assert r.returncode == 0, r.stdout + r.stderr
    m.mount()
    assert files.read_file(m.path('photos', extra)) == b'appended after the cut'
    assert sorted(files.blob_names(m.mnt, 'photos')) == sorted((set(blobs) - lost) | {extra})


@pytest.mark.parametrize('region', ['data', 'header', 'trailer'])
@pytest.mark.parametrize('marker', ['flipped', 'missing', 'truncated'])
def test_unreadable_marker_and_one_bad_record_lose_only_that_blob(make_mount, marker, region):
    """A durable marker that cannot be read makes the mount check every
    record. One damaged record in the middle of a pack must then cost that
    blob only: the intact records after it in the same pack stay readable
    (damage in one record never makes other blobs unreadable).

    Files the daemon may keep next to the packs besides the marker (an
    index checkpoint) are removed, so that the mount reads the packs, which
    are the source of truth (docs/FORMAT.md)."""
    m = make_mount()
    blobs = _small_store(m, [5000, 70000, 6000, 7000, 8000])
    m.umount()
    records = parse_store(m.data, 'photos')
    recs = records[pack_files(m.data, 'photos')[0]]
    assert len(recs) == 5
    victim = recs[1]
    off = {'data': victim.data_offset + 100, 'header': victim.offset + 30,
           'trailer': victim.trailer_offset + 2}[region]
    _flip(victim.pack, off, random.Random(3))
    mpath = Path(m.data, 'stores', 'photos', MARKER_NAME)
    if marker == 'flipped':
        _flip(mpath, 9, random.Random(4))
    elif marker == 'missing':
        mpath.unlink()
    else:
        os.truncate(mpath, 7)
    for p in Path(m.data, 'stores', 'photos').iterdir():
        if not p.name.startswith('pack-') and p.name != MARKER_NAME:
            p.unlink()
    nlogs = len(m.log_files)
    m.mount()
    missing = []
    for h, d in blobs.items():
        if h == victim.hash:
            continue
        try:
            assert read_blob_checked(m.path('photos', h), d) == d
        except OSError as e:
            missing.append((h, len(d), errno.errorcode[e.errno]))
    assert not missing, (f'one flipped byte in the {region} of {victim} with the durable '
                         f'marker {marker} made intact blobs of the same pack unreadable: '
                         f'{missing}\n--- daemon log ---\n{_log_since(m, nlogs)}')


def test_fsck_checks_the_records_of_a_pack_with_a_bad_header(make_mount):
    """A pack whose header is damaged and which also holds a blob with a bad
    chunk: fsck reports the header and the damaged blob (the daemon serves
    the records of such a pack, so the blob gives EIO when read)."""
    m = make_mount()
    blobs = _small_store(m, [5000, 70000, 6000])
    m.umount()
    records = parse_store(m.data, 'photos')
    pack = pack_files(m.data, 'photos')[0]
    victim = records[pack][1]
    _flip(pack, 8, random.Random(5))                      # the version field
    _flip(pack, victim.data_offset + 5, random.Random(6))
    m.mount()
    try:
        got = read_blob_checked(m.path('photos', victim.hash), blobs[victim.hash])
        assert got == blobs[victim.hash]
    except OSError as e:
        assert e.errno in (errno.EIO, errno.ENOENT), e
    m.umount()
    r = fsck_datadir(m.data)
    assert r.returncode == 1, r.stdout + r.stderr
    assert any(pack.name in line for line in r.stdout.splitlines()), r.stdout
    assert _mentions(r.stdout.splitlines(), pack.name, victim), (
        f'fsck does not name the damaged blob {victim.hash} of {pack.name}:\n{r.stdout}')
    fsck_datadir(m.data, repair=True)
    r = fsck_datadir(m.data)
    assert r.returncode == 0, r.stdout + r.stderr
    m.mount()
    for h, d in blobs.items():
        if h != victim.hash:
            assert read_blob_checked(m.path('photos', h), d) == d
    if victim.hash in files.blob_names(m.mnt, 'photos'):
        assert read_blob_checked(m.path('photos', victim.hash)) == blobs[victim.hash]
