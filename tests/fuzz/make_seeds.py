#!/usr/bin/env python3
"""make_seeds.py - writes the seed corpus of the fuzz targets (corpus/<target>/)
and the inputs that found bugs (kept in corpus/<target>/ as regression-*),
from docs/FORMAT.md.

Standard library only (zlib has no CRC32C, so it is computed here; there is
no zstd either: the compressed chunks of the REC3 seeds are zstd frames made
by hand of RLE blocks, which any decoder must take; fuzz_zchunk makes real
compressed chunks itself from content, its mode 3).
Deterministic: running it again rewrites the same files.

    tests/fuzz/make_seeds.py          # into tests/fuzz/corpus
"""
import hashlib
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- CRC32C (Castagnoli, reflected 0x82F63B78) ----

_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283

# ---- the format ----

RECORD_MAGIC_V1 = 0x31434552  # "REC1": format 1, no time
RECORD_MAGIC = 0x32434552     # "REC2": format 2, a signed 48-bit time in bytes 6..7, 56..59
RECORD_MAGIC_Z = 0x33434552   # "REC3": format 3, as REC2 with compressed chunks
TRAILER_MAGIC = 0x31444E45
BLOB, TOMBSTONE = 1, 2
PACK_ID = 7  # the id fuzz_pack_scan opens its file as


def pack_header(pack_id=PACK_ID, reserved=bytes(12)):
    b = b"BLOBPAK1" + struct.pack("<II", 1, pack_id) + reserved
    return b + struct.pack("<I", crc32c(b))


def marker(seq, reserved=bytes(12)):
    b = b"BLOBSYN1" + struct.pack("<Q", seq) + reserved
    return b + struct.pack("<I", crc32c(b))


def record_header(kind, shift, seq, length, digest, reserved0=0, reserved1=0, time=None,
                  magic=None):
    """REC1 (format 1) unless a time is given: then REC2 (or the magic given)
    with that time."""
    if time is not None:
        bits = time & (2**48 - 1)
        reserved0, reserved1 = bits >> 32, bits & 0xFFFFFFFF
    if magic is None:
        magic = RECORD_MAGIC_V1 if time is None else RECORD_MAGIC
    b = struct.pack("<IBBHQQ", magic, kind, shift, reserved0, seq, length)
    b += digest + struct.pack("<I", reserved1)
    assert len(b) == 60
    return b + struct.pack("<I", crc32c(b))


def record(kind, seq, data=b"", shift=16, digest=None, time=None):
    """A whole record: header, data, chunk table, trailer (REC2 with a time)."""
    if digest is None:
        digest = hashlib.sha256(data).digest()
    chunk = 1 << shift
    table = b"".join(struct.pack("<I", crc32c(data[i:i + chunk]))
                     for i in range(0, len(data), chunk))
    trailer = struct.pack("<IIQ", TRAILER_MAGIC, crc32c(table), seq)
    return record_header(kind, shift, seq, len(data), digest, time=time) + data + table + trailer


# ---- zstd frames by hand (RFC 8878), and REC3 records of them ----

ZSTD_MAGIC = 0xFD2FB528


def zstd_rle_frame(byte, n, content_size=None, window_log=None):
    """A frame that decodes to n copies of byte: RLE blocks of at most 128 KiB.
    By default single-segment with a 4-byte content size (content_size may
    lie); with window_log, a window descriptor instead and no content size."""
    if window_log is None:
        fcs = n if content_size is None else content_size
        head = struct.pack("<IBI", ZSTD_MAGIC, 0xA0, fcs)  # FCS 4 bytes, single segment
    else:
        head = struct.pack("<IBB", ZSTD_MAGIC, 0x00, (window_log - 10) << 3)
    blocks, left = b"", n
    while True:
        size = min(left, 128 << 10)
        left -= size
        last = 1 if left == 0 else 0
        blocks += (last | 1 << 1 | size << 3).to_bytes(3, "little") + bytes([byte])
        if last:
            return head + blocks


