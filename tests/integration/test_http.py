"""The HTTP API (docs/FORMAT.md, "The HTTP API (version 1)") beside a mount
(-o http=ADDR) and without it (blobfs serve): every route and its statuses
on one keep-alive connection, and the same with curl (the reference's
clients use it); a blob's headers (ETag, Cache-Control, Last-Modified,
ranges, 304); the verified upload; a damaged blob never sent whole; paged
listings and names that are not UTF-8; the mount and the network on one
daemon; the reference's randomized model test over HTTP; who may do what
(anonymous clients on loopback, IPv6 loopback or elsewhere with and without
http_public, tokens read only or limited to stores or acting as another
user, the tokens file's mode and its reload on SIGHUP, every refusal
logged); what must not hurt the daemon (many connections, a slow client,
malformed requests, conflicting or lying lengths, huge headers, a body
larger than the store takes or than the space left); a 256 MiB blob
streamed both ways without the daemon's memory growing with it.

The client is blobfs_test.http, written from the document. Every test
starts its own daemon; tokens are written to a file of mode 0600 (TOKENS);
anonymous requests are those without a token.
"""

import email.utils
import hashlib
import json
import os
import random
import re
import signal
import shutil
import socket
import struct
import subprocess
import threading
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from blobfs_test.http import (Client, Raw, link_next, split_address, wait_address,
                               write_tokens)
from blobfs_test.mounting import vm_hwm_kib
from blobfs_test.packs import parse_store

MiB = 1 << 20

RW = 'tok-rw-0123456789abcdef'            # reads and writes as the daemon's user (root)
RO = 'tok-ro-0123456789abcdef'            # reads only
LIMITED = 'tok-limited-0123456789ab'      # rw, stores a, n and b'caf\xe9' only
USER = 'tok-u1000-0123456789abc'          # rw as uid 1000, gid 1000
TOKENS = f"""# the tokens of the tests
{RW} rw

{RO} ro
{LIMITED} rw store=a store=n store=caf\\xe9
{USER} rw user=1000:1000
"""


def sha(data):
    return hashlib.sha256(data).hexdigest()


def wait_until(cond, timeout=5, what='condition'):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f'{what}: not within {timeout}s'
        time.sleep(0.05)


def serve_mount(make_mount, tmp_path, name='', options='', tokens=TOKENS, **kwargs):
    """A mount that also serves HTTP on a free port of 127.0.0.1, with the
    tokens file TOKENS; .address is where, .tokens the file."""
    path = tmp_path / f'{name}tokens'
    write_tokens(path, tokens)
    opts = f'http=127.0.0.1:0,tokens={path}' + (f',{options}' if options else '')
    m = make_mount(name=name, extra_args=['-o', opts], **kwargs)
    m.address = current_address(m)
    m.tokens = str(path)
    return m


def current_address(m):
    """The HTTP address of the daemon's current run (its own log file)."""
    return wait_address(lambda: Path(m.log_files[-1]).read_text(errors='replace'),
                        alive=lambda: m.proc is not None and m.proc.poll() is None)


@pytest.fixture
def served(make_mount, tmp_path):
    return serve_mount(make_mount, tmp_path)


def assert_serving(m):
    """The daemon is alive, mounted and answers over HTTP."""
    assert m.proc is not None and m.proc.poll() is None, 'the daemon died'
    assert m.mounted
    with Client(m.address, RW) as c:
        assert c.store_list().status == 200


def allow_set(r):
    return {v.strip().upper() for v in (r.header('Allow') or '').split(',') if v.strip()}


def saved_hash(r):
    """The hash a save answers: a JSON string (or, for 409, possibly inside
    the error object: the document says "409 and the hash")."""
    value = r.json()
    if isinstance(value, dict):
        found = [v for v in value.values() if isinstance(v, str) and re.fullmatch('[0-9a-f]{64}', v)]
        return found[0] if found else value
    return value


def assert_error(r, status, error):
    assert r.status == status, r
    assert r.error == error, r


def assert_refused(r, *errors):
    """A refusal: 401 (with WWW-Authenticate: Bearer) or 403, as allowed."""
    statuses = {'unauthorized': 401, 'forbidden': 403}
    assert r.status in [statuses[e] for e in errors], r
    assert r.error == {401: 'unauthorized', 403: 'forbidden'}[r.status], r
    if r.status == 401:
        assert (r.header('WWW-Authenticate') or '').startswith('Bearer'), r.headers


# --------------------------------------------------------------------------
# the routes


