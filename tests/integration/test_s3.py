"""Stores on an S3 object store: blobfs mounted on s3://BUCKET/PREFIX against
the radosgw of scripts/ceph-dev (started for the session when it is not
running; BLOBFS_S3=0 skips these tests).

Covers: a blob saved through the mount is the object [PREFIX/]S/<hex> with
exactly its bytes (read back with boto3), and an object put with boto3 is
listed and read through the mount; bytes that do not hash to the object's
name are an EIO and a log line; two mounts with separate caches on one
prefix (save on one, read on the other; delete on one, gone from the other
within remote_ttl; a store made or removed on one appears or goes on the
other); the object store unreachable (saves keep working into the outbox,
uncached reads fail fast with EIO, the daemon killed, and the next mount
uploads what it left); radosgw itself killed and restarted under saves and
reads (nothing acknowledged lost, no hang, the cache's data directories
fsck clean); the cache at its bound (the read cache evicts, the outbox
refuses with ENOSPC); a blob of 70 MiB in a multipart upload; a superseded
save takes back the object its upload created, never one that was there;
s3cmd reads what blobfs saved and blobfs what s3cmd put; the daemon killed
while a multipart upload is under way (the next mount uploads the blob).
"""

import errno
import hashlib
import os
import select
import socket
import subprocess
import threading
import time

import pytest

from blobfs_test import ceph, mounting

BUCKET = ceph.BUCKET


@pytest.fixture
def s3(s3_cluster):
    return s3_cluster.client()


@pytest.fixture
def s3_mounts(make_mount, s3_cluster):
    """s3_mounts(name, prefix, options='', endpoint=None) -> a mounted Mount of
    s3://BUCKET/prefix with the cache tmp_path/<name>cache (make_mount's)."""
    def make(name, prefix, options='', endpoint=None, mount=True):
        opts = [o for o in (f's3_endpoint={endpoint}' if endpoint else '', options) if o]
        return make_mount(name, mount=mount, data=f's3://{BUCKET}/{prefix}',
                          extra_args=['-o', ','.join(opts)] if opts else [])
    return make


@pytest.fixture
def prefix(request, s3_cluster):
    return s3_cluster.new_prefix(request.node.name)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def save(m, store, name, data):
    with open(m.path(store, 'incoming', name), 'wb') as f:
        f.write(data)
    return sha(data)