def zrecord(seq, chunks, shift=12, time=1700000000, digest=None, fix_table=None):
    """A whole REC3: chunks is a list of (content, stored) pairs, stored the
    bytes on disk (content itself for a raw chunk). fix_table, if given,
    rewrites the list of (stored size, crc) entries before the trailer seals
    them."""
    content = b"".join(c for c, _ in chunks)
    # One (content, stored) pair per chunk of 1 << shift bytes.
    assert all(len(c) == 1 << shift for c, _ in chunks[:-1]) and len(chunks[-1][0]) <= 1 << shift
    if digest is None:
        digest = hashlib.sha256(content).digest()
    entries = [(len(st), crc32c(st)) for _, st in chunks]
    if fix_table:
        entries = fix_table(entries)
    table = b"".join(struct.pack("<II", n, c) for n, c in entries)
    stored = b"".join(st for _, st in chunks)
    trailer = struct.pack("<IIQ", TRAILER_MAGIC, crc32c(table), seq)
    return record_header(BLOB, shift, seq, len(content), digest, time=time,
                         magic=RECORD_MAGIC_Z) + table + stored + trailer


def rle_chunk(byte, n):
    return (bytes([byte]) * n, zstd_rle_frame(byte, n))


def flip(b, at, mask=0x01):
    b = bytearray(b)
    b[at] ^= mask
    return bytes(b)


# ---- fuzz_pack_scan: flags byte + file ----

IN_PREFIX_HEADER = 1 << 0
IN_HEADLESS = 1 << 1
FIX_HASH = 1 << 2
FIX_CHUNKS = 1 << 3
FIX_TRAILER = 1 << 4
FIX_HEADER_CRC = 1 << 5
IN_NO_HASHER = 1 << 6
FIX_ZSIZES = 1 << 7
FIX_ALL = FIX_HASH | FIX_CHUNKS | FIX_TRAILER | FIX_HEADER_CRC


