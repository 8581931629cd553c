"""The blob database's native protocol beside the mount (-o native=ADDR) and
without it (blobfs serve): every request and its statuses, with a client
written from docs/FORMAT.md; the mount and the network on one daemon (a
blob saved on one is read on the other at once); requests pipelined on one
connection; the reference's randomized model test over the protocol; many
connections at once and a client that sends a byte a second while others
are served; what is refused (another version, an unknown code, bad names,
a blob larger than the store takes, anonymous TCP clients writing), each a
clear status or a closed connection, never a crash; the store's owners and
modes apply to a Unix socket's peer as on the mount.
"""

import hashlib
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

from blobfs_test import mounting
from blobfs_test.native import Client, Closed


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def sockdir():
    # Unix socket paths are limited to 107 bytes: a short directory of its own.
    d = tempfile.mkdtemp(prefix='bn', dir='/tmp')
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def served(make_mount, sockdir):
    """A mount that also serves the native protocol on a Unix socket."""
    address = f'unix:{sockdir}/s.sock'
    m = make_mount(extra_args=['-o', f'native={address}'])
    m.address = address
    return m


def test_every_request_and_its_statuses(served):
    with Client(served.address) as c:
        assert c.refused is None
        assert c.store_list() == ('ok', [])
        assert c.store_create('a') == ('ok', None)
        assert c.store_create('a') == ('exists', None)
        assert c.store_create('b') == ('ok', None)
        assert c.store_list() == ('ok', ['a', 'b'])
        data = os.urandom(100000)
        h = sha(data)
        assert c.blob_hash(data) == ('ok', h)
        assert c.blob_hash(b'') == ('ok', sha(b''))
        assert c.blob_save('a', data) == ('ok', h)
        assert c.blob_save('a', data) == ('exists', h)
        assert c.blob_info('a', h) == ('ok', len(data))
        assert c.blob_load('a', h) == ('ok', data)
        assert c.blob_list('a') == ('ok', [h])
        assert c.blob_list('b') == ('ok', [])
        assert c.blob_info('b', h) == ('not-found', None)
        assert c.blob_load('b', h) == ('not-found', None)
        assert c.blob_delete('b', h) == ('not-found', None)
        assert c.blob_info('nope', h) == ('not-found', None)
        assert c.blob_save('nope', b'x') == ('not-found', None)
        assert c.blob_list('nope') == ('not-found', None)
        assert c.blob_delete('a', h) == ('ok', None)
        assert c.blob_delete('a', h) == ('not-found', None)
        assert c.blob_save('a', b'') == ('ok', sha(b''))
        assert c.store_destroy('a') == ('ok', None)
        assert c.store_destroy('a') == ('not-found', None)
        assert c.store_list() == ('ok', ['b'])
        # Names a store may not have: read and refused, the stream stays in step.
        for bad in ('', '.hidden', 'a/b', 'x' * 256, b'a\0b'):
            assert c.store_create(bad) == ('invalid', None), bad
            assert c.blob_save(bad, b'abc') == ('invalid', None), bad
        assert c.store_list() == ('ok', ['b'])
        c.goodbye()
        with pytest.raises(Closed):
            c.read_exact(1)


