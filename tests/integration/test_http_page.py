"""The page for people, in a real browser: headless Chromium (Debian's)
renders GET / and a store's page from a mount's HTTP API; the DOM it built
shows every store (a name full of HTML's special characters as text, not
markup), a store's blobs a page of 100 at a time with a link to the next
that, followed, gives the rest, and download links whose bytes are the
blobs'; its screenshot has the window's size and is not blank.
"""

import hashlib
import os
import re
import struct
import subprocess
import urllib.request
import zlib

import pytest

from blobfs_test.files import save
from blobfs_test.http import wait_address

CHROMIUM = '/usr/bin/chromium'
WIDTH, HEIGHT = 1000, 1400


def chromium(tmp_path, *args):
    """Runs headless Chromium (root needs --no-sandbox; no D-Bus, no GPU
    here): its stdout."""
    env = {**os.environ, 'HOME': str(tmp_path)}
    r = subprocess.run([CHROMIUM, '--headless=new', '--no-sandbox', '--disable-gpu',
                        '--hide-scrollbars', f'--user-data-dir={tmp_path}/chromium',
                        f'--window-size={WIDTH},{HEIGHT}', *args],
                       capture_output=True, text=True, timeout=120, env=env,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def png_pixels(path):
    """(width, height, the share of bytes of the raw scanlines that are not
    white) of an 8-bit RGB(A) PNG, with zlib only."""
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    pos, idat, ihdr = 8, b'', None
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            ihdr = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    width, height, depth = ihdr[0], ihdr[1], ihdr[2]
    assert depth == 8
    raw = zlib.decompress(idat)
    # Scanline filters make some bytes differences, not colours: a page all
    # white still gives mostly 0 or 255; text gives many other values.
    other = sum(1 for b in raw[::7] if b not in (0, 255))
    return width, height, other / len(raw[::7])


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason='chromium is not installed '
                    '(scripts/test installs it)')
def test_the_pages_in_a_browser(make_mount, tmp_path, metric):
    m = make_mount(extra_args=['-o', 'http=127.0.0.1:0'])
    address = wait_address(m.log)
    base = f'http://{address}'
    odd = '<b>x&"y\''
    os.mkdir(m.path('photos'))
    os.mkdir(m.path(odd))
    blobs = {}
    for i in range(150):
        data = b'blob %d\n' % i
        blobs[save(m.mnt, 'photos', data, name=f'f{i}')] = data

    dom = chromium(tmp_path, '--dump-dom', base + '/')
    assert '<b>x' not in dom, 'a store name became markup'
    assert '&lt;b&gt;x&amp;"y\'' in dom
    assert 'href="/stores/photos/"' in dom
    assert '>150<' in dom  # the blob count of a store anyone may read

    seen = set()
    url = base + '/stores/photos/'
    pages = 0
    while url:
        dom = chromium(tmp_path, '--dump-dom', url)
        hashes = re.findall(r'href="/stores/photos/blobs/([0-9a-f]{64})"', dom)
        assert len(hashes) <= 100
        assert not seen & set(hashes)
        seen |= set(hashes)
        nxt = re.search(r'rel="next" href="([^"]+)"', dom)
        url = base + nxt.group(1).replace('&amp;', '&') if nxt else None
        pages += 1
    assert pages == 2 and seen == set(blobs)
    some = sorted(blobs)[7]
    with urllib.request.urlopen(f'{base}/stores/photos/blobs/{some}') as r:
        assert r.read() == blobs[some]
    # A store's path asked for HTML (as a browser asks) is its page too.
    req = urllib.request.Request(f'{base}/stores/photos/blobs', headers={'Accept': 'text/html'})
    with urllib.request.urlopen(req) as r:
        assert r.headers['Content-Type'].startswith('text/html')
        assert r.headers['Vary'] == 'Accept'

    shot = tmp_path / 'store.png'
    chromium(tmp_path, f'--screenshot={shot}', base + '/stores/photos/')
    width, height, ink = png_pixels(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    assert ink > 0.005, f'the screenshot looks blank ({ink:.4f} of it is not white)'
    metric(f'the store page rendered by Chromium: {width}x{height}, '
          f'{ink:.3f} of the sampled bytes not white, {os.path.getsize(shot)} bytes of PNG')