def pack_scan_seeds():
    rnd = random.Random(1)
    hello = b"hello, blobfs\n"
    big = bytes(rnd.getrandbits(8) for _ in range(10000))
    a = record(BLOB, 1, hello)
    t = record(TOMBSTONE, 2, digest=hashlib.sha256(hello).digest())
    b = record(BLOB, 3, b"second blob")
    c = record(BLOB, 5, big, shift=12)  # three chunks of 4 KiB
    # REC3, 4 KiB chunks: RLE, raw (random), RLE, and a short last one raw.
    z3 = [rle_chunk(0x61, 4096), (big[:4096], big[:4096]), rle_chunk(0, 4096),
          (big[4096:4196], big[4096:4196])]
    zfix = bytearray(zrecord(34, [rle_chunk(5, 4096), rle_chunk(6, 4096), (big[:808],) * 2]))
    zfix[24:64] = bytes(40)                                # hash, time, header CRC
    for i in range(3):
        zfix[64 + 8 * i + 4:64 + 8 * i + 8] = bytes(4)    # chunk CRCs
    zfix[64 + 16:64 + 20] = struct.pack("<I", 81 * 808 + 807)  # out of bounds; fixed to 808
    zfix[-16:] = bytes(16)                                 # trailer
    zfix = bytes(zfix)
    h = pack_header()
    n = IN_NO_HASHER
    seeds = {
        "empty-pack": bytes([n]) + h,
        "one-blob": bytes([n]) + h + a,
        "tombstone": bytes([n]) + h + t,
        "two-records": bytes([n]) + h + a + t,
        "zero-length-blob": bytes([n]) + h + record(BLOB, 4, b""),
        "multi-chunk-blob": bytes([n]) + h + c + a,
        "torn-tail": bytes([n]) + h + a + b + t[:len(t) // 2],
        "torn-header": bytes([n]) + h + a + t[:40],
        "damaged-middle-header": bytes([n]) + h + a + flip(b, 20) + t,
        "damaged-middle-trailer": bytes([n]) + h + a + flip(b, len(b) - 3) + t,
        "garbage-between": bytes([n]) + h + a + b"\x00junk\xffREC1" * 5 + b,
        "bad-chunk": bytes([n]) + h + flip(c, 64 + 5000, 0x80) + t,
        "wrong-hash": bytes([n]) + h + record(BLOB, 6, hello, digest=bytes(32)),
        "other-pack-id": bytes([n]) + pack_header(8) + a,
        "short-file": bytes([0]) + h[:20],
        "prefixed-records": bytes([n | IN_PREFIX_HEADER]) + a + b + t,
        "headless-bad-header": bytes([n | IN_HEADLESS]) + flip(h, 3) + a + b,
        # Format 2 records (REC2, with their time), alone and after REC1 ones.
        "rec2-blob-and-tombstone": bytes([n]) + h + record(BLOB, 11, hello, time=1700000000) +
        record(TOMBSTONE, 12, digest=hashlib.sha256(hello).digest(), time=1700000001),
        "rec1-then-rec2": bytes([n]) + h + a + b + record(BLOB, 13, b"new", time=-5),
        "rec2-torn-tail": bytes([n]) + h + record(BLOB, 14, big, shift=12, time=2**47 - 1)[:5000],
        # Format 3 (REC3): compressed chunks (RLE frames), raw ones, and both.
        "rec3-blob": bytes([n]) + h + zrecord(20, z3),
        "rec3-one-byte": bytes([n]) + h + zrecord(21, [(b"x", b"x")], shift=16),
        "rec3-among-others": bytes([n]) + h + a + zrecord(22, z3) + t +
        zrecord(23, [rle_chunk(0, 65536), rle_chunk(7, 100)], shift=16) + b,
        "rec3-bad-chunk": bytes([n]) + h + flip(zrecord(24, z3), 64 + 24 + 10) + a,
        "rec3-wrong-length-frame": bytes([n]) + h +
        zrecord(25, [(b"a" * 4096, zstd_rle_frame(ord("a"), 4095))]) + a,
        "rec3-lying-content-size": bytes([n]) + h +
        zrecord(26, [(b"a" * 4096, zstd_rle_frame(ord("a"), 4096, content_size=4000))]),
        "rec3-window-too-large": bytes([n]) + h +
        zrecord(27, [(b"w" * 4096, zstd_rle_frame(ord("w"), 4096, window_log=25))]),
        "rec3-wrong-hash": bytes([n]) + h + zrecord(28, z3, digest=bytes(32)),
        "rec3-table-size-zero": bytes([n]) + h +
        zrecord(29, z3, fix_table=lambda e: [(0, e[0][1])] + e[1:]) + a,
        "rec3-table-size-too-large": bytes([n]) + h +
        zrecord(30, [(b"q" * 100, b"q" * 101)]) + a,
        "rec3-torn": bytes([n]) + h + a + zrecord(31, z3)[:150],
        "rec3-damaged-header-then-rec3": bytes([n]) + h + flip(zrecord(32, z3), 10) +
        zrecord(33, [rle_chunk(1, 5000)], shift=13),
        # The hash, the header, chunk and table CRCs and the trailer zeroed,
        # the stored sizes too big: the fix-ups make it frame and verify.
        "rec3-fixup-all": bytes([n | FIX_ALL | FIX_ZSIZES]) + h + zfix,
        # Checksums zeroed out: the harness fixes them up before the scan.
        "fixup-all": bytes([n | IN_PREFIX_HEADER | FIX_ALL]) +
        record_header(BLOB, 12, 9, 5000, bytes(32))[:60] + bytes(4) +
        bytes(range(256)) * 19 + bytes(136) + bytes(8) + struct.pack("<I", TRAILER_MAGIC) +
        bytes(12) + record_header(TOMBSTONE, 16, 10, 0, bytes(32)) + bytes(16),
    }
    return seeds


# ---- fuzz_record: flags byte + 64 structure bytes + 71 encode values ----

def encode_values(offset, kind, shift, seq, length, lshift, digest, pack_id, mseq):
    v = struct.pack("<QBBQQB", offset, kind, shift, seq, length, lshift) + digest
    v += struct.pack("<IQ", pack_id, mseq)
    assert len(v) == 71
    return v


def record_seeds():
    d = hashlib.sha256(b"blobfs").digest()
    vals = encode_values(96, BLOB, 16, 42, 123456, 0, d, 7, 41)
    pad = lambda b: b + bytes(64 - len(b))
    return {
        "record-header-blob": bytes([0]) + record_header(BLOB, 16, 42, 123456, d) + vals,
        "record-header-tombstone": bytes([0]) + record_header(TOMBSTONE, 12, 1, 0, d) + vals,
        "record-header-max-length": bytes([0]) +
        record_header(BLOB, 24, 2**64 - 1, 2**56, d) + vals,
        "record-header-rec2": bytes([0]) +
        record_header(BLOB, 16, 43, 4567, d, time=1700000000) + vals,
        "record-header-rec2-negative-time": bytes([0]) +
        record_header(TOMBSTONE, 16, 44, 0, d, time=-(2**47)) + vals + bytes([0xC5]),
        "record-header-rec1-encode": bytes([0]) + record_header(BLOB, 16, 42, 7, d) + vals +
        bytes([0x80]),
        # REC3: as REC2 with another magic; a blob with content only.
        "record-header-rec3": bytes([0]) +
        record_header(BLOB, 16, 45, 70000, d, time=1700000000, magic=RECORD_MAGIC_Z) +
        vals[:26] + bytes([vals[26] | 0x40]) + vals[27:],
        "record-header-rec3-empty-refused": bytes([0]) +
        record_header(BLOB, 16, 46, 0, d, time=1, magic=RECORD_MAGIC_Z) + vals,
        "record-header-rec3-tombstone-refused": bytes([0]) +
        record_header(TOMBSTONE, 16, 47, 0, d, time=1, magic=RECORD_MAGIC_Z) + vals,
        "pack-header": bytes([0]) + pad(pack_header(0x12345678)) + vals,
        "marker": bytes([0]) + pad(marker(2**40 + 3)) + vals,
        "fixup-all-flags": bytes([0x7f]) + bytes(range(1, 65)) + vals,
        "pack-name": bytes([0]) + b"pack-0000abcd.pack",
        "hash-hex": bytes([0]) + d.hex().encode(),
    }


def record_crashers():
    d = hashlib.sha256(b"blobfs").digest()
    pad = lambda b: b + bytes(64 + 71 - len(b))
    return {
        # record_header_decode accepts non-zero reserved bytes 6..7 / 56..59.
        "record-header-reserved0-nonzero-accepted":
        bytes([0]) + pad(record_header(BLOB, 16, 1, 5, d, reserved0=0x0101)),
        "record-header-reserved1-nonzero-accepted":
        bytes([0]) + pad(record_header(TOMBSTONE, 16, 1, 0, d, reserved1=0xdeadbeef)),
        # pack_header_decode accepts non-zero reserved bytes 16..27.
        "pack-header-reserved-nonzero-accepted":
        bytes([0]) + pad(pack_header(7, reserved=b"\x01" + bytes(11))),
        # marker_decode accepts non-zero reserved bytes 16..27.
        "marker-reserved-nonzero-accepted":
        bytes([0]) + pad(marker(5, reserved=bytes(11) + b"\x80")),
    }


# ---- fuzz_index: (op, key spec, seed lo, seed hi) * n ----

def op(o, spec, seed):
    return bytes([o, spec, seed & 0xFF, seed >> 8])


def index_seeds():
    rnd = random.Random(2)
    mixed = b"".join(op(rnd.randrange(256), rnd.randrange(256), rnd.randrange(65536))
                     for _ in range(400))
    # 100 keys sharing 8 bytes of zeros (base 0, keep 8), lookups, removes, a full check.
    zeros = b"".join(op(0, 0 | 4 << 3, i) for i in range(100))
    zeros += b"".join(op(4, 0 | 4 << 3, i) for i in range(0, 100, 7))
    zeros += b"".join(op(3, 0x80, i * 13) for i in range(40)) + op(7, 0, 0)
    # Present keys and their near neighbours (same home slot).
    near = b"".join(op(0, 7, i) for i in range(50))
    near += b"".join(op(rnd.choice([0, 4, 5, 3]), 0xC0 | rnd.randrange(64), rnd.randrange(65536))
                     for _ in range(200)) + op(7, 0, 0)
    # Keys near the top of the key space, but no more than the spare slots hold.
    top = b"".join(op(0, 1 | 3 << 3, i) for i in range(40))
    top += b"".join(op(0, 5 | 4 << 3, i) for i in range(20))
    top += b"".join(op(5 | (i & 1) << 3, 1 | 2 << 3, i) for i in range(30)) + op(7, 0, 0)
    # Growth: 1300 random keys, then about half of them removed.
    growth = b"".join(op(0, 7, i) for i in range(1300))
    growth += b"".join(op(3, 0x80, i * 7919 % 65536) for i in range(700)) + op(7, 0, 0)
    return {
        "mixed-ops": mixed,
        "shared-prefix-zeros": zeros,
        "near-neighbours": near,
        "top-of-keyspace": top,
        "growth": growth,
        "kind-zero-refused": op(0, 7, 1) + op(6, 7, 2) + op(6, 0x80, 0) + op(7, 0, 0),
    }


def index_crashers():
    # 66 distinct keys whose first 31 bytes are ff: their home slot is the
    # last one at any capacity, and the 64 spare slots cannot hold them, so
    # index_put doubles the table until calloc fails.
    return {"index-put-66-keys-ff-prefix-grows-without-bound":
            b"".join(op(0, 1 | 7 << 3, i) for i in range(66)) + op(7, 0, 0)}


# ---- fuzz_checkpoint: flags byte + file ----

def checkpoint(packs, entries, next_seq=10, next_pack_id=3, version=2):
    """packs: (id, size, tombstones, max_seq, last_offset, last_seq);
    entries: (digest, offset, length, pack_id, time[, disk]), sorted by digest
    (disk: a REC3's size on disk, version 3 only)."""
    h = b"BLOBIDX1" + struct.pack("<IIQQI", version, len(packs), len(entries), next_seq,
                                   next_pack_id) + bytes(24)
    b = h + struct.pack("<I", crc32c(h))
    for pid, size, tombs, max_seq, last_off, last_seq in packs:
        b += struct.pack("<IBBHQQQQQ", pid, 0, 1, 0, size, tombs, max_seq, last_off, last_seq)
    for digest, off, length, pid, time, *disk in entries:
        b += digest + struct.pack("<QQII", off, length, pid, disk[0] if disk else 0)
        if version >= 2:
            b += struct.pack("<q", time)
    return b + struct.pack("<II", 0x31584449, crc32c(b))


def checkpoint_seeds():
    d = sorted(hashlib.sha256(bytes([i])).digest() for i in range(3))
    packs = [(1, 4096, 0, 3, 2000, 3), (2, 2000000, 0, 4, 32, 4)]
    entries = [(d[0], 32, 100, 1, 1700000000), (d[1], 500, 200, 1, -1),
               (d[2], 32, 1500000, 2, 2**47 - 1)]
    # Format 3: disk sizes of compressed records (each as an index slot keeps
    # it: 12 significant bits), 0 for a raw one.
    entries3 = [(d[0], 32, 100, 1, 1700000000, 89), (d[1], 500, 200, 1, -1),
                (d[2], 32, 1500000, 2, 2**47 - 1, 8190)]
    return {"v2-three-blobs": bytes([0]) + checkpoint(packs, entries),
            "v3-three-blobs": bytes([0]) + checkpoint(packs, entries3, version=3),
            "v3-disk-not-rounded": bytes([0]) +
            checkpoint(packs, [(d[0], 32, 100000, 1, 5, 4097)], version=3),
            "fixups-zero-v2": bytes([1 | 2 | 4 | 16]) + bytes(64 + 48 + 2 * 64 + 8)}


# ---- fuzz_zchunk: mode byte + the rest (see fuzz_zchunk.c) ----

def zchunk_seeds():
    rnd = random.Random(3)
    text = bytes(rnd.choice(b"etaoin s") for _ in range(20000))
    noise = bytes(rnd.getrandbits(8) for _ in range(3000))
    want = lambda n: struct.pack("<I", n - 1)[:3]
    frames = {
        "stored-rle": zstd_rle_frame(0x41, 4096),
        "stored-rle-two-frames": zstd_rle_frame(1, 100) + zstd_rle_frame(2, 3996),
        "stored-rle-lying-size": zstd_rle_frame(0x41, 4096, content_size=5000),
        "stored-window-25": zstd_rle_frame(9, 4096, window_log=25),
        "stored-window-24": zstd_rle_frame(9, 4096, window_log=24),
        "stored-skippable": struct.pack("<II", 0x184D2A50, 4) + b"skip" +
        zstd_rle_frame(3, 4096),
        "stored-noise": noise,
    }
    seeds = {name: bytes([0]) + want(4096) + f for name, f in frames.items()}
    seeds["stored-rle-wants-less"] = bytes([0]) + want(4095) + frames["stored-rle"]
    seeds["stored-rle-wants-more"] = bytes([0]) + want(4097) + frames["stored-rle"]
    # 16 MiB of one byte from about 500: the most a chunk may be.
    seeds["stored-rle-16mib"] = bytes([0]) + want(1 << 24) + zstd_rle_frame(0, 1 << 24)
    seeds["compress-text"] = bytes([1, 2]) + text[:5000]
    seeds["compress-noise"] = bytes([1, 0]) + noise
    seeds["compress-zeros"] = bytes([1, 5]) + bytes(65000)
    # Mode 2: a REC3 as bytes, as written, and with everything to fix.
    z = zrecord(5, [rle_chunk(0x61, 4096), (noise[:4096 - 1096] + text[:1096],) * 2,
                    rle_chunk(0, 808)])
    seeds["record"] = bytes([2]) + z
    zero = bytearray(z)
    zero[0:4] = b"RECX"                                     # magic
    zero[24:56] = bytes(32)                                 # hash
    zero[60:64] = bytes(4)                                  # header CRC
    for i in range(3):
        zero[64 + 8 * i + 4:64 + 8 * i + 8] = bytes(4)     # chunk CRCs
    zero[-16:] = bytes(16)                                  # trailer
    seeds["record-fix-all"] = bytes([2 | 0xFC]) + bytes(zero)
    seeds["record-bad-table"] = bytes([2]) + flip(z, 70)
    # Mode 3: content made into a REC3 (shift 12 + byte 1 % 5), then a byte
    # (offset in bytes 2..3) XORed with byte 4, resealed with bit 2.
    half = text[:9000] + noise + text[9000:13000]
    seeds["built-text"] = bytes([3, 0, 0, 0, 0]) + text
    seeds["built-mixed-shift-13"] = bytes([3, 1, 0, 0, 0]) + half
    seeds["built-damaged-frame"] = bytes([3, 0, 130, 0, 0x10]) + half
    seeds["built-damaged-frame-resealed"] = bytes([3 | 4, 0, 130, 0, 0x10]) + half
    seeds["built-damaged-table"] = bytes([3, 0, 70, 0, 0xFF]) + half
    return seeds


def meta(uid, gid, mode, version=1, reserved=0):
    """A store's meta file (docs/FORMAT.md)."""
    b = b"BLOBMETA" + struct.pack("<IIIII", version, uid, gid, mode, reserved)
    return b + struct.pack("<I", crc32c(b))


def meta_seeds():
    return {
        "root-0755": bytes([0]) + meta(0, 0, 0o755),
        "user-2750": bytes([0]) + meta(1000, 100, 0o2750),
        "max-ids-07777": bytes([0]) + meta(2**32 - 1, 2**32 - 1, 0o7777),
        "version-2": bytes([0]) + meta(0, 0, 0o755, version=2),
        "mode-high-bits": bytes([0]) + meta(0, 0, 0o40755),
        "reserved-nonzero": bytes([0]) + meta(0, 0, 0o755, reserved=1),
        "fixup-all": bytes([15]) + bytes(32),
        "short": bytes([0]) + meta(0, 0, 0o755)[:20],
    }


# ---- fuzz_tokens: byte 0 even: a tokens file; odd: a name (see fuzz_tokens.c) ----

def tokens_seeds():
    a, b, c = b"A" * 16, b"b-._~+/0123456789Zz", b"c" * 256
    files = {
        "good": b"# blobfs tokens\n\n" + a + b" ro\n" + b + b" rw user=1000\n",
        "every-field": b"\t" + a + b"\trw user=5:6 store=z store=a\\x20b store=x\\\\y"
        b" store=tab\\there store=nl\\nx\n" + b + b" ro store=plain\n",
        "crlf": b"# comment\r\n\r\n" + a + b" ro\r\n" + b + b" rw user=0\r\n",
        "no-final-newline": a + b" ro\n" + c + b" rw user=4294967294:4294967294",
        "empty": b"",
        "short-token": b"A" * 15 + b" ro\n",
        "long-token": b"L" * 257 + b" rw\n",
        "bad-char": b"AAAAAAAAAA=AAAAAA ro\n",
        "missing-mode": a + b"\n",
        "bad-mode": a + b" RW\n",
        "unknown-field": a + b" ro owner=5\n",
        "user-twice": a + b" ro user=1 user=2\n",
        "user-overflow": a + b" ro user=4294967296\n",
        "gid-unset-value": a + b" ro user=1:4294967295\n",
        "store-dot": a + b" ro store=.x\n",
        "store-slash": a + b" ro store=a\\x2fb\n",
        "store-bad-escape": a + b" ro store=a\\x4\n",
        "nul-byte": a + b" ro\n" + b + b" r\x00w\n",
        "duplicate": a + b" ro\n\n" + a + b" rw\n",
    }
    seeds = {"file-" + k: b"\x00" + v for k, v in files.items()}
    names = {
        "ascii": b"photos-2024",
        "quotes-controls": b'say "hi"\\\t\x01\x7f',
        "utf8": "caf\u00e9 \u20ac \U0001d11e".encode(),
        "invalid-utf8": b"\xff\x80\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82",
        "percent": b"100%25 a+b %zz %",
        "longest": bytes(range(1, 256)).replace(b"/", b"_"),
    }
    seeds.update({"name-" + k: b"\x01" + v for k, v in names.items()})
    return seeds


def write(dirname, files):
    os.makedirs(dirname, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(dirname, name), "wb") as f:
            f.write(data)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else HERE
    write(os.path.join(root, "corpus", "fuzz_pack_scan"), pack_scan_seeds())
    write(os.path.join(root, "corpus", "fuzz_record"), record_seeds())
    write(os.path.join(root, "corpus", "fuzz_index"), index_seeds())
    write(os.path.join(root, "corpus", "fuzz_checkpoint"), checkpoint_seeds())
    write(os.path.join(root, "corpus", "fuzz_meta"), meta_seeds())
    write(os.path.join(root, "corpus", "fuzz_zchunk"), zchunk_seeds())
    write(os.path.join(root, "corpus", "fuzz_tokens"), tokens_seeds())
    # Inputs that once found bugs (fixed): kept as regressions in the corpus.
    regress = lambda files: {"regression-" + k: v for k, v in files.items()}
    write(os.path.join(root, "corpus", "fuzz_record"), regress(record_crashers()))
    write(os.path.join(root, "corpus", "fuzz_index"), regress(index_crashers()))


if __name__ == "__main__":
    main()
