"""A client of blobfs's HTTP API (docs/FORMAT.md, "The HTTP API"), written
from the document, for the tests: Client keeps one keep-alive connection
(http.client) and has one call per route; Raw sends bytes on a socket of
its own (malformed requests, lying lengths, headers without a body); and
helpers for the daemon's log line, tokens files, Link headers and names in
paths."""

import http.client
import json
import os
import re
import socket
import time
import urllib.parse


def split_address(address):
    """'HOST:PORT' or '[V6]:PORT' -> (host, port)."""
    host, port = address.rsplit(':', 1)
    return host.strip('[]'), int(port)


def address_in_log(text):
    """The address of the last 'HTTP API on HOST:PORT' log line, or None."""
    found = re.findall(r'HTTP API on (\S+)', text)
    return found[-1] if found else None


def wait_address(read_log, timeout=10, alive=None):
    """Wait for the 'HTTP API on' line in read_log() and return its address.
    alive(): False when the daemon died (then fail at once)."""
    deadline = time.monotonic() + timeout
    while True:
        address = address_in_log(read_log())
        if address:
            return address
        if alive is not None and not alive():
            raise AssertionError(f'the daemon died before serving HTTP:\n{read_log()[-3000:]}')
        if time.monotonic() > deadline:
            raise AssertionError(f'no "HTTP API on" line in the log after {timeout}s:\n'
                                 f'{read_log()[-3000:]}')
        time.sleep(0.02)


def write_tokens(path, text, mode=0o600):
    """Write a tokens file (replacing it in one rename) with `mode`."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def quote_name(name):
    """A store name (str or bytes) percent-encoded for a path segment."""
    return urllib.parse.quote(name, safe='')


def link_next(value):
    """The path and query of the rel="next" link of a Link header, or None."""
    if not value:
        return None
    for part in value.split(','):
        m = re.match(r'\s*<([^>]*)>\s*;(.*)$', part)
        if m and re.search(r'\brel\s*=\s*"?next"?', m.group(2)):
            u = urllib.parse.urlsplit(m.group(1))
            return u.path + ('?' + u.query if u.query else '')
    return None


class Response:
    """status (int), headers (case-insensitive), body (bytes)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        return json.loads(self.body)

    @property
    def error(self):
        """The "error" of a JSON error body (None when there is none)."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value.get('error') if isinstance(value, dict) else None

    def __repr__(self):
        return f'<Response {self.status} {self.body[:200]!r}>'


_DEFAULT = object()


class Client:
    """One HTTP/1.1 connection (reopened by http.client only when the server
    closed it); every call sends one request and reads its whole answer."""

    def __init__(self, address, token=None, timeout=30, source=None):
        self.address = address
        self.token = token
        host, port = split_address(address)
        self.conn = http.client.HTTPConnection(
            host, port, timeout=timeout, source_address=(source, 0) if source else None)
        # (method, path, status) of each answer after which the server
        # closed the connection (http.client then opens a new one)
        self.closed_after = []

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def local_port(self):
        """The local port of the connection (it changes when reopened)."""
        return self.conn.sock.getsockname()[1] if self.conn.sock else None

    def request(self, method, path, body=None, headers=None, token=_DEFAULT):
        h = {}
        token = self.token if token is _DEFAULT else token
        if token is not None:
            h['Authorization'] = f'Bearer {token}'
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, bytearray, str)) \
                and 'Content-Length' not in h and 'Transfer-Encoding' not in h:
            self.conn.request(method, path, body=body, headers=h, encode_chunked=True)
        else:
            if body is None and method in ('POST', 'PUT'):
                h.setdefault('Content-Length', '0')
            self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        body = r.read()
        if self.conn.sock is None:
            self.closed_after.append((method, path, r.status))
        return Response(r.status, r.headers, body)

    def open(self, method, path, body=None, headers=None):
        """Send a request and return the http.client response unread (for
        bodies read a piece at a time)."""
        h = {}
        if self.token is not None:
            h['Authorization'] = f'Bearer {self.token}'
        h.update(headers or {})
        self.conn.request(method, path, body=body, headers=h)
        return self.conn.getresponse()

    # -- the routes ----------------------------------------------------------

    def store_list(self, query=''):
        return self.request('GET', '/stores' + query)

    def store_create(self, name):
        return self.request('PUT', '/stores/' + quote_name(name))

    def store_destroy(self, name):
        return self.request('DELETE', '/stores/' + quote_name(name))

    def blob_hash(self, data):
        return self.request('POST', '/blob_hash', body=data)

    def blob_list(self, store, query=''):
        return self.request('GET', f'/stores/{quote_name(store)}/blobs' + query)

    def blob_save(self, store, data, headers=None):
        return self.request('POST', f'/stores/{quote_name(store)}/blobs', body=data,
                            headers=headers)

    def blob_put(self, store, hexname, data):
        return self.request('PUT', f'/stores/{quote_name(store)}/blobs/{hexname}', body=data)

    def blob_info(self, store, hexname, headers=None):
        return self.request('HEAD', f'/stores/{quote_name(store)}/blobs/{hexname}',
                            headers=headers)

    def blob_load(self, store, hexname, headers=None):
        return self.request('GET', f'/stores/{quote_name(store)}/blobs/{hexname}',
                            headers=headers)

    def blob_delete(self, store, hexname):
        return self.request('DELETE', f'/stores/{quote_name(store)}/blobs/{hexname}')

    def all_pages(self, path, limit):
        """Follow the rel="next" links from path?limit=N: (pages, items)."""
        pages = []
        items = []
        url = f'{path}?limit={limit}'
        while url is not None:
            r = self.request('GET', url)
            assert r.status == 200, (url, r)
            page = r.json()
            pages.append(page)
            items += page
            nxt = link_next(r.header('Link'))
            assert nxt != url, f'the next link of {url} is itself'
            url = nxt
            assert len(pages) < 100000
        return pages, items


class Raw:
    """A socket of its own, for what http.client will not send."""

    def __init__(self, address, timeout=10):
        host, port = split_address(address)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b''

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def recv_some(self):
        chunk = self.sock.recv(1 << 16)
        self.buf += chunk
        return chunk

    def read_head(self):
        """(status, {lower-case name: value}) of the next answer, or None when
        the connection closed before one came. Leaves the body in self.buf."""
        while b'\r\n\r\n' not in self.buf:
            if not self.recv_some():
                return None
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        lines = head.decode('latin-1').split('\r\n')
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(':')
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def read_body(self, headers):
        """The body after read_head: by its Content-Length, or chunked."""
        if headers.get('transfer-encoding', '').lower() == 'chunked':
            body = b''
            while True:
                size_line = self._read_line()
                size = int(size_line.split(b';')[0], 16)
                if size == 0:
                    while self._read_line() != b'':   # trailers
                        pass
                    return body
                body += self._read_exact(size)
                assert self._read_line() == b''
        return self._read_exact(int(headers.get('content-length', '0')))

    def _read_exact(self, n):
        while len(self.buf) < n:
            if not self.recv_some():
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_line(self):
        while b'\r\n' not in self.buf:
            if not self.recv_some():
                raise ConnectionError('closed in the middle of a chunked body')
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def closed_within(self, seconds):
        """True when the server closes the connection (reading and dropping
        what it still sends) within `seconds`."""
        deadline = time.monotonic() + seconds
        self.sock.settimeout(0.2)
        try:
            while time.monotonic() < deadline:
                try:
                    if not self.sock.recv(1 << 16):
                        return True
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    return True
            return False
        finally:
            self.sock.settimeout(10)