def test_every_route_and_its_statuses(served):
    """Each route answers what the table says, errors are JSON with "error",
    and all of it on one keep-alive connection."""
    with Client(served.address, RW) as c:
        r = c.store_list()
        assert r.status == 200 and r.json() == []
        port = c.local_port()
        assert c.store_create('a').status == 201
        assert_error(c.store_create('a'), 409, 'already-exists')
        assert c.store_create('b').status == 201
        assert c.store_list().json() == ['a', 'b']
        # percent-decoded names
        assert c.request('PUT', '/stores/caf%C3%A9').status == 201
        assert c.request('PUT', '/stores/two%20words').status == 201
        assert c.store_list().json() == ['a', 'b', 'café', 'two words']
        assert os.path.isdir(served.path('two words'))
        assert c.request('DELETE', '/stores/caf%C3%A9').status == 204
        assert c.request('DELETE', '/stores/two%20words').status == 204
        # blob_hash
        data = os.urandom(100000)
        h = sha(data)
        r = c.blob_hash(data)
        assert r.status == 200 and r.json() == h
        r = c.blob_hash(b'')
        assert r.status == 200 and r.json() == sha(b'')
        # save, again
        r = c.blob_save('a', data)
        assert r.status == 201 and r.json() == h
        assert urllib.parse.urlsplit(r.header('Location')).path == f'/stores/a/blobs/{h}'
        r = c.blob_save('a', data)
        assert r.status == 409 and saved_hash(r) == h, r
        others = [os.urandom(n) for n in (0, 1, 5000)]
        for o in others:
            r = c.blob_save('a', o)
            assert r.status == 201 and r.json() == sha(o)
        r = c.blob_list('a')
        assert r.status == 200 and r.json() == sorted([h] + [sha(o) for o in others])
        assert c.blob_list('b').json() == []
        # HEAD, GET
        r = c.blob_info('a', h)
        assert r.status == 200 and int(r.header('Content-Length')) == len(data) and r.body == b''
        r = c.blob_load('a', h)
        assert r.status == 200 and r.body == data
        r = c.blob_load('a', sha(b''))
        assert r.status == 200 and r.body == b''
        assert_error(c.blob_load('b', h), 404, 'not-found')
        assert c.blob_info('b', h).status == 404
        # DELETE blob
        assert c.blob_delete('a', h).status == 204
        assert_error(c.blob_delete('a', h), 404, 'not-found')
        assert c.blob_info('a', h).status == 404
        assert h not in c.blob_list('a').json()
        # an unknown store
        for r in (c.blob_list('nope'), c.blob_load('nope', h), c.blob_delete('nope', h),
                  c.store_destroy('nope')):
            assert_error(r, 404, 'not-found')
        assert c.blob_info('nope', h).status == 404
        assert not os.path.exists(served.path('nope'))
        # bad hex
        for bad in ('xyz', h.upper(), h[:63], h + '0', 'g' * 64, h[:62] + '%30'):
            assert_error(c.request('GET', f'/stores/a/blobs/{bad}'), 400, 'invalid-argument')
            assert c.request('HEAD', f'/stores/a/blobs/{bad}').status == 400
            assert_error(c.request('DELETE', f'/stores/a/blobs/{bad}'), 400, 'invalid-argument')
        # names a store may not have
        for bad in ('.x', '%2F', 'a%2Fb', '%2Ex', 'x' * 256, 'a%00b', '..'):
            assert_error(c.request('PUT', f'/stores/{bad}'), 400, 'invalid-argument')
            assert_error(c.request('GET', f'/stores/{bad}/blobs'), 400, 'invalid-argument')
            assert_error(c.request('DELETE', f'/stores/{bad}'), 400, 'invalid-argument')
        long_name = 'y' * 255
        assert c.store_create(long_name).status == 201
        assert c.store_destroy(long_name).status == 204
        assert c.store_list().json() == ['a', 'b']
        # unknown paths
        for path in ('/nothing', '/stores/a/other', '/blob_hash/x', '/storesx'):
            assert_error(c.request('GET', path), 404, 'not-found')
        # a path under a blob's: "not a hash" (400) or "no such path" (404)
        r = c.request('GET', f'/stores/a/blobs/{h}/x')
        assert (r.status, r.error) in ((400, 'invalid-argument'), (404, 'not-found')), r
        # DELETE store, again
        assert c.store_destroy('a').status == 204
        assert_error(c.store_destroy('a'), 404, 'not-found')
        assert c.store_list().json() == ['b']
        assert not os.path.exists(served.path('a'))
        # all of it on one connection
        assert c.local_port() == port and not c.closed_after, \
            f'the server closed the keep-alive connection after {c.closed_after}'
        # methods a route does not have (the server may close after them)
        for method, path, allowed in (
                ('POST', '/stores', {'GET'}),
                ('DELETE', '/stores', {'GET'}),
                ('GET', '/stores/b', {'PUT', 'DELETE'}),
                ('PATCH', '/stores/b', {'PUT', 'DELETE'}),
                ('PUT', '/stores/b/blobs', {'GET', 'POST'}),
                ('DELETE', '/stores/b/blobs', {'GET', 'POST'}),
                ('POST', f'/stores/b/blobs/{sha(b"")}', {'GET', 'HEAD', 'PUT', 'DELETE'}),
                ('GET', '/blob_hash', {'POST'})):
            r = c.request(method, path)
            assert_error(r, 405, 'method-not-allowed')
            assert allowed <= allow_set(r), (method, path, r.header('Allow'))
            assert method not in allow_set(r)
        # errors of requests with a body (the server may close after them)
        for r in (c.blob_save('nope', b'x'), c.blob_put('nope', sha(b'x'), b'x')):
            assert_error(r, 404, 'not-found')
        for bad in ('.x', '%2F', 'x' * 256):
            assert_error(c.request('POST', f'/stores/{bad}/blobs', body=b'abc'), 400,
                         'invalid-argument')
        assert not os.path.exists(served.path('nope'))
        # a chunked body is a body with a length
        r = c.request('POST', '/stores/b/blobs', body=iter([b'chunked ', b'body']))
        assert r.status == 201 and r.json() == sha(b'chunked body')
    # no Content-Length and no chunked encoding: 411
    with Raw(served.address) as raw:
        raw.send(f'POST /stores/b/blobs HTTP/1.1\r\nHost: x\r\n'
                 f'Authorization: Bearer {RW}\r\n\r\n'.encode())
        status, headers = raw.read_head()
        assert status == 411
        assert json.loads(raw.read_body(headers))['error'] == 'length-required'
    # "/" is the page for people (HTML), an unknown path 404
    with Client(served.address) as c:
        r = c.request('GET', '/')
        assert r.status == 200 and r.headers['Content-Type'].startswith('text/html')
        assert_error(c.request('GET', '/nope'), 404, 'not-found')