def test_the_mount_and_the_network_share_the_stores(served):
    with Client(served.address) as c:
        assert c.store_create('s') == ('ok', None)
        data = os.urandom(300000)
        st, h = c.blob_save('s', data)
        assert st == 'ok'
        # At once on the mount.
        with open(served.path('s', h), 'rb') as f:
            assert f.read() == data
        # Saved on the mount: at once over the network.
        other = os.urandom(5000)
        with open(served.path('s', 'incoming', 'f'), 'wb') as f:
            f.write(other)
        assert c.blob_load('s', sha(other)) == ('ok', other)
        assert sorted(c.blob_list('s')[1]) == sorted([h, sha(other)])
        os.unlink(served.path('s', h))
        assert c.blob_info('s', h) == ('not-found', None)
        # Deleted over the network: the mount's kernel forgets the name it
        # had cached (it would keep it for an hour otherwise).
        os.stat(served.path('s', sha(other)))
        assert c.blob_delete('s', sha(other)) == ('ok', None)
        deadline = time.monotonic() + 5
        while os.path.exists(served.path('s', sha(other))):
            assert time.monotonic() < deadline, 'the mount still shows a deleted blob'
            time.sleep(0.05)
        # A name looked up while absent, then saved over the network.
        late = b'saved after a failed lookup'
        assert not os.path.exists(served.path('s', sha(late)))
        assert c.blob_save('s', late) == ('ok', sha(late))
        deadline = time.monotonic() + 5
        while not os.path.exists(served.path('s', sha(late))):
            assert time.monotonic() < deadline, 'the mount does not show a saved blob'
            time.sleep(0.05)
        # A store destroyed over the network goes from the mount too.
        assert c.store_destroy('s') == ('ok', None)
        deadline = time.monotonic() + 5
        while os.path.exists(served.path('s')):
            assert time.monotonic() < deadline, 'the mount still shows a destroyed store'
            time.sleep(0.05)


def test_pipelined_requests_are_answered_in_order(served):
    with Client(served.address) as c:
        c.store_create('p')
        blobs = [os.urandom(random.randrange(0, 200000)) for _ in range(50)]
        ops = []
        batch = b''
        for b in blobs:
            batch += Client.encode('blobsave', 'p', data=b)
            batch += Client.encode('blobinfo', 'p', sha(b))
            ops += ['blobsave', 'blobinfo']
        batch += Client.encode('bloblist', 'p')
        ops.append('bloblist')
        # Sent while answers pile up: a reader keeps the socket drained.
        answers = []
        reader = threading.Thread(target=lambda: answers.extend(c.read_answer(op) for op in ops))
        reader.start()
        c.send_raw(batch)
        reader.join(60)
        assert not reader.is_alive()
        for i, b in enumerate(blobs):
            assert answers[2 * i][0] in ('ok', 'exists') and answers[2 * i][1] == sha(b)
            assert answers[2 * i + 1] == ('ok', len(b))
        assert sorted(answers[-1][1]) == sorted({sha(b) for b in blobs})


def test_the_reference_model_test(served):
    """Weighted random operations, existing and unknown names mixed, each
    result checked against an in-memory model; then every store destroyed."""
    rng = random.Random(int(os.environ.get('TEST_SEED', '12345')))
    model = {}
    names = ['s0', 's1', 's2', 's3']
    pool = [os.urandom(rng.choice([0, 1, 100, 5000, 70000])) for _ in range(12)]
    with Client(served.address) as c:
        for _ in range(1500):
            op = rng.choices(['storlist', 'storenew', 'storedel', 'blobhash', 'bloblist',
                              'blobinfo', 'blobload', 'blobsave', 'blobdrop'],
                             weights=[1, 3, 1, 2, 2, 4, 4, 8, 3])[0]
            s = rng.choice(names)
            b = rng.choice(pool)
            h = sha(b)
            got = {
                'storlist': lambda: c.store_list(),
                'storenew': lambda: c.store_create(s),
                'storedel': lambda: c.store_destroy(s),
                'blobhash': lambda: c.blob_hash(b),
                'bloblist': lambda: c.blob_list(s),
                'blobinfo': lambda: c.blob_info(s, h),
                'blobload': lambda: c.blob_load(s, h),
                'blobsave': lambda: c.blob_save(s, b),
                'blobdrop': lambda: c.blob_delete(s, h),
            }[op]()
            if op == 'storlist':
                want = ('ok', sorted(model))
            elif op == 'storenew':
                want = ('exists', None) if s in model else ('ok', None)
                model.setdefault(s, {})
            elif op == 'storedel':
                want = ('ok', None) if model.pop(s, None) is not None else ('not-found', None)
            elif op == 'blobhash':
                want = ('ok', h)
            elif s not in model:
                want = ('not-found', None)
            elif op == 'bloblist':
                got = (got[0], sorted(got[1]))
                want = ('ok', sorted(model[s]))
            elif op == 'blobinfo':
                want = ('ok', len(b)) if h in model[s] else ('not-found', None)
            elif op == 'blobload':
                want = ('ok', b) if h in model[s] else ('not-found', None)
            elif op == 'blobsave':
                want = ('exists', h) if h in model[s] else ('ok', h)
                model[s][h] = b
            else:
                want = ('ok', None) if model[s].pop(h, None) is not None else ('not-found', None)
            assert got == want, (op, s, h)
        for s in list(model):
            assert c.store_destroy(s) == ('ok', None)
        assert c.store_list() == ('ok', [])