def wait_for(what, check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(0.1)


def object_bytes(s3, key):
    try:
        return s3.get_object(Bucket=BUCKET, Key=key)['Body'].read()
    except s3.exceptions.NoSuchKey:
        return None


def keys(s3, prefix):
    out = []
    for page in s3.get_paginator('list_objects_v2').paginate(Bucket=BUCKET, Prefix=prefix):
        out += [o['Key'] for o in page.get('Contents', [])]
    return out


class Proxy:
    """A TCP forwarder to the object store that can be cut: down() closes
    its listening socket and every connection (connections are then
    refused), up() listens again on the same port. delay (seconds) is
    waited before each piece of at most 64 KiB sent to the object store:
    a slow link."""

    def __init__(self, target_port):
        self.target = ('127.0.0.1', target_port)
        self.port = None
        self.listener = None
        self.conns = []
        self.lock = threading.Lock()
        self.threads = []
        self.delay = 0.0
        self.up()

    @property
    def endpoint(self):
        return f'http://127.0.0.1:{self.port}'

    def up(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', self.port or 0))
        s.listen(64)
        self.port = s.getsockname()[1]
        self.listener = s
        t = threading.Thread(target=self._accept, args=(s,), daemon=True)
        t.start()
        self.threads.append(t)

    def down(self):
        s, self.listener = self.listener, None
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a, b):
        socks = [a, b]
        try:
            while True:
                ready, _, _ = select.select(socks, [], [], 1.0)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is a and self.delay:
                        time.sleep(self.delay)
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            for s in socks:
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        if self.listener:
            self.down()


@pytest.fixture
def proxy(s3_cluster):
    port = int(s3_cluster.env['AWS_ENDPOINT_URL'].rsplit(':', 1)[1])
    p = Proxy(port)
    yield p
    p.close()


def test_saved_blob_is_the_object_and_back(s3_mounts, s3, prefix):
    m = s3_mounts('a', prefix)
    os.mkdir(m.path('st'))
    small, big = os.urandom(1000), os.urandom(3 << 20)
    hs, hb = save(m, 'st', 'small', small), save(m, 'st', 'big', big)
    assert sorted(n for n in os.listdir(m.path('st')) if n != 'incoming') == sorted([hs, hb])
    # The object store gets exactly the bytes, under [PREFIX/]S/<hex>.
    for h, data in ((hs, small), (hb, big)):
        assert wait_for(f'object {h}', lambda h=h: object_bytes(s3, f'{prefix}/st/{h}')) == data
    assert f'{prefix}/st/.blobfs-store' in keys(s3, f'{prefix}/st/')
    with open(m.path('st', hb), 'rb') as f:
        assert f.read() == big
    # A store made elsewhere is listed by the next mount; a delete deletes the object.
    os.unlink(m.path('st', hs))
    assert object_bytes(s3, f'{prefix}/st/{hs}') is None
    assert not os.path.exists(m.path('st', hs))
    m.remount()
    assert os.listdir(m.path()) == ['st']
    assert sorted(os.listdir(m.path('st'))) == sorted([hb, 'incoming'])


def test_objects_put_by_other_tools(s3_mounts, s3, prefix, tmp_path):
    m0 = s3_mounts('maker', prefix)
    os.mkdir(m0.path('st'))
    m0.umount()
    data = os.urandom(5000)
    h = sha(data)
    s3.put_object(Bucket=BUCKET, Key=f'{prefix}/st/{h}', Body=data)
    s3.put_object(Bucket=BUCKET, Key=f'{prefix}/st/notes.txt', Body=b'not a blob')
    lie = b'these bytes are not what the name says'
    liar = sha(b'something else')
    s3.put_object(Bucket=BUCKET, Key=f'{prefix}/st/{liar}', Body=lie)
    m = s3_mounts('reader', prefix)
    names = os.listdir(m.path('st'))
    assert h in names and liar in names and 'notes.txt' not in names
    with open(m.path('st', h), 'rb') as f:
        assert f.read() == data
    assert os.stat(m.path('st', h)).st_size == len(data)
    with pytest.raises(OSError) as e:
        with open(m.path('st', liar), 'rb') as f:
            f.read()
    assert e.value.errno == errno.EIO
    assert 'not to its name' in m.log()


def test_s3cmd_reads_what_blobfs_saved_and_the_other_way(s3_mounts, s3_cluster, prefix, tmp_path):
    m = s3_mounts('a', prefix)
    os.mkdir(m.path('st'))
    data = os.urandom(200000)
    h = save(m, 'st', 'f', data)
    wait_for('the upload', lambda: object_bytes(s3_cluster.client(), f'{prefix}/st/{h}'))
    out = tmp_path / 'got'
    s3_cluster.s3cmd('get', f's3://{BUCKET}/{prefix}/st/{h}', str(out))
    assert out.read_bytes() == data
    theirs = tmp_path / 'theirs'
    theirs.write_bytes(os.urandom(70000))
    ht = sha(theirs.read_bytes())
    s3_cluster.s3cmd('put', str(theirs), f's3://{BUCKET}/{prefix}/st/{ht}')
    assert ht in os.listdir(m.path('st'))   # a listing asks the bucket
    with open(m.path('st', ht), 'rb') as f:
        assert f.read() == theirs.read_bytes()


def test_daemon_killed_in_the_middle_of_an_upload(s3_mounts, s3, prefix, tmp_path, proxy):
    """SIGKILL while the parts of a 70 MiB blob are on their way (over a
    link slowed to a few MB/s): the next mount resumes the upload (the parts
    that are there are not sent again) and the blob is whole and right, with
    no unfinished upload left in the bucket."""
    m = s3_mounts('a', prefix, endpoint=proxy.endpoint)
    os.mkdir(m.path('st'))
    src = tmp_path / 'big'
    with open(src, 'wb') as f:
        for _ in range(70):
            f.write(os.urandom(1 << 20))
    data = src.read_bytes()
    h = sha(data)
    key = f'{prefix}/st/{h}'
    proxy.delay = 0.01
    save(m, 'st', 'big', data)

    def parts_under_way():
        ups = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get('Uploads', [])
        return ups and s3.list_parts(Bucket=BUCKET, Key=key,
                                     UploadId=ups[0]['UploadId']).get('Parts')
    wait_for('a part uploaded', parts_under_way, timeout=60)
    mounting.kill_daemon(m)
    mounting.unmount_dead_mount(m.mnt)
    assert object_bytes(s3, key) is None   # killed before the upload completed
    proxy.delay = 0.0
    m.mount()
    assert h in os.listdir(m.path('st'))

    def uploaded():
        try:
            return s3.head_object(Bucket=BUCKET, Key=key)
        except s3.exceptions.ClientError:
            return None
    assert wait_for('the upload by the next mount', uploaded, timeout=120)['ContentLength'] == len(data)
    assert hashlib.sha256(object_bytes(s3, key)).hexdigest() == h
    assert 'not yet uploaded' in m.log()
    resumed = [line for line in m.log().splitlines() if 'resumed an upload' in line]
    assert resumed and ' 0 of its ' not in resumed[0], resumed
    assert not s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get('Uploads')


def test_no_unfinished_upload_is_left_behind(s3_mounts, s3, prefix):
    """Uploads of a key that other clients left unfinished: an upload that
    completes aborts them, and so does a try that finds the blob there."""
    m = s3_mounts('a', prefix)
    os.mkdir(m.path('st'))
    for what in ('uploaded here', 'already there'):
        data = os.urandom(65 << 20)
        key = f'{prefix}/st/{sha(data)}'
        for _ in range(2):
            s3.create_multipart_upload(Bucket=BUCKET, Key=key)
        if what == 'already there':
            s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        save(m, 'st', what.replace(' ', '-'), data)

        def done():
            return (not s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get('Uploads')
                    and object_bytes(s3, key) is not None)
        wait_for(f'{what}: the blob, and no upload left', done, timeout=120)
        assert hashlib.sha256(object_bytes(s3, key)).hexdigest() == sha(data)


def test_delete_during_a_multipart_upload_leaves_none(s3_mounts, s3, prefix, proxy):
    """A blob deleted while its parts are on their way: the upload is given
    up and aborted, and the object never appears."""
    m = s3_mounts('a', prefix, endpoint=proxy.endpoint)
    os.mkdir(m.path('st'))
    data = os.urandom(66 << 20)
    key = f'{prefix}/st/{sha(data)}'
    proxy.delay = 0.01
    h = save(m, 'st', 'big', data)
    wait_for('the upload under way', lambda: s3.list_multipart_uploads(
        Bucket=BUCKET, Prefix=key).get('Uploads'), timeout=60)
    os.unlink(m.path('st', h))
    assert not s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get('Uploads')
    proxy.delay = 0.0
    time.sleep(1)
    assert object_bytes(s3, key) is None
    assert h not in os.listdir(m.path('st'))


def test_two_mounts_share_a_prefix(s3_mounts, prefix):
    a = s3_mounts('a', prefix, 'remote_ttl=2')
    os.mkdir(a.path('st'))
    b = s3_mounts('b', prefix, 'remote_ttl=2')
    data = os.urandom(200000)
    h = save(a, 'st', 'f', data)
    # Saved on a, read on b (its lookup asks the object store).
    def on_b():
        try:
            with open(b.path('st', h), 'rb') as f:
                return f.read()
        except FileNotFoundError:
            return None
    assert wait_for('the blob on b', on_b) == data
    assert h in os.listdir(b.path('st'))
    # Deleted on b, gone from a within the ttl.
    assert os.path.exists(a.path('st', h))
    os.unlink(b.path('st', h))
    start = time.monotonic()
    wait_for('the delete to reach a', lambda: not os.path.exists(a.path('st', h)), timeout=10)
    assert time.monotonic() - start < 4
    assert h not in os.listdir(a.path('st'))


def test_unreachable_object_store_then_the_outbox_after_a_kill(s3_mounts, s3, prefix, proxy):
    m = s3_mounts('a', prefix, endpoint=proxy.endpoint)
    os.mkdir(m.path('st'))
    known = os.urandom(10000)
    hk = save(m, 'st', 'k', known)
    wait_for('the first upload', lambda: object_bytes(s3, f'{prefix}/st/{hk}'))
    remote_only = os.urandom(7000)
    hr = sha(remote_only)
    s3.put_object(Bucket=BUCKET, Key=f'{prefix}/st/{hr}', Body=remote_only)

    proxy.down()
    # Saves keep working (into the outbox) and are listed.
    data = os.urandom(300000)
    h = save(m, 'st', 'offline', data)
    assert h in os.listdir(m.path('st'))
    with open(m.path('st', h), 'rb') as f:
        assert f.read() == data
    # A blob only the object store has cannot be read: EIO, at once.
    start = time.monotonic()
    with pytest.raises(OSError) as e:
        with open(m.path('st', hr), 'rb') as f:
            f.read()
    assert e.value.errno in (errno.EIO, errno.ENOENT)
    assert time.monotonic() - start < 15
    time.sleep(1)
    assert object_bytes(s3, f'{prefix}/st/{h}') is None
    assert 'does not answer' in m.log()

    # Killed with the blob only in the outbox; the next mount uploads it.
    mounting.kill_daemon(m)
    mounting.unmount_dead_mount(m.mnt)
    proxy.up()
    m.mount()
    assert wait_for('the upload after the remount',
                    lambda: object_bytes(s3, f'{prefix}/st/{h}')) == data
    assert 'not yet uploaded' in m.log()


def test_cache_bound(s3_mounts, s3, prefix, proxy):
    m0 = s3_mounts('maker', prefix)
    os.mkdir(m0.path('st'))
    m0.umount()
    blobs = [os.urandom(300 << 10) for _ in range(6)]
    for data in blobs:
        s3.put_object(Bucket=BUCKET, Key=f'{prefix}/st/{sha(data)}', Body=data)
    m = s3_mounts('a', prefix, 'cache_size=1M', endpoint=proxy.endpoint)
    # Reading 1.8 MiB through a 1 MiB cache: the read cache makes room.
    for data in blobs:
        with open(m.path('st', sha(data)), 'rb') as f:
            assert f.read() == data
    assert 'evicted' in m.log()
    # With the object store away, the outbox alone may not pass the bound.
    proxy.down()
    saved = []
    with pytest.raises(OSError) as e:
        for i in range(5):
            saved.append(save(m, 'st', f'o{i}', os.urandom(300 << 10)))
    assert e.value.errno == errno.ENOSPC
    assert len(saved) == 3
    proxy.up()


def test_store_destroyed_while_saves_run_does_not_hang(s3_mounts, prefix, tmp_path):
    """Saves over the native protocol (one connection per thread, small
    blobs) into a store that another connection destroys and makes again,
    over and over. A save used to take the catalogue's lock (a reference
    for its upload) while it held the store's save_lock, which a removal
    waits for holding the catalogue's lock: the daemon hung for good. Every
    answer must come (the client's timeout is 30 s), each an expected
    status: saved, already stored or not found (the store just gone)."""
    from blobfs_test import native
    sock = tmp_path / 'n.sock'
    m = s3_mounts('a', prefix, f'native=unix:{sock}')
    address = f'unix:{sock}'
    stop = threading.Event()
    answers, problems = {}, []

    def saver(t):
        try:
            with native.Client(address) as c:
                i = 0
                while not stop.is_set():
                    status, _ = c.blob_save('st', b'saver %d blob %d' % (t, i))
                    answers[status] = answers.get(status, 0) + 1
                    i += 1
        except Exception as e:   # noqa: BLE001 - reported below
            problems.append(f'saver {t}: {e!r}')

    with native.Client(address) as admin:
        assert admin.store_create('st')[0] == 'ok'
        savers = [threading.Thread(target=saver, args=(t,)) for t in range(3)]
        for t in savers:
            t.start()
        rounds = 0
        try:
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and not problems:
                time.sleep(0.05)
                assert admin.store_destroy('st')[0] in ('ok', 'not-found')
                assert admin.store_create('st')[0] in ('ok', 'exists')
                rounds += 1
        finally:
            stop.set()
            for t in savers:
                t.join(60)
        assert not any(t.is_alive() for t in savers), 'a save never got its answer: hung'
    assert not problems, problems
    assert set(answers) <= {'ok', 'exists', 'not-found'}, answers
    assert answers.get('ok', 0) > rounds, (rounds, answers)
    print(f'{rounds} destroys while saving: {answers}')


def test_a_full_outbox_never_loses_a_save_it_accepted(s3_mounts, prefix, proxy):
    """The object store away and the outbox full (cache_size=1M, 900 KiB
    waiting): two threads save the same 200 KiB at the same moment, 150
    times, each its own file. Each close() either fails with ENOSPC or
    returned 0 with the blob in the store. A save that found no room used
    to delete its new outbox copy after the fact, when the other save of the
    same content may already have returned 0 on it (it was "already
    there"): that blob was lost."""
    m = s3_mounts('a', prefix, 'cache_size=1M', endpoint=proxy.endpoint)
    os.mkdir(m.path('st'))
    proxy.down()
    try:
        for i in range(3):
            save(m, 'st', f'fill{i}', os.urandom(300 << 10))
        rounds = 150
        contents = [os.urandom(200 << 10) for _ in range(rounds)]
        barrier = threading.Barrier(2)
        accepted, refused, problems = [set(), set()], [0], []

        def writer(t):
            for i, data in enumerate(contents):
                barrier.wait()
                try:
                    with open(m.path('st', 'incoming', f't{t}-{i}'), 'wb') as f:
                        f.write(data)
                    accepted[t].add(i)
                except OSError as e:
                    if e.errno == errno.ENOSPC:
                        refused[0] += 1
                    else:
                        problems.append(f'writer {t}, round {i}: {e!r}')
        threads = [threading.Thread(target=writer, args=(t,)) for t in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        assert not problems, problems[:5]
        assert refused[0] > 0, 'the outbox was never full: the test tested nothing'
        listed = set(os.listdir(m.path('st')))
        lost = [i for i in sorted(accepted[0] | accepted[1]) if sha(contents[i]) not in listed]
        assert not lost, f'{len(lost)} saves returned 0 and are not in the store: rounds {lost[:10]}'
        print(f'accepted: {len(accepted[0])} and {len(accepted[1])} of {rounds}, '
              f'{refused[0]} ENOSPC')
    finally:
        proxy.up()


def test_large_blob_goes_in_parts(s3_mounts, s3, prefix, tmp_path):
    m = s3_mounts('a', prefix)
    os.mkdir(m.path('st'))
    src = tmp_path / 'big'
    with open(src, 'wb') as f:
        for _ in range(70):
            f.write(os.urandom(1 << 20))
    data = src.read_bytes()
    h = save(m, 'st', 'big', data)
    key = f'{prefix}/st/{h}'

    def uploaded():
        try:
            return s3.head_object(Bucket=BUCKET, Key=key)
        except s3.exceptions.ClientError:
            return None
    head = wait_for('the multipart upload', uploaded, timeout=120)
    assert head['ContentLength'] == len(data)
    assert head['ETag'].strip('"').endswith('-5')   # 16 MiB parts: 4 full and one of 6 MiB
    assert hashlib.sha256(object_bytes(s3, key)).hexdigest() == h


def superseded_write(m, store, name, first, rest, pause):
    """Writes first, fsyncs (a tentative save of it), waits pause seconds,
    writes rest and closes: the fsync's blob is superseded."""
    w = os.open(m.path(store, 'incoming', name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(w, first)
        os.fsync(w)
        if callable(pause):
            pause()
        else:
            time.sleep(pause)
        os.write(w, rest)
    finally:
        os.close(w)


@pytest.mark.parametrize('pause', [0, 1.5])
def test_superseded_save_takes_back_only_what_it_uploaded(s3_mounts, s3, prefix, pause):
    """A close does not ask the object store whether the blob is there (the
    upload does, If-None-Match): a superseded save deletes the object only
    when its own upload created it, never one put there by someone else."""
    m = s3_mounts('a', prefix)
    os.mkdir(m.path('st'))
    # Put there by another tool: this mount has never heard of it.
    theirs = os.urandom(5000)
    s3.put_object(Bucket=BUCKET, Key=f'{prefix}/st/{sha(theirs)}', Body=theirs)
    superseded_write(m, 'st', 'a', theirs, b' and more', pause)
    assert object_bytes(s3, f'{prefix}/st/{sha(theirs)}') == theirs
    assert sha(theirs) in os.listdir(m.path('st'))
    final = theirs + b' and more'
    assert wait_for('the final blob', lambda: object_bytes(s3, f'{prefix}/st/{sha(final)}')) == final
    # New content: taken back, from the bucket too once its upload made it.
    mine = os.urandom(6000)
    key = f'{prefix}/st/{sha(mine)}'
    uploaded = (lambda: wait_for('the upload of the fsync\'s content',
                                 lambda: object_bytes(s3, key))) if pause else 0
    superseded_write(m, 'st', 'b', mine, b' and more', uploaded)
    wait_for('the superseded object gone', lambda: object_bytes(s3, key) is None)
    assert sha(mine) not in os.listdir(m.path('st'))
    final = mine + b' and more'
    assert wait_for('the final blob', lambda: object_bytes(s3, f'{prefix}/st/{sha(final)}')) == final
    m.remount()
    assert sorted(os.listdir(m.path('st'))) == sorted(
        ['incoming', sha(theirs), sha(theirs + b' and more'), sha(final)])


def test_stores_made_and_removed_through_another_mount(s3_mounts, prefix):
    a = s3_mounts('a', prefix, 'remote_ttl=2')
    b = s3_mounts('b', prefix, 'remote_ttl=2')
    os.mkdir(a.path('new'))
    h = save(a, 'new', 'f', b'made on a')
    # b sees the store (and its blob) within its ttl, by listing or by name.
    wait_for('the store on b', lambda: 'new' in os.listdir(b.path()), timeout=10)
    with open(b.path('new', h), 'rb') as f:
        assert f.read() == b'made on a'
    os.unlink(a.path('new', h))
    os.unlink(a.path('new', 'incoming', 'f'))
    os.rmdir(a.path('new'))
    wait_for('the store gone from b', lambda: 'new' not in os.listdir(b.path()), timeout=10)
    assert 'gone' in b.log()


def test_radosgw_killed_and_restarted_under_saves_and_reads(s3_mounts, s3, prefix, s3_cluster):
    """radosgw goes away (SIGKILL) for a few seconds while a thread saves
    blobs and another reads cached ones: no operation hangs, every save
    whose close() succeeded ends up in the bucket once radosgw is back, and
    the cache's data directories check clean."""
    m = s3_mounts('a', prefix)
    os.mkdir(m.path('st'))
    cached = [os.urandom(20000 + i) for i in range(5)]
    for i, data in enumerate(cached):
        save(m, 'st', f'c{i}', data)
    wait_for('the first uploads', lambda: all(object_bytes(s3, f'{prefix}/st/{sha(d)}')
                                              for d in cached))
    saved, errors, stop = [], [], threading.Event()

    def saver():
        i = 0
        while not stop.is_set():
            data = os.urandom(5000 + i)
            try:
                saved.append(save(m, 'st', f's{i}', data))
            except OSError as e:
                errors.append(e)
            i += 1
            time.sleep(0.02)

    def reader():
        while not stop.is_set():
            for data in cached:
                with open(m.path('st', sha(data)), 'rb') as f:
                    if f.read() != data:
                        errors.append(AssertionError('a cached blob read back wrong'))

    threads = [threading.Thread(target=saver), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        subprocess.run([ceph.CEPH_DEV, 'kill-rgw'], check=True, stdin=subprocess.DEVNULL,
                       capture_output=True)
        time.sleep(3)
    finally:
        subprocess.run([ceph.CEPH_DEV, 'start-rgw'], check=True, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=300)
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), 'an operation hung'
    assert not errors, errors[:3]
    assert len(saved) > 20
    # Everything acknowledged reaches the bucket.
    wait_for('every save uploaded',
             lambda: set(saved) <= {k.rsplit('/', 1)[1] for k in keys(s3, f'{prefix}/st/')},
             timeout=120)
    assert 'does not answer' in m.log() and 'answers again' in m.log()
    m.umount()
    for part in ('outbox', 'clean'):
        r = mounting.blobfs_tool('fsck', m.mnt.rsplit('/', 1)[0] + f'/acache/{part}')
        assert r.returncode == 0, r.stdout + r.stderr