def curl(address, args, token=RW, out=None, headers_out=None):
    cmd = ['curl', '-s', '-S', '--max-time', '60', '-o', str(out or os.devnull),
           '-w', '%{http_code}']
    if headers_out:
        cmd += ['-D', str(headers_out)]
    if token:
        cmd += ['-H', f'Authorization: Bearer {token}']
    cmd += [a.replace('URL', f'http://{address}') for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, (cmd, r.stderr)
    return int(r.stdout)


def test_the_core_routes_with_curl(served, tmp_path):
    """curl as the reference's clients use it: PUT with -T (a 2 MiB file:
    curl sends Expect: 100-continue), POST with --data-binary, GET, HEAD,
    ranges, DELETE."""
    out = tmp_path / 'out'
    small = tmp_path / 'small'
    big = tmp_path / 'big'
    small.write_bytes(os.urandom(5000))
    big.write_bytes(os.urandom(2 * MiB + 3))
    hs, hb = sha(small.read_bytes()), sha(big.read_bytes())
    a = served.address
    assert curl(a, ['-X', 'PUT', 'URL/stores/c']) == 201
    assert curl(a, ['-X', 'PUT', 'URL/stores/c'], out=out) == 409
    assert json.loads(out.read_bytes())['error'] == 'already-exists'
    assert curl(a, ['--data-binary', f'@{small}', 'URL/blob_hash'], out=out) == 200
    assert json.loads(out.read_bytes()) == hs
    assert curl(a, ['--data-binary', f'@{small}', 'URL/stores/c/blobs'], out=out) == 201
    assert json.loads(out.read_bytes()) == hs
    assert curl(a, ['-T', str(big), '-X', 'PUT', f'URL/stores/c/blobs/{hb}']) == 201
    assert curl(a, ['--data-binary', f'@{big}', 'URL/stores/c/blobs'], out=out) == 409
    assert curl(a, ['-T', str(big), '-X', 'PUT', f'URL/stores/c/blobs/{hs}'], out=out) == 400
    assert json.loads(out.read_bytes())['error'] == 'invalid-argument'
    assert curl(a, ['URL/stores/c/blobs'], out=out) == 200
    assert json.loads(out.read_bytes()) == sorted([hs, hb])
    assert curl(a, [f'URL/stores/c/blobs/{hb}'], out=out) == 200
    assert out.read_bytes() == big.read_bytes()
    hdr = tmp_path / 'headers'
    assert curl(a, ['-I', f'URL/stores/c/blobs/{hb}'], headers_out=hdr) == 200
    assert re.search(rf'(?im)^content-length: {big.stat().st_size}\r?$', hdr.read_text())
    assert curl(a, ['-r', '0-9', f'URL/stores/c/blobs/{hb}'], out=out) == 206
    assert out.read_bytes() == big.read_bytes()[:10]
    assert curl(a, ['URL/stores'], out=out, token=None) == 200
    assert json.loads(out.read_bytes()) == ['c']
    assert curl(a, ['-X', 'DELETE', f'URL/stores/c/blobs/{hs}']) == 204
    assert curl(a, ['-X', 'DELETE', f'URL/stores/c/blobs/{hs}']) == 404
    assert curl(a, [f'URL/stores/c/blobs/{hs}']) == 404
    assert curl(a, ['-X', 'DELETE', 'URL/stores/c']) == 204
    assert curl(a, ['-X', 'DELETE', 'URL/stores/c']) == 404
    assert curl(a, ['URL/stores'], out=out) == 200 and json.loads(out.read_bytes()) == []


def test_a_blobs_headers_ranges_and_304(served):
    """ETag, Cache-Control immutable, Last-Modified (the mount's mtime),
    Accept-Ranges, Content-Type; If-None-Match answers 304; one range 206
    with its Content-Range, one past the end 416 with bytes */SIZE, two
    ranges the whole blob."""
    data = os.urandom(1000)
    h = sha(data)
    with Client(served.address, RW) as c:
        assert c.store_create('s').status == 201
        assert c.blob_save('s', data).status == 201
        mtime = int(os.stat(served.path('s', h)).st_mtime)
        for r in (c.blob_load('s', h), c.blob_info('s', h)):
            assert r.status == 200
            assert r.header('ETag') == f'"{h}"'
            cc = {v.strip() for v in r.header('Cache-Control').split(',')}
            assert {'public', 'max-age=31536000', 'immutable'} <= cc, cc
            assert r.header('Accept-Ranges') == 'bytes'
            assert r.header('Content-Type') == 'application/octet-stream'
            assert int(r.header('Content-Length')) == 1000
            lm = r.header('Last-Modified')
            assert lm is not None, 'a blob saved here has a known saved time'
            assert email.utils.parsedate_to_datetime(lm).timestamp() == mtime, (lm, mtime)
        for inm in (f'"{h}"', f'"{"0" * 64}", "{h}"'):
            r = c.blob_load('s', h, headers={'If-None-Match': inm})
            assert r.status == 304 and r.body == b'', (inm, r)
            assert r.header('ETag') == f'"{h}"'
        r = c.blob_load('s', h, headers={'If-None-Match': f'"{"0" * 64}"'})
        assert r.status == 200 and r.body == data
        for rng, first, last in (('bytes=0-9', 0, 9), ('bytes=10-', 10, 999),
                                 ('bytes=-5', 995, 999), ('bytes=999-999', 999, 999),
                                 ('bytes=0-999', 0, 999)):
            r = c.blob_load('s', h, headers={'Range': rng})
            assert r.status == 206, (rng, r)
            assert r.header('Content-Range') == f'bytes {first}-{last}/1000', rng
            assert r.body == data[first:last + 1], rng
            assert int(r.header('Content-Length')) == last + 1 - first
        unsatisfiable = []
        for rng in ('bytes=1000-', 'bytes=1000-1005', 'bytes=5000-6000'):
            r = c.blob_load('s', h, headers={'Range': rng})
            assert r.status == 416, (rng, r)
            assert r.header('Content-Range') == 'bytes */1000', rng
            unsatisfiable.append(r)
        r = c.blob_load('s', h, headers={'Range': 'bytes=0-9,20-29'})
        assert r.status == 200 and r.body == data
        # the connection survived all of it
        assert c.blob_load('s', h).body == data
        for r in unsatisfiable:   # an error's body is JSON
            assert_error(r, 416, 'range-not-satisfiable')


def test_a_verified_upload(served):
    """PUT /stores/s/blobs/HEX: the right bytes 201 then 409; bytes that do
    not hash to HEX 400 and nothing saved, neither under HEX nor under their
    own hash (the listing and the mount agree)."""
    data = os.urandom(300000)
    h = sha(data)
    with Client(served.address, RW) as c:
        assert c.store_create('v').status == 201
        r = c.blob_put('v', h, data)
        assert r.status == 201, r
        assert c.blob_put('v', h, data).status == 409
        assert c.blob_load('v', h).body == data
        wrong = os.urandom(300000)
        claimed = sha(b'something else')
        assert_error(c.blob_put('v', claimed, wrong), 400, 'invalid-argument')
        assert_error(c.blob_put('v', claimed, b''), 400, 'invalid-argument')
        assert c.blob_list('v').json() == [h]
        assert c.blob_info('v', claimed).status == 404
        assert c.blob_info('v', sha(wrong)).status == 404
        assert_error(c.blob_put('v', 'ab' * 31, wrong), 400, 'invalid-argument')
    assert sorted(n for n in os.listdir(served.path('v')) if n != 'incoming') == [h]
    assert not os.path.exists(served.path('v', claimed))
    assert not os.path.exists(served.path('v', sha(wrong)))


def get_to_the_end(address, path, headers=''):
    """GET on a socket of its own, reading until the server closes: (status,
    headers, every byte of the body that came)."""
    with Raw(address, timeout=30) as raw:
        raw.send(f'GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'
                 f'{headers}\r\n'.encode())
        status, head = raw.read_head()
        try:
            while raw.recv_some():
                pass
        except ConnectionResetError:
            pass
        return status, head, raw.buf


def test_damaged_bytes_are_never_sent(make_mount, tmp_path, metric):
    """A byte flipped in a chunk of a stored blob: a GET ends short (or
    answers 5xx before its headers) and every byte sent is the blob's; a
    range of intact chunks is exact; the daemon serves on."""
    m = serve_mount(make_mount, tmp_path)
    os.mkdir(m.path('d'))
    data = os.urandom(2 * MiB + 100)
    h = sha(data)
    with open(m.path('d', 'incoming', 'f'), 'wb') as f:
        f.write(data)
    m.umount()
    rec = next(r for recs in parse_store(m.data, 'd').values() for r in recs
               if r.hash == h and r.is_blob)
    chunk = 1 << rec.chunk_shift
    nchunks = (len(data) + chunk - 1) // chunk
    assert nchunks >= 3, nchunks
    bad = (nchunks * 2 // 3) * chunk + 17
    with open(rec.pack, 'r+b') as f:
        f.seek(rec.data_offset + bad)
        old = f.read(1)
        f.seek(rec.data_offset + bad)
        f.write(bytes([old[0] ^ 0x5a]))
    m.mount()
    m.address = current_address(m)
    status, head, body = get_to_the_end(m.address, f'/stores/d/blobs/{h}',
                                        f'Authorization: Bearer {RW}\r\n')
    metric(f'GET of a blob of {len(data)} bytes damaged at {bad}: {status}, '
           f'{len(body)} bytes of the body')
    if status == 200:
        assert int(head['content-length']) == len(data)
        assert len(body) < len(data), 'a damaged blob was sent whole'
        assert body == data[:len(body)], 'bytes that are not the blob\'s were sent'
        assert len(body) <= bad
    else:
        assert 500 <= status < 600, status
    # intact chunks: exact
    status, head, body = get_to_the_end(m.address, f'/stores/d/blobs/{h}',
                                        f'Range: bytes=0-{chunk - 1}\r\n')
    assert status == 206 and body == data[:chunk]
    # a range that starts in the damaged chunk
    start = (bad // chunk) * chunk
    status, head, body = get_to_the_end(m.address, f'/stores/d/blobs/{h}',
                                        f'Range: bytes={start}-\r\n')
    if status == 206:
        assert len(body) < len(data) - start and body == data[start:start + len(body)]
    else:
        assert 500 <= status < 600, status
    assert h in m.log(), m.log_tail()
    assert_serving(m)


# --------------------------------------------------------------------------
# listings


def test_paged_listings(served):
    """?limit=N gives N items and a Link rel="next" that gives the next page;
    the pages together are the whole list; ?after= starts after any name;
    the same for the stores. limit outside 1..100000 is 400."""
    os.mkdir(served.path('p'))
    blobs = set()
    for i in range(250):
        data = f'blob number {i}'.encode()
        with open(served.path('p', 'incoming', f'f{i}'), 'wb') as f:
            f.write(data)
        blobs.add(sha(data))
    full = sorted(blobs)
    with Client(served.address, RW) as c:
        assert c.blob_list('p').json() == full
        first = c.blob_list('p', '?limit=100')
        assert first.json() == full[:100]
        assert link_next(first.header('Link')) is not None, first.headers
        pages, items = c.all_pages('/stores/p/blobs', 100)
        assert [len(p) for p in pages] == [100, 100, 50]
        assert items == full
        r = c.blob_list('p', f'?after={full[99]}&limit=100')
        assert r.json() == full[100:200]
        r = c.blob_list('p', f'?after={full[-1]}&limit=100')
        assert r.status == 200 and r.json() == [] and link_next(r.header('Link')) is None
        probe = sha(b'not in the store')
        want = [x for x in full if x > probe][:7]
        assert c.blob_list('p', f'?after={probe}&limit=7').json() == want
        r = c.blob_list('p', '?limit=250')
        assert r.json() == full and link_next(r.header('Link')) is None
        assert c.blob_list('p', '?limit=100000').json() == full
        for bad in ('0', '100001', 'x', '-1'):
            assert_error(c.blob_list('p', f'?limit={bad}'), 400, 'invalid-argument')
        # stores
        names = ['p'] + [f's{i:02d}' for i in range(12)]
        for n in names[1:]:
            assert c.store_create(n).status == 201
        assert c.store_list().json() == sorted(names)
        pages, items = c.all_pages('/stores', 5)
        assert [len(p) for p in pages] == [5, 5, 3]
        assert items == sorted(names)
        assert c.store_list('?after=s05&limit=3').json() == ['s06', 's07', 's08']
        assert_error(c.store_list('?limit=0'), 400, 'invalid-argument')


def test_names_that_are_not_utf8(served):
    """The plain listing has U+FFFD for each byte that is not UTF-8 and JSON
    escapes; ?encoding=url gives every name exactly, percent-encoded; a
    percent-encoded name in a path reaches its store."""
    names = [b'caf\xe9', 'café'.encode(), b'x\xff\xfey', b'q"b\\s\x01t', b'plain']
    for n in names:
        os.mkdir(os.path.join(os.fsencode(served.mnt), n))
    by_bytes = sorted(names)
    with Client(served.address, RW) as c:
        r = c.store_list()
        assert r.status == 200
        assert r.json() == [n.decode('utf-8', 'replace') for n in by_bytes]
        assert r.json()[by_bytes.index(b'caf\xe9')] == 'caf\ufffd'
        assert r.json()[by_bytes.index(b'x\xff\xfey')] == 'x\ufffd\ufffdy'
        r = c.store_list('?encoding=url')
        assert r.status == 200
        listed = r.json()
        assert [urllib.parse.unquote_to_bytes(x) for x in listed] == by_bytes
        assert 'caf%C3%A9' in listed
        assert listed[by_bytes.index(b'caf\xe9')].upper() == 'CAF%E9'
        # the name as a path
        r = c.blob_save(b'caf\xe9', b'latin-1')
        assert r.status == 201
        assert c.request('GET', '/stores/caf%E9/blobs').json() == [sha(b'latin-1')]
        assert c.request('GET', '/stores/caf%C3%A9/blobs').json() == []
        assert c.blob_list(b'x\xff\xfey').status == 200
        assert c.blob_list(b'q"b\\s\x01t').status == 200
    with open(os.path.join(os.fsencode(served.mnt), b'caf\xe9', os.fsencode(sha(b'latin-1'))),
              'rb') as f:
        assert f.read() == b'latin-1'


# --------------------------------------------------------------------------
# the mount and the network


def test_the_mount_and_the_network_share_the_stores(served):
    """On one daemon: a store made over HTTP is a directory of the mount, a
    blob saved over HTTP is at once in the mount and one saved in the mount
    at once over HTTP; deletes on either side show on the other."""
    with Client(served.address, RW) as c:
        assert c.store_create('s').status == 201
        assert os.path.isdir(served.path('s'))
        assert os.stat(served.path('s')).st_mode & 0o777 == 0o755
        data = os.urandom(300000)
        h = c.blob_save('s', data).json()
        with open(served.path('s', h), 'rb') as f:
            assert f.read() == data
        other = os.urandom(5000)
        with open(served.path('s', 'incoming', 'f'), 'wb') as f:
            f.write(other)
        r = c.blob_load('s', sha(other))
        assert r.status == 200 and r.body == other
        assert c.blob_list('s').json() == sorted([h, sha(other)])
        os.unlink(served.path('s', h))
        assert c.blob_info('s', h).status == 404
        # deleted over HTTP: the mount's cached name goes
        os.stat(served.path('s', sha(other)))
        assert c.blob_delete('s', sha(other)).status == 204
        wait_until(lambda: not os.path.exists(served.path('s', sha(other))),
                   what='the mount still shows a blob deleted over HTTP')
        # looked up while absent, then saved over HTTP
        late = b'saved after a failed lookup'
        assert not os.path.exists(served.path('s', sha(late)))
        assert c.blob_save('s', late).status == 201
        wait_until(lambda: os.path.exists(served.path('s', sha(late))),
                   what='the mount does not show a blob saved over HTTP')
        # a store made in the mount is listed; one destroyed over HTTP goes
        os.mkdir(served.path('t'))
        assert c.store_list().json() == ['s', 't']
        assert c.store_destroy('s').status == 204
        wait_until(lambda: not os.path.exists(served.path('s')),
                   what='the mount still shows a store destroyed over HTTP')
        os.rmdir(served.path('t'))
        assert c.store_list().json() == []


def test_the_reference_model_test(served):
    """Weighted random operations over HTTP, existing and unknown names
    mixed, each answer checked against an in-memory model; then every store
    destroyed."""
    rng = random.Random(int(os.environ.get('TEST_SEED', '12345')))
    model = {}
    names = ['s0', 's1', 's2', 's3']
    pool = [rng.randbytes(rng.choice([0, 1, 100, 5000, 70000])) for _ in range(12)]
    with Client(served.address, RW) as c:
        for i in range(600):
            op = rng.choices(['storlist', 'storenew', 'storedel', 'blobhash', 'bloblist',
                              'blobinfo', 'blobload', 'blobsave', 'blobdrop'],
                             weights=[1, 3, 1, 2, 2, 4, 4, 8, 3])[0]
            s = rng.choice(names)
            b = rng.choice(pool)
            h = sha(b)
            if op == 'storlist':
                r = c.store_list()
                got, want = (r.status, r.json()), (200, sorted(model))
            elif op == 'storenew':
                got = c.store_create(s).status
                want = 409 if s in model else 201
                model.setdefault(s, {})
            elif op == 'storedel':
                got = c.store_destroy(s).status
                want = 204 if model.pop(s, None) is not None else 404
            elif op == 'blobhash':
                r = c.blob_hash(b)
                got, want = (r.status, r.json()), (200, h)
            elif op == 'bloblist':
                r = c.blob_list(s)
                got = (r.status, r.json() if r.status == 200 else None)
                want = (200, sorted(model[s])) if s in model else (404, None)
            elif op == 'blobinfo':
                r = c.blob_info(s, h)
                got = (r.status, r.header('Content-Length') if r.status == 200 else None)
                want = (200, str(len(b))) if h in model.get(s, {}) else (404, None)
            elif op == 'blobload':
                r = c.blob_load(s, h)
                got = (r.status, r.body if r.status == 200 else None)
                want = (200, b) if h in model.get(s, {}) else (404, None)
            elif op == 'blobsave':
                r = c.blob_save(s, b)
                got = (r.status, saved_hash(r) if r.status in (201, 409) else None)
                if s not in model:
                    want = (404, None)
                else:
                    want = (409, h) if h in model[s] else (201, h)
                    model[s][h] = b
            else:
                got = c.blob_delete(s, h).status
                want = 404 if s not in model or model[s].pop(h, None) is None else 204
            assert got == want, (i, op, s, h)
        for s in list(model):
            assert c.store_destroy(s).status == 204
        assert c.store_list().json() == []


# --------------------------------------------------------------------------
# who may do what

REFUSAL = re.compile(r'refus|forbid|denied|unauthori|not allowed|permission', re.I)


def refusal_lines(m):
    return sum(1 for line in m.log().splitlines() if REFUSAL.search(line))


def refused_and_logged(m, do, *errors, unlogged=None):
    """do() is refused as `errors` allow, and the log has one more line
    about a refusal ("Every refusal is logged"); a refusal without one fails
    at once, or is added to the list `unlogged` when there is one."""
    before = refusal_lines(m)
    r = do()
    assert_refused(r, *errors)
    deadline = time.monotonic() + 1
    while refusal_lines(m) <= before:
        if time.monotonic() > deadline:
            assert unlogged is not None, f'no log line for the refusal {r!r}'
            unlogged.append(r)
            break
        time.sleep(0.05)
    return r


def test_anonymous_loopback_clients_only_read(served):
    """Without a token, from loopback: reads what any user may (200), writes
    nothing (the document allows 401 "no token where one is needed" and 403
    "a read-only client writing"; either is accepted), and a store of mode
    0700 is refused; every refusal is logged."""
    with Client(served.address, RW) as c:
        assert c.store_create('pub').status == 201
        assert c.blob_save('pub', b'public').status == 201
        assert c.store_create('private').status == 201
        assert c.blob_save('private', b'secret').status == 201
    os.chmod(served.path('private'), 0o700)
    unlogged = []
    with Client(served.address) as anon:
        r = anon.store_list()
        assert r.status == 200 and r.json() == ['private', 'pub']
        assert anon.blob_list('pub').json() == [sha(b'public')]
        assert anon.blob_load('pub', sha(b'public')).body == b'public'
        assert anon.blob_info('pub', sha(b'public')).status == 200
        r = anon.blob_hash(b'hashing writes nothing')
        assert r.status == 200 and r.json() == sha(b'hashing writes nothing')
        for do in (lambda: anon.store_create('x'), lambda: anon.blob_save('pub', b'no'),
                   lambda: anon.blob_put('pub', sha(b'no'), b'no'),
                   lambda: anon.blob_delete('pub', sha(b'public')),
                   lambda: anon.store_destroy('pub'), lambda: anon.blob_list('private'),
                   lambda: anon.blob_load('private', sha(b'secret'))):
            refused_and_logged(served, do, 'unauthorized', 'forbidden', unlogged=unlogged)
    assert sorted(os.listdir(served.path())) == ['private', 'pub']
    with Client(served.address, RW) as c:
        assert c.blob_list('pub').json() == [sha(b'public')]
    # all of 127.0.0.0/8 is loopback
    with Client(served.address, source='127.0.0.2') as anon:
        assert anon.store_list().json() == ['private', 'pub']
        assert_refused(anon.store_create('x'), 'unauthorized', 'forbidden')
    assert not unlogged, f'refusals not logged: {unlogged}'


def test_ipv6_loopback(make_mount, tmp_path):
    """On [::1] an anonymous client is on loopback too: it reads."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(('::1', 0))
    except OSError:
        pytest.skip('no IPv6 loopback')
    path = tmp_path / 'tokens'
    write_tokens(path, TOKENS)
    m = make_mount(extra_args=['-o', f'http=[::1]:0,tokens={path}'])
    address = current_address(m)
    assert split_address(address)[0] == '::1', address
    os.mkdir(m.path('s'))
    with Client(address, RW) as c:
        assert c.blob_save('s', b'six').status == 201
    with Client(address) as anon:
        assert anon.store_list().json() == ['s']
        assert anon.blob_load('s', sha(b'six')).body == b'six'
        assert_refused(anon.blob_save('s', b'no'), 'unauthorized', 'forbidden')


def test_a_wrong_token_is_401(served):
    """An unknown token (also one a character short of a real one) is 401
    with WWW-Authenticate: Bearer, and writes nothing."""
    for token in ('tok-wrong-0123456789abcdef', RW[:-1], RW + 'x', RW.upper()):
        with Client(served.address, token) as c:
            refused_and_logged(served, lambda: c.store_create('x'), 'unauthorized')
    assert os.listdir(served.path()) == []


def test_a_read_only_token(served):
    """A ro token reads; every write is 403."""
    with Client(served.address, RW) as c:
        assert c.store_create('s').status == 201
        assert c.blob_save('s', b'x').status == 201
    with Client(served.address, RO) as c:
        assert c.store_list().json() == ['s']
        assert c.blob_load('s', sha(b'x')).body == b'x'
        for do in (lambda: c.store_create('t'), lambda: c.blob_save('s', b'y'),
                   lambda: c.blob_put('s', sha(b'y'), b'y'),
                   lambda: c.blob_delete('s', sha(b'x')), lambda: c.store_destroy('s')):
            refused_and_logged(served, do, 'forbidden')
    assert sorted(os.listdir(served.path('s'))) == sorted(['incoming', sha(b'x')])


def test_a_token_limited_to_stores(served):
    """store=a store=n store=caf\\xe9: GET /stores shows only those; a and the
    others of its list are read and written, b is 403 for everything; it
    creates and destroys only stores of its list."""
    with Client(served.address, RW) as c:
        for s in ('a', 'b'):
            assert c.store_create(s).status == 201
            assert c.blob_save(s, s.encode()).status == 201
    os.mkdir(os.path.join(os.fsencode(served.mnt), b'caf\xe9'))
    with Client(served.address, LIMITED) as c:
        assert c.store_list().json() == ['a', 'caf\ufffd']
        assert c.store_list('?encoding=url').json() == ['a', 'caf%E9']
        assert c.blob_list('a').json() == [sha(b'a')]
        assert c.blob_save('a', b'more').status == 201
        assert c.blob_delete('a', sha(b'more')).status == 204
        assert c.blob_save(b'caf\xe9', b'e').status == 201
        for do in (lambda: c.blob_list('b'), lambda: c.blob_load('b', sha(b'b')),
                   lambda: c.blob_save('b', b'no'), lambda: c.blob_delete('b', sha(b'b')),
                   lambda: c.store_destroy('b'), lambda: c.store_create('c')):
            refused_and_logged(served, do, 'forbidden')
        assert c.blob_info('b', sha(b'b')).status == 403
        assert c.store_create('n').status == 201
        assert c.store_list().json() == ['a', 'caf\ufffd', 'n']
        assert c.store_destroy('n').status == 204
        assert c.store_destroy('a').status == 204
    assert sorted(os.listdir(os.fsencode(served.mnt))) == sorted([b'b', b'caf\xe9'])
    with Client(served.address, RW) as c:
        assert c.blob_list('b').json() == [sha(b'b')]


def test_a_token_acting_as_another_user(served):
    """user=1000:1000 cannot write a root store of mode 0755 nor destroy it,
    cannot read one of mode 0700, but creates its own store (owned by 1000
    on the mount, mode 0755) and writes there."""
    os.mkdir(served.path('r'))
    os.chmod(served.path('r'), 0o755)
    os.mkdir(served.path('p'))
    os.chmod(served.path('p'), 0o700)
    with Client(served.address, RW) as c:
        assert c.blob_save('r', b'root').status == 201
    with Client(served.address, USER) as c:
        assert c.blob_list('r').json() == [sha(b'root')]
        assert c.blob_load('r', sha(b'root')).body == b'root'
        for do in (lambda: c.blob_save('r', b'no'), lambda: c.blob_delete('r', sha(b'root')),
                   lambda: c.store_destroy('r'), lambda: c.blob_list('p')):
            refused_and_logged(served, do, 'forbidden')
        assert c.store_create('u').status == 201
        st = os.stat(served.path('u'))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o755)
        r = c.blob_save('u', b'mine')
        assert r.status == 201
        assert os.path.exists(served.path('u', sha(b'mine')))
        assert c.blob_delete('u', sha(b'mine')).status == 204
        assert c.store_destroy('u').status == 204
    assert sorted(os.listdir(served.path())) == ['p', 'r']
    assert os.path.exists(served.path('r', sha(b'root')))


def test_a_tokens_file_others_may_read_is_refused_at_start(make_mount, tmp_path):
    """Mode 0644, or a file of another owner, is refused at start (the
    daemon does not start, or starts without its tokens and says why);
    mode 0400 is taken."""
    for name, mode, owner in (('loose', 0o644, 0), ('other', 0o600, 1000)):
        path = tmp_path / f'{name}tokens'
        write_tokens(path, TOKENS, mode=mode)
        os.chown(path, owner, owner)
        m = make_mount(name=name, mount=False,
                       extra_args=['-o', f'http=127.0.0.1:0,tokens={path}'])
        try:
            m.mount()
        except AssertionError:
            assert m.exit_codes and m.exit_codes[-1] != 0
            assert 'tokens' in m.log(), m.log_tail()
            continue
        # started anyway: the file's tokens must not work, and the log says why
        address = wait_address(m.log)
        with Client(address, RW) as c:
            assert_error(c.store_create('x'), 401, 'unauthorized')
        assert re.search(r'tokens', m.log()), m.log_tail()
        m.umount()
    m = serve_mount(make_mount, tmp_path, name='strict')
    os.chmod(m.tokens, 0o400)
    m.umount()
    m.mount()
    m.address = current_address(m)
    with Client(m.address, RW) as c:
        assert c.store_create('x').status == 201


def test_the_tokens_file_is_reloaded_on_sighup(served):
    """A token added, SIGHUP: it works. A file that does not parse, or of
    mode 0644, keeps the tokens loaded before (and the log says why). A
    token removed, SIGHUP: 401."""
    new = 'tok-new-0123456789abcdef'

    def status(token):
        with Client(served.address, token) as c:
            r = c.store_create('x')
            if r.status == 201:
                assert c.store_destroy('x').status == 204
            return r.status

    def token_lines():
        return len(re.findall(r'(?im)^.*token.*$', served.log()))

    assert status(new) == 401
    write_tokens(served.tokens, TOKENS + f'{new} rw\n')
    os.kill(served.pid, signal.SIGHUP)
    wait_until(lambda: status(new) == 201, what='the new token after SIGHUP')
    for broken, mode in ((f'{RW} rw\nshort rw\n', 0o600),
                         (f'{RW} rw\n{"n" * 20} rx\n', 0o600),
                         (f'{RW} rw\n{RO} rw user=\n', 0o600),
                         (f'{RW} rw\n', 0o644)):
        before = token_lines()
        write_tokens(served.tokens, broken, mode=mode)
        os.kill(served.pid, signal.SIGHUP)
        wait_until(lambda: token_lines() > before, what=f'a log line about {broken!r}')
        time.sleep(0.2)
        assert status(new) == 201, broken
        assert status(RW) == 201, broken
        with Client(served.address, RO) as c:
            assert c.store_create('x').status == 403, broken
    write_tokens(served.tokens, TOKENS)
    os.kill(served.pid, signal.SIGHUP)
    wait_until(lambda: status(new) == 401, what='the token removed after SIGHUP')
    assert status(RW) == 201
    assert_serving(served)


def global_ipv4():
    """An address of this machine that is not loopback, or None."""
    try:
        out = subprocess.run(['ip', '-4', '-o', 'addr', 'show', 'scope', 'global'],
                             capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return None
    m = re.search(r'inet (\d+\.\d+\.\d+\.\d+)/', out)
    return m.group(1) if m else None


def test_anonymous_clients_from_elsewhere_need_http_public(make_mount, tmp_path):
    """From a non-loopback address an anonymous client is refused (401)
    unless the server has -o http_public: then it reads, never writes. A
    token works from anywhere."""
    ip = global_ipv4()
    if ip is None:
        pytest.skip('no non-loopback IPv4 address on this machine')
    unlogged = []
    for name, public in (('closed', False), ('public', True)):
        path = tmp_path / f'{name}tokens'
        write_tokens(path, TOKENS)
        opts = f'http={ip}:0,tokens={path}' + (',http_public' if public else '')
        m = make_mount(name=name, extra_args=['-o', opts])
        address = wait_address(m.log)
        os.mkdir(m.path('s'))
        with Client(address, RW) as c:
            assert c.blob_save('s', b'x').status == 201
        with Client(address) as anon:
            with socket.create_connection((ip, int(address.rsplit(':', 1)[1]))) as probe:
                assert probe.getsockname()[0] == ip   # not from loopback
            if public:
                assert anon.store_list().json() == ['s']
                assert anon.blob_load('s', sha(b'x')).body == b'x'
                assert_refused(anon.blob_save('s', b'y'), 'unauthorized', 'forbidden')
            else:
                for do in (anon.store_list, lambda: anon.blob_load('s', sha(b'x'))):
                    refused_and_logged(m, do, 'unauthorized', unlogged=unlogged)
        m.umount()
    assert not unlogged, f'refusals not logged: {unlogged}'


# --------------------------------------------------------------------------
# what must not hurt the daemon


def test_200_connections_at_once(served):
    """200 connections open at once, each a GET: all answered."""
    data = os.urandom(20000)
    with Client(served.address, RW) as c:
        assert c.store_create('m').status == 201
        h = c.blob_save('m', data).json()
    clients = [Client(served.address) for _ in range(200)]
    for cl in clients:
        cl.conn.connect()
    errors = []
    start = threading.Barrier(len(clients))

    def work(cl):
        try:
            start.wait(30)
            r = cl.blob_load('m', h)
            assert r.status == 200 and r.body == data, r
        except Exception as e:   # collected, asserted below
            errors.append(repr(e))
        finally:
            cl.close()
    threads = [threading.Thread(target=work, args=(cl,)) for cl in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    assert_serving(served)


def test_one_address_holds_at_most_a_quarter_of_the_connections(served):
    """250 idle connections from 127.0.0.1 (HTTP_CONNECTIONS_PER_ADDRESS):
    the next one from that address is closed without an answer, with a log
    line; a client from 127.0.0.2 is served meanwhile; once the 250 close,
    127.0.0.1 is served again."""
    host, port = split_address(served.address)
    idle = []
    try:
        for _ in range(250):
            idle.append(socket.create_connection((host, port), timeout=10))
        # Each of them is accepted (a thread each) before the next test.
        time.sleep(0.5)
        with Raw(served.address) as extra:
            try:
                extra.send(b'GET /stores HTTP/1.1\r\nHost: x\r\n\r\n')
                head = extra.read_head()
            except (ConnectionResetError, BrokenPipeError):
                head = None
        assert head is None, f'connection 251 from one address was answered: {head}'
        other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        other.settimeout(10)
        other.bind(('127.0.0.2', 0))
        other.connect((host, port))
        other.sendall(f'GET /stores HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {RW}\r\n'
                      f'Connection: close\r\n\r\n'.encode())
        answer = b''
        while chunk := other.recv(65536):
            answer += chunk
        other.close()
        assert answer.startswith(b'HTTP/1.1 200'), answer[:200]
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            with Client(served.address, RW) as c:
                if c.store_list().status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, '127.0.0.1 was not served again'
        time.sleep(0.1)
    assert 'at most 1000 are served at once, 250 from one address' in served.log(), \
        served.log_tail()
    assert_serving(served)


def test_a_slow_client_does_not_hold_up_the_others(served):
    """A client sends its request header a byte a second; meanwhile others
    are served at once; then it finishes its request and is answered."""
    with Client(served.address, RW) as c:
        assert c.store_create('m').status == 201
    request = b'GET /stores HTTP/1.1\r\nHost: slow\r\n\r\n'
    slow = Raw(served.address, timeout=30)
    stop = threading.Event()
    sent = [0]

    def trickle():
        while sent[0] < 6 and not stop.is_set():
            slow.send(request[sent[0]:sent[0] + 1])
            sent[0] += 1
            stop.wait(1)
    t = threading.Thread(target=trickle)
    t.start()
    try:
        time.sleep(0.5)
        deadline = time.monotonic() + 3
        n = 0
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            with Client(served.address) as c:
                r = c.store_list()
            assert r.status == 200 and r.json() == ['m']
            assert time.monotonic() - t0 < 2, 'a request waited for the slow client'
            n += 1
        assert n >= 10
        stop.set()
        t.join(10)
        slow.send(request[sent[0]:])
        status, headers = slow.read_head()
        assert status == 200
        assert json.loads(slow.read_body(headers)) == ['m']
    finally:
        stop.set()
        t.join(10)
        slow.close()
    assert_serving(served)


def test_malformed_requests(served):
    """Garbage, a missing version, an unknown HTTP version, bad lengths, a
    bad chunk: each answered 4xx/5xx or closed, never a hang or a crash."""
    with Client(served.address, RW) as c:
        assert c.store_create('r').status == 201
    auth = f'Authorization: Bearer {RW}\r\n'
    for payload in (
            b'GARBAGE\r\n\r\n',
            b'GET\r\n\r\n',
            b'\x00\xff' * 512 + b'\r\n\r\n',
            b'GET /stores HTTP/7.0\r\nHost: x\r\n\r\n',
            b'GET /stores/%zz/blobs HTTP/1.1\r\nHost: x\r\n\r\n',
            b'GET /stores/r/blobs/' + b'0' * 64 + b'%ZZ HTTP/1.1\r\nHost: x\r\n\r\n',
            f'POST /stores/r/blobs HTTP/1.1\r\nHost: x\r\n{auth}'
            f'Content-Length: -5\r\n\r\n'.encode(),
            f'POST /stores/r/blobs HTTP/1.1\r\nHost: x\r\n{auth}'
            f'Content-Length: 99999999999999999999999\r\n\r\n'.encode(),
            f'POST /stores/r/blobs HTTP/1.1\r\nHost: x\r\n{auth}'
            f'Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'.encode()):
        with Raw(served.address) as raw:
            raw.send(payload)
            raw.sock.shutdown(socket.SHUT_WR)
            try:
                answer = raw.read_head()
            except ConnectionResetError:
                answer = None
            except socket.timeout:
                raise AssertionError(f'no answer and no close for {payload[:60]!r}')
            if answer is not None:
                assert 400 <= answer[0] < 600, (payload[:60], answer)
    with Client(served.address, RW) as c:
        assert c.blob_list('r').json() == []
    assert_serving(served)


def test_conflicting_content_lengths_are_refused(served):
    """Two Content-Length headers that disagree are a message whose end is
    unknown (RFC 9112, 6.3: answered 400 and the connection closed, never
    saved under either length): the shape of request smuggling."""
    with Client(served.address, RW) as c:
        assert c.store_create('r').status == 201
    with Raw(served.address) as raw:
        raw.send(f'POST /stores/r/blobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {RW}\r\n'
                 f'Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'.encode())
        raw.sock.shutdown(socket.SHUT_WR)
        try:
            answer = raw.read_head()
        except ConnectionResetError:
            answer = None
        assert answer is None or answer[0] == 400, answer
    with Client(served.address, RW) as c:
        assert c.blob_list('r').json() == []
    assert_serving(served)


def test_lying_content_lengths(served):
    """A body shorter than its Content-Length, cut by a close, saves
    nothing; one longer saves its declared length and the rest is the next
    request (answered 4xx or closed)."""
    with Client(served.address, RW) as c:
        assert c.store_create('l').status == 201
    auth = f'Authorization: Bearer {RW}\r\n'
    partial = os.urandom(10)
    for method, path in (('POST', '/stores/l/blobs'),
                         ('PUT', f'/stores/l/blobs/{sha(partial)}')):
        with Raw(served.address) as raw:
            raw.send(f'{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}'
                     f'Content-Length: 100000\r\n\r\n'.encode() + partial)
            time.sleep(0.2)
    time.sleep(0.5)
    with Client(served.address, RW) as c:
        assert c.blob_list('l').json() == []
    assert not os.path.exists(served.path('l', sha(partial)))
    with Raw(served.address) as raw:
        raw.send(f'POST /stores/l/blobs HTTP/1.1\r\nHost: x\r\n{auth}'
                 f'Content-Length: 3\r\n\r\nabcdefgh\r\n\r\n'.encode())
        status, headers = raw.read_head()
        assert status == 201
        assert json.loads(raw.read_body(headers)) == sha(b'abc')
        try:
            answer = raw.read_head()
        except ConnectionResetError:
            answer = None
        assert answer is None or 400 <= answer[0] < 500, answer
    with Client(served.address, RW) as c:
        assert c.blob_list('l').json() == [sha(b'abc')]
    assert_serving(served)


def send_then_read_head(address, data):
    """Send `data` (the server may answer and close before it is all sent),
    then read the answer: (status, headers, body), or None when the
    connection closed without one."""
    raw = Raw(address)
    try:
        try:
            raw.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = raw.read_head()
        except ConnectionResetError as e:
            raise AssertionError(f'connection reset without an answer ({e})') from None
        if answer is None:
            return None
        try:
            body = raw.read_body(answer[1])
        except ConnectionResetError:
            body = None
        return answer + (body,)
    finally:
        raw.close()


def test_huge_headers(served):
    """Headers of 100 KB (one, or 3000 small ones) are served or refused
    (4xx; the document sets no bound); of 1 MiB they are refused (4xx), and
    the daemon serves on."""
    def one(size):
        return b'GET /stores HTTP/1.1\r\nHost: x\r\nX-Big: ' + b'a' * size + b'\r\n\r\n'

    def many(count, size):
        return (b'GET /stores HTTP/1.1\r\nHost: x\r\n'
                + b''.join(b'X-H%d: %s\r\n' % (i, b'b' * size) for i in range(count))
                + b'\r\n')
    for data in (one(100000), many(3000, 30)):
        answer = send_then_read_head(served.address, data)
        assert answer is not None and (answer[0] == 200 or 400 <= answer[0] < 500), answer
    for data in (one(MiB), many(3000, 400)):
        answer = send_then_read_head(served.address, data)
        assert answer is not None and 400 <= answer[0] < 500, answer
    assert_serving(served)


def test_larger_than_the_store_takes_413_and_no_space_507(make_mount, tmp_path, memory_backend):
    """memory_max=4M: a 64 MiB Content-Length is 413 before any of the body
    is sent, and the connection closes; a body under the max but over the
    space left is 507; a delete makes room again."""
    m = serve_mount(make_mount, tmp_path, options='memory_max=4M', backend='memory')
    auth = f'Authorization: Bearer {RW}\r\n'
    with Client(m.address, RW) as c:
        assert c.store_create('s').status == 201
    for method, path, extra in (('POST', '/stores/s/blobs', ''),
                                ('POST', '/stores/s/blobs', 'Expect: 100-continue\r\n'),
                                ('PUT', f'/stores/s/blobs/{"0" * 64}', '')):
        with Raw(m.address) as raw:
            raw.send(f'{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}{extra}'
                     f'Content-Length: {64 * MiB}\r\n\r\n'.encode())
            answer = raw.read_head()
            assert answer is not None, 'closed without an answer'
            status, headers = answer
            assert status == 413, (method, extra, status)
            assert json.loads(raw.read_body(headers))['error'] == 'too-large'
            assert raw.closed_within(5), 'the connection stays open after a 413'
    first, second = os.urandom(3 * MiB), os.urandom(3 * MiB)
    with Client(m.address, RW) as c:
        assert c.blob_save('s', first).status == 201
    # (the server may answer before it has read all of the body)
    status, headers, body = send_then_read_head(
        m.address, f'POST /stores/s/blobs HTTP/1.1\r\nHost: x\r\n{auth}'
                   f'Content-Length: {len(second)}\r\n\r\n'.encode() + second)
    assert status == 507, status
    assert json.loads(body)['error'] == 'no-space'
    with Client(m.address, RW) as c:
        assert c.blob_list('s').json() == [sha(first)]
        assert c.blob_delete('s', sha(first)).status == 204
        assert c.blob_save('s', second).status == 201
    assert_serving(m)
    m.umount()


def test_a_256_mib_blob_streams_both_ways(served, metric):
    """A 256 MiB body is saved as it arrives and sent as it is read: the
    daemon's peak RSS grows by far less than the blob."""
    n = 256
    base = os.urandom(MiB)
    with Client(served.address, RW, timeout=120) as c:
        assert c.store_create('big').status == 201
        hwm0 = vm_hwm_kib(served.pid)
        hasher = hashlib.sha256()

        def body():
            for i in range(n):
                chunk = struct.pack('<Q', i) + base[8:]
                hasher.update(chunk)
                yield chunk
        t0 = time.monotonic()
        r = c.request('POST', '/stores/big/blobs', body=body(),
                      headers={'Content-Length': str(n * MiB)})
        t1 = time.monotonic()
        assert r.status == 201, r
        h = hasher.hexdigest()
        assert r.json() == h
        assert c.blob_info('big', h).header('Content-Length') == str(n * MiB)
        resp = c.open('GET', f'/stores/big/blobs/{h}')
        assert resp.status == 200
        check = hashlib.sha256()
        got = 0
        while True:
            piece = resp.read(MiB)
            if not piece:
                break
            check.update(piece)
            got += len(piece)
        t2 = time.monotonic()
        assert got == n * MiB and check.hexdigest() == h
    hwm1 = vm_hwm_kib(served.pid)
    metric(f'256 MiB over HTTP: POST {t1 - t0:.1f}s, GET {t2 - t1:.1f}s; daemon VmHWM '
           f'{hwm0} -> {hwm1} KiB')
    if os.environ.get('BLOBFS_SANITIZED'):
        metric('sanitizer build: peak RSS not checked (shadow memory inflates it)')
    else:
        assert hwm1 - hwm0 < 100 * 1024, f'peak RSS grew by {hwm1 - hwm0} KiB'


# --------------------------------------------------------------------------
# blobfs serve


def start_serve(blobfs_bin, tmp_path, location, name='serve', cwd=None):
    """`blobfs serve -o http=127.0.0.1:0,tokens=... LOCATION`, its log in a
    file: (Popen, address, log path)."""
    tokens = tmp_path / f'{name}tokens'
    write_tokens(tokens, TOKENS)
    log_path = tmp_path / f'{name}.log'
    with open(log_path, 'wb') as log:
        p = subprocess.Popen([blobfs_bin, 'serve', '-o', f'http=127.0.0.1:0,tokens={tokens}',
                              str(location)], stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, cwd=cwd)
    try:
        address = wait_address(lambda: log_path.read_text(errors='replace'),
                               alive=lambda: p.poll() is None)
    except BaseException:
        p.kill()
        p.wait()
        raise
    return p, address, log_path


def stop_serve(p):
    if p.poll() is None:
        p.kill()
        p.wait()


def test_serve_memory_without_a_mount(blobfs_bin, tmp_path):
    """blobfs serve -o http=... memory: serves without a mount and stops
    cleanly (status 0, the port closed) on SIGTERM."""
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    p, address, log_path = start_serve(blobfs_bin, tmp_path, 'memory:', cwd=cwd)
    try:
        with Client(address, RW) as c:
            assert c.store_create('s').status == 201
            data = os.urandom(70000)
            assert c.blob_save('s', data).status == 201
            assert c.blob_load('s', sha(data)).body == data
            assert c.store_list().json() == ['s']
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0, log_path.read_text(errors='replace')
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(split_address(address), timeout=5).close()
    finally:
        stop_serve(p)
    assert os.listdir(cwd) == []


def test_serve_a_data_directory_then_mount_it(blobfs_bin, tmp_path, make_mount):
    """What blobfs serve saved in a data directory is there for a mount of
    the directory after it stopped."""
    data_dir = tmp_path / 'data'
    p, address, log_path = start_serve(blobfs_bin, tmp_path, data_dir)
    data = os.urandom(200000)
    try:
        with Client(address, RW) as c:
            assert c.store_create('s').status == 201
            assert c.blob_save('s', data).status == 201
            assert c.blob_save('s', b'small').status == 201
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0, log_path.read_text(errors='replace')
    finally:
        stop_serve(p)
    m = make_mount(data=data_dir)
    with open(m.path('s', sha(data)), 'rb') as f:
        assert f.read() == data
    with open(m.path('s', sha(b'small')), 'rb') as f:
        assert f.read() == b'small'
    m.umount()


def test_what_a_review_found(served):
    """Regressions of a review: a store name or an after= past 255 bytes
    (both overflowed a buffer of the request) is 400; HEAD of a listing
    leaves the kept-alive connection usable (its chunked end was sent);
    a Content-Length beside a Transfer-Encoding, or an encoding other
    than chunked, is 400 and saves nothing."""
    with Client(served.address, RW) as c:
        assert c.store_create('v').status == 201
        for path in ('/stores/' + 'A' * 700, '/stores/' + 'A' * 700 + '/blobs',
                     '/stores/' + 'A' * 256, '/stores?after=' + 'B' * 700,
                     '/stores/v/blobs?after=' + 'c' * 700):
            r = c.request('GET', path)
            assert r.status == 400, (path[:30], r.status)
        assert c.request('GET', '/stores/' + 'A' * 255 + '/blobs').status == 404
        for path in ('/stores', '/stores/v/blobs'):
            r = c.request('HEAD', path)
            assert r.status == 200 and r.body == b''
            r = c.request('GET', path)  # the same connection
            assert r.status == 200 and isinstance(r.json(), list)
    for headers in ('Content-Length: 1\r\nTransfer-Encoding: chunked\r\n',
                    'Transfer-Encoding: gzip, chunked\r\n'):
        with Raw(served.address) as raw:
            raw.send(f'POST /stores/v/blobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {RW}\r\n'
                     f'{headers}\r\n3\r\nabc\r\n0\r\n\r\n'.encode())
            try:
                answer = raw.read_head()
            except ConnectionResetError:
                answer = None
            assert answer is None or answer[0] == 400, (headers, answer)
    with Client(served.address, RW) as c:
        assert c.blob_list('v').json() == []
    assert 'ambiguous' in served.log() or 'Transfer-Encoding' in served.log()
    assert_serving(served)


def test_a_unix_socket_client_acts_as_itself(make_mount, tmp_path):
    """-o http=unix:PATH: without a token a client is its own user (the
    kernel's credentials), under the stores' owners and modes as on the
    mount; the socket is the daemon user's only (0600) until opened up."""
    sock = tempfile.mkdtemp(prefix='bh', dir='/tmp') + '/h.sock'
    os.chmod(os.path.dirname(sock), 0o755)  # the socket's mode decides
    try:
        m = make_mount(extra_args=['-o', f'http=unix:{sock}'])
        wait_until(lambda: os.path.exists(sock), what='the socket')
        assert os.stat(sock).st_mode & 0o777 == 0o600

        def curl_as(uid, *args):
            prefix = [] if uid == 0 else ['setpriv', f'--reuid={uid}', f'--regid={uid}',
                                          '--clear-groups']
            r = subprocess.run(prefix + ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}',
                                         '--unix-socket', sock, *args],
                               capture_output=True, text=True, timeout=30)
            return r.stdout
        assert curl_as(0, '-X', 'PUT', 'http://x/stores/roots') == '201'
        assert curl_as(1000, '-X', 'PUT', 'http://x/stores/his') == '000'  # 0600: no entry
        os.chmod(sock, 0o666)
        assert curl_as(1000, '-X', 'PUT', 'http://x/stores/his') == '201'
        assert os.stat(m.path('his')).st_uid == 1000
        assert curl_as(1000, '--data-binary', 'x', 'http://x/stores/roots/blobs') == '403'
        assert curl_as(1000, '--data-binary', 'x', 'http://x/stores/his/blobs') == '201'
        assert 'uid 1000: save of roots refused' in m.log()
    finally:
        shutil.rmtree(os.path.dirname(sock), ignore_errors=True)
