"""A heavy-handed client against one daemon (the security issue's hostile
load, as the mounting user): 2,000 stores, a tree 300 directories deep in
incoming/, 5,000 receipts, and eight threads listing the root, a store and
its incoming/ in a loop while another store's saves go on. Every save
completes and is visible at once, and the daemon's RSS stays under 200 MB
(measured: about 25 MB). Under ASan (BLOBFS_SANITIZED=1) RSS is not
checked: its quarantine keeps up to 256 MB of freed memory and its shadow
adds to the rest."""

import hashlib
import os
import threading

RSS_BOUND_MB = 200
SANITIZED = bool(os.environ.get('BLOBFS_SANITIZED'))


def rss_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) // 1024
    raise AssertionError('no VmRSS')


def test_many_stores_deep_trees_and_listing_loops(blobfs):
    m = blobfs.mnt
    os.mkdir(blobfs.path('S'))
    for i in range(2000):
        os.mkdir(blobfs.path(f'st{i:04d}'))
    deep = blobfs.path('S', 'incoming')
    for i in range(300):
        deep = os.path.join(deep, 'd%03d' % i)
        os.mkdir(deep)
    with open(os.path.join(deep, 'deep'), 'wb') as f:
        f.write(b'deep file')
    with open(os.path.join(deep, 'deep'), 'rb') as f:
        assert f.read() == b'deep file'
    for i in range(5000):
        with open(blobfs.path('S', 'incoming', f'f{i}'), 'wb') as f:
            f.write(b'x%d' % i)
    assert SANITIZED or rss_mb(blobfs.pid) < RSS_BOUND_MB

    stop = threading.Event()
    rounds = [0]
    errors = []

    def lister():
        try:
            while not stop.is_set():
                os.listdir(m)
                os.listdir(blobfs.path('S'))
                os.listdir(blobfs.path('S', 'incoming'))
                rounds[0] += 1
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=lister) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        for i in range(500):
            data = b'another user %d' % i
            with open(blobfs.path('st0001', 'incoming', f'o{i}'), 'wb') as f:
                f.write(data)
            assert os.path.exists(blobfs.path('st0001', hashlib.sha256(data).hexdigest()))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert rounds[0] > 0
    assert len(os.listdir(m)) == 2001
    assert SANITIZED or rss_mb(blobfs.pid) < RSS_BOUND_MB
