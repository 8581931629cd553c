"""A client of the blob database's native protocol (docs/FORMAT.md, "The
native protocol"), written from the document, for the tests: every call
sends one request and reads its answer; send_raw/read_* let a test pipeline
requests or send malformed ones."""

import socket
import struct

STATUSES = {b'okeydoke': 'ok', b'itexists': 'exists', b'notfound': 'not-found',
            b'no-space': 'no-space', b'invalarg': 'invalid', b'internal': 'internal'}


def name_bytes(name):
    b = name.encode() if isinstance(name, str) else name
    return struct.pack('<H', len(b)) + b


def blob_bytes(data):
    return struct.pack('<Q', len(data)) + data


class Closed(Exception):
    """The server closed the connection."""


class Client:
    def __init__(self, address, version=1, timeout=30, hello=True):
        if address.startswith('unix:'):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(address[5:])
        else:
            host, port = address.rsplit(':', 1)
            self.sock = socket.create_connection((host.strip('[]'), int(port)), timeout=timeout)
        if hello:
            self.send_raw(b'OpenDoor' + struct.pack('<H', version))
            code = self.read_exact(8)
            if code != b'Welcome!':
                self.refused = (code, struct.unpack('<H', self.read_exact(2))[0])
                return
        self.refused = None

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_exact(self, n):
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(min(n - len(out), 1 << 20))
            if not chunk:
                raise Closed(f'closed after {len(out)} of {n} bytes')
            out += chunk
        return bytes(out)

    def read_status(self):
        return STATUSES[self.read_exact(8)]

    def read_u64(self):
        return struct.unpack('<Q', self.read_exact(8))[0]

    # One read per request kind: (status, value or None).
    def read_answer(self, op):
        st = self.read_status()
        if st == 'exists' and op == 'blobsave':
            return st, self.read_exact(32).hex()
        if st != 'ok':
            return st, None
        if op == 'storlist':
            names = []
            for _ in range(self.read_u64()):
                (n,) = struct.unpack('<H', self.read_exact(2))
                names.append(self.read_exact(n).decode('utf-8', 'surrogateescape'))
            return st, names
        if op in ('blobhash', 'blobsave'):
            return st, self.read_exact(32).hex()
        if op == 'bloblist':
            return st, [self.read_exact(32).hex() for _ in range(self.read_u64())]
        if op == 'blobinfo':
            return st, self.read_u64()
        if op == 'blobload':
            return st, self.read_exact(self.read_u64())
        return st, None

    @staticmethod
    def encode(op, store=None, hexhash=None, data=None):
        out = op.encode()
        if store is not None:
            out += name_bytes(store)
        if hexhash is not None:
            out += bytes.fromhex(hexhash)
        if data is not None:
            out += blob_bytes(data)
        return out

    def call(self, op, store=None, hexhash=None, data=None):
        self.send_raw(self.encode(op, store, hexhash, data))
        return self.read_answer(op)

    def store_list(self):
        return self.call('storlist')

    def store_create(self, s):
        return self.call('storenew', s)

    def store_destroy(self, s):
        return self.call('storedel', s)

    def blob_hash(self, data):
        return self.call('blobhash', data=data)

    def blob_list(self, s):
        return self.call('bloblist', s)

    def blob_info(self, s, h):
        return self.call('blobinfo', s, h)

    def blob_load(self, s, h):
        return self.call('blobload', s, h)

    def blob_save(self, s, data):
        return self.call('blobsave', s, data=data)

    def blob_delete(self, s, h):
        return self.call('blobdrop', s, h)

    def goodbye(self):
        self.send_raw(b'Goodbye!')