def test_many_connections_and_a_slow_client(served):
    with Client(served.address) as c:
        c.store_create('m')
    slow = Client(served.address)
    slow_request = Client.encode('blobsave', 'm', data=b'slowly, one byte at a time')
    stop = threading.Event()

    def trickle():
        for byte in slow_request:
            if stop.is_set():
                return
            slow.send_raw(bytes([byte]))
            time.sleep(0.05)
    t = threading.Thread(target=trickle)
    t.start()
    try:
        clients = [Client(served.address) for _ in range(200)]
        errors = []

        def work(i, cl):
            try:
                data = f'blob {i}'.encode() * 100
                assert cl.blob_save('m', data) == ('ok', sha(data))
                assert cl.blob_load('m', sha(data)) == ('ok', data)
            except Exception as e:   # collected, asserted below
                errors.append(repr(e))
        threads = [threading.Thread(target=work, args=(i, cl)) for i, cl in enumerate(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert not errors, errors[:3]
        for cl in clients:
            cl.close()
        t.join(30)
        assert slow.read_answer('blobsave') == ('ok', sha(b'slowly, one byte at a time'))
    finally:
        stop.set()
        t.join(30)
        slow.close()


def test_what_is_refused(served, blobfs_bin):
    # Another version: Go away! and ours.
    c = Client(served.address, version=2)
    assert c.refused == (b'Go away!', 1)
    with pytest.raises(Closed):
        c.read_exact(1)
    c.close()
    # Not the protocol at all: closed.
    with Client(served.address, hello=False) as c:
        c.send_raw(b'GET / HTTP/1.1\r\n\r\n')
        with pytest.raises((Closed, ConnectionResetError)):
            c.read_exact(1)
    # An unknown code: invalarg, closed.
    with Client(served.address) as c:
        c.send_raw(b'STORLIST')
        assert c.read_status() == 'invalid'
        with pytest.raises(Closed):
            c.read_exact(1)
    # The server goes on serving.
    with Client(served.address) as c:
        assert c.store_list()[0] == 'ok'
    assert 'unknown request' in served.log()


def test_a_blob_larger_than_the_store_takes(make_mount, sockdir):
    """A length the store cannot take is refused before any of the bytes is
    read: invalarg, and the connection ends (its bytes cannot be stepped
    over cheaply); the next connection is served."""
    address = f'unix:{sockdir}/m.sock'
    m = make_mount(data=mounting.MEMORY, cwd=m_cwd(sockdir),
                   extra_args=['-o', f'native={address},memory_max=1M'])
    for length in (2 << 20, 1 << 62):
        with Client(address) as c:
            assert c.store_create('s')[0] in ('ok', 'exists')
            c.send_raw(b'blobsave' + struct.pack('<H', 1) + b's' + struct.pack('<Q', length))
            if length < (1 << 30):
                try:
                    c.send_raw(os.urandom(length))
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the server stopped reading: the answer is there
            assert c.read_status() == 'invalid'
            with pytest.raises((Closed, ConnectionResetError)):
                c.read_exact(1)
    with Client(address) as c:
        assert c.store_list() == ('ok', ['s'])
        assert c.blob_save('s', b'small') == ('ok', sha(b'small'))
    assert 'larger than' in m.log()
    m.umount()


def m_cwd(sockdir):
    d = os.path.join(sockdir, 'cwd')
    os.makedirs(d, exist_ok=True)
    return d


def test_owners_and_modes_apply_to_a_unix_peer(make_mount, sockdir):
    """With allow_other the socket is every user's (0666), and each is held
    to the stores' owners and modes; without it, only the daemon's user's
    (0600), as the mount."""
    served = make_mount(extra_args=['-o', f'native=unix:{sockdir}/o.sock,allow_other'])
    served.address = f'unix:{sockdir}/o.sock'
    assert os.stat(served.address[5:]).st_mode & 0o777 == 0o666
    nobody = 65534
    with Client(served.address) as root:
        assert root.store_create('private') == ('ok', None)
        assert root.blob_save('private', b'secret')[0] == 'ok'
    os.chmod(served.path('private'), 0o700)
    os.chmod(os.path.dirname(served.address[5:]), 0o755)
    script = (
        'import sys; sys.path.insert(0, sys.argv[1]);'
        'from blobfs_test.native import Client;'
        'import hashlib;'
        'c = Client(sys.argv[2]);'
        'h = hashlib.sha256(b"secret").hexdigest();'
        'print(c.blob_load("private", h)[0], c.blob_list("private")[0],'
        ' c.blob_save("private", b"x")[0], c.store_destroy("private")[0],'
        ' c.store_create("mine")[0], c.blob_save("mine", b"y")[0], c.store_destroy("mine")[0])')
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(['setpriv', f'--reuid={nobody}', f'--regid={nobody}', '--clear-groups',
                          '/usr/bin/python3', '-c', script, here, served.address],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['invalid', 'invalid', 'invalid', 'invalid', 'ok', 'ok', 'ok']
    assert 'refused' in served.log()


def test_anonymous_tcp_clients_read_and_write_nothing(make_mount):
    m = make_mount(extra_args=['-o', 'native=127.0.0.1:0'])
    address = [line.split('native protocol on ', 1)[1].strip()
               for line in m.log().splitlines() if 'native protocol on ' in line][0]
    os.mkdir(m.path('pub'))
    with open(m.path('pub', 'incoming', 'f'), 'wb') as f:
        f.write(b'public')
    with Client(address) as c:
        assert c.store_list() == ('ok', ['pub'])
        assert c.blob_load('pub', sha(b'public')) == ('ok', b'public')
        assert c.store_create('x') == ('invalid', None)
        assert c.blob_save('pub', b'no') == ('invalid', None)
        assert c.blob_delete('pub', sha(b'public')) == ('invalid', None)
        assert c.store_destroy('pub') == ('invalid', None)
    assert os.listdir(m.path()) == ['pub']


def test_serve_without_a_mount(blobfs_bin, tmp_path, sockdir):
    address = f'unix:{sockdir}/serve.sock'
    # (the socket of a mount without allow_other is the daemon user's only)
    log = open(tmp_path / 'serve.log', 'w')
    p = subprocess.Popen([blobfs_bin, 'serve', '-o', f'native={address}', str(tmp_path / 'data')],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if os.path.exists(address[5:]):
                break
            time.sleep(0.05)
        with Client(address) as c:
            assert c.store_create('s') == ('ok', None)
            assert c.blob_save('s', b'served')[0] == 'ok'
        assert os.stat(address[5:]).st_mode & 0o777 == 0o600
        # A second server on the same socket is refused; the first goes on.
        second = subprocess.run([blobfs_bin, 'serve', '-o', f'native={address}', 'memory:'],
                                capture_output=True, text=True, timeout=30, cwd=sockdir)
        assert second.returncode == 1 and 'another server answers there' in second.stderr
        with Client(address) as c:
            assert c.store_list() == ('ok', ['s'])
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
        assert not os.path.exists(address[5:])
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
    # What it saved is in the data directory: a mount shows it.
    p = subprocess.run([blobfs_bin, 'serve', str(tmp_path / 'data')], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and 'native' in p.stderr
