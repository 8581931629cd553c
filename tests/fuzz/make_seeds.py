#!/usr/bin/env python3
"""make_seeds.py - writes the seed corpus of the fuzz targets (corpus/<target>/)
and the inputs that found bugs (kept in corpus/<target>/ as regression-*),
from docs/FORMAT.md.

Standard library only (zlib has no CRC32C, so it is computed here).
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
TRAILER_MAGIC = 0x31444E45
BLOB, TOMBSTONE = 1, 2
PACK_ID = 7  # the id fuzz_pack_scan opens its file as


def pack_header(pack_id=PACK_ID, reserved=bytes(12)):
    b = b"BLOBPAK1" + struct.pack("<II", 1, pack_id) + reserved
    return b + struct.pack("<I", crc32c(b))


def marker(seq, reserved=bytes(12)):
    b = b"BLOBSYN1" + struct.pack("<Q", seq) + reserved
    return b + struct.pack("<I", crc32c(b))


def record_header(kind, shift, seq, length, digest, reserved0=0, reserved1=0, time=None):
    """REC1 (format 1) unless a time is given: then REC2 with that time."""
    if time is not None:
        bits = time & (2**48 - 1)
        reserved0, reserved1 = bits >> 32, bits & 0xFFFFFFFF
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
FIX_ALL = FIX_HASH | FIX_CHUNKS | FIX_TRAILER | FIX_HEADER_CRC


def pack_scan_seeds():
    rnd = random.Random(1)
    hello = b"hello, blobfs\n"
    big = bytes(rnd.getrandbits(8) for _ in range(10000))
    a = record(BLOB, 1, hello)
    t = record(TOMBSTONE, 2, digest=hashlib.sha256(hello).digest())
    b = record(BLOB, 3, b"second blob")
    c = record(BLOB, 5, big, shift=12)  # three chunks of 4 KiB
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
    entries: (digest, offset, length, pack_id, time), sorted by digest."""
    h = b"BLOBIDX1" + struct.pack("<IIQQI", version, len(packs), len(entries), next_seq,
                                   next_pack_id) + bytes(24)
    b = h + struct.pack("<I", crc32c(h))
    for pid, size, tombs, max_seq, last_off, last_seq in packs:
        b += struct.pack("<IBBHQQQQQ", pid, 0, 1, 0, size, tombs, max_seq, last_off, last_seq)
    for digest, off, length, pid, time in entries:
        b += digest + struct.pack("<QQII", off, length, pid, 0)
        if version == 2:
            b += struct.pack("<q", time)
    return b + struct.pack("<II", 0x31584449, crc32c(b))


def checkpoint_seeds():
    d = sorted(hashlib.sha256(bytes([i])).digest() for i in range(3))
    packs = [(1, 4096, 0, 3, 2000, 3), (2, 2000000, 0, 4, 32, 4)]
    entries = [(d[0], 32, 100, 1, 1700000000), (d[1], 500, 200, 1, -1),
               (d[2], 32, 1500000, 2, 2**47 - 1)]
    return {"v2-three-blobs": bytes([0]) + checkpoint(packs, entries)}


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
    # Inputs that once found bugs (fixed): kept as regressions in the corpus.
    regress = lambda files: {"regression-" + k: v for k, v in files.items()}
    write(os.path.join(root, "corpus", "fuzz_record"), regress(record_crashers()))
    write(os.path.join(root, "corpus", "fuzz_index"), regress(index_crashers()))


if __name__ == "__main__":
    main()
