"""Deletes free space: online compaction of packs more than half dead,
immediate removal of a deleted large blob's own pack, offline
`blobfs compact`, readers that keep reading across a compaction, and
SIGKILL of the daemon while it compacts.

BLOBFS_COMPACTION_CRASH_ROUNDS (default 6) sets the number of kills during
compaction.
"""

import errno
import os
import random
import threading
import time
from pathlib import Path

from blobfs_test import files, mounting
from blobfs_test.common import env_int
from blobfs_test.files import expect_errno, read_blob_checked, save
from blobfs_test.mounting import fsck_datadir, kill_daemon, unmount_dead_mount
from blobfs_test.packs import pack_bytes, pack_files, parse_store

KiB = 1 << 10
MiB = 1 << 20

CRASH_ROUNDS = env_int('BLOBFS_COMPACTION_CRASH_ROUNDS', 6)
STORE = 'c'


def _fill(m, rng, count, lo=2 * KiB, hi=20 * KiB, prefix='f'):
    blobs = {}
    for i in range(count):
        data = rng.randbytes(rng.randint(lo, hi))
        blobs[save(m.mnt, STORE, data, name=f'{prefix}{i}')] = data
    return blobs


def _record_size(n):
    return 64 + n + 4 * ((n + 65535) // 65536) + 16


def _check_store(m, live, deleted, where):
    listed = set(files.blob_names(m.mnt, STORE))
    assert listed == set(live), (f'{where}: listing differs: missing '
                                 f'{sorted(set(live) - listed)[:5]}, extra '
                                 f'{sorted(listed - set(live))[:5]}')
    for h, data in live.items():
        assert read_blob_checked(m.path(STORE, h), data) == data, f'{where}: {h}'
    for h in deleted:
        expect_errno(errno.ENOENT, os.stat, m.path(STORE, h))


def _pack_of(records, h):
    return next((p for p, recs in records.items() for r in recs if r.hash == h and r.is_blob),
                None)


def test_online_compaction_frees_space(make_mount, metric):
    rng = random.Random()
    m = make_mount(extra_args=['-o', 'pack_size=1M'])
    os.mkdir(m.path(STORE))
    live = _fill(m, rng, 320)
    records = parse_store(m.data, STORE)
    assert len(records) >= 3, f'expected several 1 MiB packs, got {len(records)}'
    active = max(records)                      # the pack still being appended to
    victims = set(rng.sample(sorted(live), int(len(live) * 0.8)))
    survivors = {h: d for h, d in live.items() if h not in victims}
    # packs that will be more than half dead, and are not the active one
    dead_share = {}
    for p, recs in records.items():
        total = sum(r.end - r.offset for r in recs)
        dead = sum(r.end - r.offset for r in recs if r.hash in victims)
        dead_share[p] = dead / total
    doomed = [p for p in records if p != active and dead_share[p] > 0.6]
    assert doomed, dead_share
    # readers opened before the deletes: one on a blob that survives in a
    # pack that gets compacted, one on a deleted blob of such a pack
    keep = next(h for h in survivors if _pack_of(records, h) in doomed)
    gone = next(h for h in victims if _pack_of(records, h) in doomed)
    readers = {}
    for h in (keep, gone):
        fd = os.open(m.path(STORE, h), os.O_RDONLY)
        readers[h] = (fd, os.read(fd, 1000))
    try:
        before = pack_bytes(m.data)
        active_size = active.stat().st_size
        for h in victims:
            os.unlink(m.path(STORE, h))
        deleted_bytes = sum(_record_size(len(live[h])) for h in victims)
        t0 = time.monotonic()
        # every pack but the active one ends up at most half dead
        bound = 2 * sum(_record_size(len(d)) for d in survivors.values()) + \
            active_size + 80 * len(victims) + 64 * KiB
        while time.monotonic() - t0 < 25:
            now = pack_bytes(m.data)
            gone_packs = [p for p in doomed if not p.exists()]
            if now <= bound and len(gone_packs) == len(doomed):
                break
            time.sleep(0.2)
        took = time.monotonic() - t0
        after = pack_bytes(m.data)
        left = [p.name for p in doomed if p.exists()]
        assert not left, (f'{took:.1f}s after the deletes these packs, more than 60% dead, '
                          f'are still there: {left} (pack bytes {before} -> {after})\n'
                          f'{m.log_tail(20)}')
        assert after <= bound, (before, after, bound)
        assert after < before - deleted_bytes // 2, (before, after, deleted_bytes)
        # the readers read on, whole and exact
        for h, (fd, head) in readers.items():
            rest = b''.join(iter(lambda: os.read(fd, 64 * KiB), b''))
            assert head + rest == live[h], (
                f'reader of {"deleted" if h == gone else "surviving"} blob {h} opened before '
                f'its pack was compacted read {len(head + rest)} bytes, expected '
                f'{len(live[h])} (exact: {head + rest == live[h]})')
            assert os.pread(fd, 100, 0) == live[h][:100]
    finally:
        for fd, _ in readers.values():
            os.close(fd)
    _check_store(m, survivors, victims, 'after online compaction')
    m.remount()
    _check_store(m, survivors, victims, 'after a remount')
    m.umount()
    r = fsck_datadir(m.data)
    assert r.returncode == 0, r.stdout + r.stderr
    metric(f'{len(records)} packs of 1 MiB, {len(victims)}/{len(live)} blobs deleted: pack bytes '
           f'{before} -> {after} in {took:.1f}s ({len(doomed)} packs compacted)')


def test_deleting_a_large_blob_removes_its_pack_at_once(make_mount):
    m = make_mount()
    os.mkdir(m.path(STORE))
    small = {save(m.mnt, STORE, os.urandom(5000), name='s'): None}
    packs0 = set(pack_files(m.data, STORE))
    data = os.urandom(2 * MiB + 3)
    h = save(m.mnt, STORE, data, name='big')
    own = set(pack_files(m.data, STORE)) - packs0
    assert len(own) == 1, f'a 2 MiB blob did not get a pack of its own: {own}'
    own = own.pop()
    assert own.stat().st_size >= len(data)
    fd = os.open(m.path(STORE, h), os.O_RDONLY)
    try:
        head = os.read(fd, 12345)
        os.unlink(m.path(STORE, h))
        assert not own.exists(), f'{own.name} is still there right after the unlink'
        rest = b''.join(iter(lambda: os.read(fd, 256 * KiB), b''))
        assert head + rest == data, 'the reader of a blob whose pack was removed lost bytes'
    finally:
        os.close(fd)
    expect_errno(errno.ENOENT, os.stat, m.path(STORE, h))
    assert set(files.blob_names(m.mnt, STORE)) == set(small)
    m.remount()
    expect_errno(errno.ENOENT, os.stat, m.path(STORE, h))
    assert not own.exists()
    m.umount()
    r = fsck_datadir(m.data)
    assert r.returncode == 0, r.stdout + r.stderr


def test_offline_compact(make_mount, metric):
    rng = random.Random()
    m = make_mount(extra_args=['-o', 'pack_size=1M'])
    os.mkdir(m.path(STORE))
    live = _fill(m, rng, 250)
    bigs = {save(m.mnt, STORE, os.urandom(MiB + i), name=f'big{i}'): None for i in range(2)}
    for h in bigs:
        bigs[h] = files.read_file(m.path(STORE, h))
    live.update(bigs)
    # delete ~40% so that most packs stay under the online threshold
    victims = set(rng.sample(sorted(h for h in live if h not in bigs), int(len(live) * 0.4)))
    victims.add(next(iter(bigs)))
    for h in victims:
        os.unlink(m.path(STORE, h))
    survivors = {h: d for h, d in live.items() if h not in victims}
    # compact refuses to run on a mounted DATADIR (its lock is held)
    r = mounting.blobfs_tool('compact', m.data)
    assert r.returncode != 0, f'blobfs compact ran on a mounted DATADIR: {r.stdout}{r.stderr}'
    _check_store(m, survivors, victims, 'after compact was refused')
    m.umount()
    before = pack_bytes(m.data)
    r = mounting.blobfs_tool('compact', m.data)
    assert r.returncode == 0, r.stdout + r.stderr
    after = pack_bytes(m.data)
    assert after <= before, (before, after)
    # no pack holds a dead blob record any more
    records = parse_store(m.data, STORE)
    dead = [(p.name, r.offset, r.hash) for p, recs in records.items() for r in recs
            if r.is_blob and r.hash in victims]
    assert not dead, f'blob records of deleted blobs left after blobfs compact: {dead[:5]}'
    live_bytes = sum(_record_size(len(d)) for d in survivors.values())
    assert after <= live_bytes + 80 * len(victims) + 32 * len(records) + 4 * KiB, (
        after, live_bytes)
    r = fsck_datadir(m.data)
    assert r.returncode == 0, r.stdout + r.stderr
    m.mount()
    _check_store(m, survivors, victims, 'after blobfs compact')
    m.umount()
    r = mounting.blobfs_tool('compact', m.data)      # nothing left to do: still fine
    assert r.returncode == 0, r.stdout + r.stderr
    assert pack_bytes(m.data) <= after
    metric(f'blobfs compact: pack bytes {before} -> {after} ({len(victims)} of {len(live)} '
           f'blobs deleted, {live_bytes} live bytes)')


class _Trigger(threading.Thread):
    """Watches the store directory and kills the daemon at the first sign
    of a compaction: a staging-compact-* file, or a pack id that was not
    there before; or after a timeout."""

    def __init__(self, m, mode, known_ids, delay, timeout=8.0):
        super().__init__(daemon=True)
        self.m, self.mode, self.known = m, mode, known_ids
        self.delay, self.timeout = delay, timeout
        self.seen = None
        self.status = None
        self.error = None

    def run(self):
        d = Path(self.m.data, 'stores', STORE)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < self.timeout:
                if self.mode == 'timed':
                    if time.monotonic() - t0 >= self.delay:
                        self.seen = 'timer'
                        break
                    time.sleep(0.01)
                    continue
                names = os.listdir(d)
                if self.mode == 'staging' and any(n.startswith('staging-compact') for n in names):
                    self.seen = 'staging-compact file'
                    break
                if self.mode == 'new-pack' and any(
                        n.startswith('pack-') and n not in self.known for n in names):
                    self.seen = 'new pack'
                    break
            if self.seen is None:
                self.seen = 'timeout'
            if self.delay and self.mode != 'timed':
                time.sleep(self.delay)
            self.status = kill_daemon(self.m)
        except Exception as e:     # reported by the test
            self.error = e


def test_kill_during_compaction(make_mount, metric):
    rng = random.Random()
    m = make_mount(extra_args=['-o', 'pack_size=512K'])
    os.mkdir(m.path(STORE))
    survivors, deleted = {}, set()
    states = []
    modes = ['staging', 'new-pack', 'timed']
    for rnd in range(CRASH_ROUNDS):
        new = _fill(m, rng, 200, prefix=f'r{rnd}-')
        victims = set(rng.sample(sorted(new), int(len(new) * 0.8)))
        # also some older survivors, so that tombstones land far from their blobs
        old = rng.sample(sorted(survivors), min(len(survivors), 10))
        for h in sorted(victims) + old:
            os.unlink(m.path(STORE, h))
            deleted.add(h)
            survivors.pop(h, None)
        survivors.update({h: d for h, d in new.items() if h not in victims})
        known = set(os.listdir(Path(m.data, 'stores', STORE)))
        mode = modes[rnd % len(modes)]
        delay = rng.uniform(1.5, 3.5) if mode == 'timed' else rng.choice((0, 0, 0.001, 0.005))
        trig = _Trigger(m, mode, known, delay)
        trig.start()
        trig.join(30)
        assert not trig.is_alive() and trig.error is None, trig.error
        # what the kill interrupted, for the record
        names = os.listdir(Path(m.data, 'stores', STORE))
        state = []
        if any(n.startswith('staging-compact') for n in names):
            state.append('staging-compact file')
        if {n for n in names if n.startswith('pack-')} - known:
            state.append('new pack')
        states.append(f'{mode}/{trig.seen}: {"+".join(state) or "between passes"}')
        r = unmount_dead_mount(m.mnt)
        assert r.returncode == 0, r.stderr
        m.mount()
        where = f'round {rnd + 1} (killed on {trig.seen}, {state})'
        try:
            _check_store(m, survivors, deleted, where)
            assert os.listdir(m.path(STORE, 'incoming')) == []
        except AssertionError as e:
            raise AssertionError(f'{e}\n--- daemon log ---\n{m.log_tail(30)}') from None
        m.umount()
        r = fsck_datadir(m.data)
        assert r.returncode == 0, f'{where}: fsck exits {r.returncode}\n{r.stdout}{r.stderr}'
        stale = sorted(p.name for p in Path(m.data, 'stores', STORE).glob('staging-*'))
        assert not stale, f'{where}: left after a remount and unmount: {stale}'
        m.mount()
    metric(f'{CRASH_ROUNDS} kills during compaction: ' + '; '.join(states) +
           f'; {len(survivors)} blobs live, {len(deleted)} deleted')
