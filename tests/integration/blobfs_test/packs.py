"""The pack format (docs/FORMAT.md) from the outside, for tests that look at
a DATADIR or damage packs on purpose."""

import struct
from pathlib import Path


def pack_files(datadir, store=None):
    base = Path(datadir) / 'stores'
    pattern = f'{store}/pack-*.pack' if store else '*/pack-*.pack'
    return sorted(base.glob(pattern))


def pack_bytes(datadir, store=None):
    """Total size of the pack files of a DATADIR (or of one store)."""
    return sum(p.stat().st_size for p in pack_files(datadir, store))


PACK_HEADER_SIZE = 32

RECORD_HEADER_SIZE = 64

RECORD_TRAILER_SIZE = 16

RECORD_MAGIC = 0x32434552     # "REC2": format 2, with the record's time

RECORD_MAGIC_V1 = 0x31434552  # "REC1": format 1, no time (still read)

TRAILER_MAGIC = 0x31444E45

MARKER_NAME = 'durable'


class PackRecord:
    """One record of a pack as laid out on disk (offsets within the file)."""

    def __init__(self, pack, offset, kind, chunk_shift, seq, length, hexhash, time=0):
        self.pack = pack            # Path of the pack file
        self.offset = offset        # header start
        self.kind = kind            # 1 blob, 2 tombstone
        self.chunk_shift = chunk_shift
        self.seq = seq
        self.length = length
        self.hash = hexhash
        self.time = time            # seconds since the epoch; 0 for a REC1
        nchunks = (length + (1 << chunk_shift) - 1) >> chunk_shift
        self.data_offset = offset + RECORD_HEADER_SIZE
        self.table_offset = self.data_offset + length
        self.trailer_offset = self.table_offset + 4 * nchunks
        self.end = self.trailer_offset + RECORD_TRAILER_SIZE

    @property
    def is_blob(self):
        return self.kind == 1

    def region(self, offset):
        """Which part of the record a file offset falls in."""
        if offset < self.data_offset:
            return 'header'
        if offset < self.table_offset:
            return 'data'
        if offset < self.trailer_offset:
            return 'chunk table'
        return 'trailer'

    def __repr__(self):
        return (f'<record {self.pack.name}@{self.offset}..{self.end} '
                f'{"blob" if self.is_blob else "tombstone"} {self.hash[:12]} len {self.length} '
                f'seq {self.seq}>')


def parse_pack(path):
    """Records of an undamaged pack file, in file order. Raises
    AssertionError when the file does not follow the format (only meant for
    packs written by a healthy daemon; it does not check the CRCs)."""
    path = Path(path)
    data = path.read_bytes()
    assert data[:8] == b'BLOBPAK1', f'{path}: bad pack magic {data[:8]!r}'
    records = []
    off = PACK_HEADER_SIZE
    while off < len(data):
        assert off + RECORD_HEADER_SIZE <= len(data), f'{path}: short header at {off}'
        magic, kind, shift, time_hi, seq, length = struct.unpack_from('<IBBhQQ', data, off)
        assert magic in (RECORD_MAGIC, RECORD_MAGIC_V1), f'{path}: bad record magic at {off}'
        hexhash = data[off + 24:off + 56].hex()
        (time_lo,) = struct.unpack_from('<I', data, off + 56)
        time = (time_hi << 32 | time_lo) if magic == RECORD_MAGIC else 0
        rec = PackRecord(path, off, kind, shift, seq, length, hexhash, time)
        assert rec.end <= len(data), f'{path}: record at {off} runs past the end'
        tmagic, _tcrc, tseq = struct.unpack_from('<IIQ', data, rec.trailer_offset)
        assert tmagic == TRAILER_MAGIC and tseq == seq, f'{path}: bad trailer of record at {off}'
        records.append(rec)
        off = rec.end
    return records


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    """CRC32C (Castagnoli), as docs/FORMAT.md: crc32c(b'123456789') ==
    0xE3069283. Pure Python: for a few hundred bytes."""
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def parse_store(datadir, store):
    """{pack Path: [PackRecord...]} for every pack of a store."""
    return {p: parse_pack(p) for p in pack_files(datadir, store)}
