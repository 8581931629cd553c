# benchlib/workloads_http.py - workload 10: the HTTP API (-o http= on a
# mount: the same daemon) next to nginx serving the same bytes from files on
# the same disk (Debian's nginx, sendfile on, two workers, access log off),
# both on loopback:
#   10  GETs of 4 KiB blobs, wrk with 32 connections kept alive on 2
#       threads, 10 s, the paths of 1,000 blobs in turn (requests/s);
#   10b a GET of one large blob, twice on one kept-alive connection (curl;
#       the bytes in the page cache for both) (MB/s);
#   10c an upload of the large file: curl -T to PUT /stores/s/blobs/HEX (a
#       verified save) next to curl -T into nginx's WebDAV (a plain file)
#       and cp into the mount's incoming/ (MB/s).

import os
import re
import signal
import subprocess
import time

from .common import KiB, MiB, MB, q, human, BenchError

HTTP_PORT, NGINX_PORT = 18480, 18481
TOKEN = 'bench-token-0123456789abcdef'

NGINX_CONF = '''\
user root;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /dav/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            client_max_body_size 0;
        }}
    }}
}}
'''

WRK_LUA = '''\
local paths = {{}}
for line in io.lines("{paths}") do paths[#paths + 1] = line end
local i = 0
request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
end
'''


class WorkloadsHTTP:
    """Workload 10 (mixed into cli.Bench)."""

    def wrk(self, url, lua):
        _, out, _, _ = self.run(f'wrk -t2 -c32 -d10s -s {q(lua)} {q(url)}', timeout=120)
        m = re.search(r'Requests/sec:\s*([0-9.]+)', out)
        errors = re.search(r'Non-2xx or 3xx responses:\s*(\d+)', out)
        if not m:
            raise BenchError('wrk printed no Requests/sec: ' + out[-200:])
        if errors:
            raise BenchError(f'wrk: {errors.group(1)} answers were not 200')
        return float(m.group(1))

    def start_nginx(self, d):
        os.makedirs(f'{d}/body', exist_ok=True)
        with open(f'{d}/nginx.conf', 'w') as f:
            f.write(NGINX_CONF.format(d=d, port=NGINX_PORT, root=f'{d}/root'))
        p = subprocess.Popen(['nginx', '-c', f'{d}/nginx.conf', '-g', 'daemon off;'],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
        self.children.append(p)
        for _ in range(500):
            if subprocess.run(['curl', '-s', '-o', '/dev/null', f'http://127.0.0.1:{NGINX_PORT}/'],
                              capture_output=True).returncode == 0:
                return p
            if p.poll() is not None:
                raise BenchError('nginx exited: ' + p.stderr.read().decode(errors='replace')[-300:])
            time.sleep(0.02)
        raise BenchError('nginx did not answer within 10 s')

    def stop_nginx(self, p):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGQUIT)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if p in self.children:
            self.children.remove(p)

    def w_http(self):
        """Workload 10: the HTTP API next to nginx."""
        B = self.B
        n = 1000
        big = 128 * MiB if self.quick else 512 * MiB
        r10 = self.add_row('10', f'HTTP: GETs of {n:,} blobs of 4 KiB, wrk -c32 (requests/s)', 'rate',
                           [('minref', 'nginx', 0.5)], '≥ 0.5× nginx')
        r10.refs['nginx'] = ('nginx (files on ext4)', [])
        r10b = self.add_row('10b', f'HTTP: GET of a {human(big)} blob, kept alive (MB/s)', 'rate',
                            [('minref', 'nginx', 0.8)], '≥ 0.8× nginx')
        r10b.refs['nginx'] = ('nginx (a file on ext4)', [])
        r10c = self.add_row('10c', f'HTTP: upload of a {human(big)} file (MB/s)', 'rate', [],
                            'next to nginx WebDAV and the mount')
        r10c.refs['nginx'] = ('curl -T into nginx WebDAV', [])
        r10c.refs['mount'] = ('cp into the mount', [])
        r10d = self.add_row('10d', f'HTTP: GET of a {human(big)} blob, -o rehash (MB/s)', 'rate', [],
                            'next to nginx; what 10b costs when each GET hashes the blob, as the '
                            'first GET since the mount does')
        r10d.refs['nginx'] = ('nginx (a file on ext4)', [])
        for r in (r10, r10b, r10c, r10d):
            for s in ('ext4', 'pt', 'naive'):
                r.text[s] = 'n/a (blobfs and nginx)'
        d = f'{B}/w10'
        small, src = f'{B}/src/httpsmall', f'{B}/src/httpbig'
        os.makedirs(f'{d}/root/dav', exist_ok=True)
        self.gen_files(small, n, 4 * KiB)
        h_big = self.gen_file(src, big)
        tokens = f'{d}/tokens'
        with open(tokens, 'w') as f:
            f.write(f'{TOKEN} rw\n')
        os.chmod(tokens, 0o600)
        data, mnt = f'{d}/data', f'{d}/mnt'
        os.makedirs(data, exist_ok=True)
        self.mount_blobfs(data, mnt, options=(f'http=127.0.0.1:{HTTP_PORT}', f'tokens={tokens}'),
                          log='10')
        nginx = None
        try:
            os.mkdir(f'{mnt}/s')
            self.run(f'cp -r {q(small)}/. {q(mnt)}/s/incoming/')
            self.run(f'cp {q(src)} {q(mnt)}/s/incoming/big')
            names = [self.blob_name(os.path.join(small, f)) for f in sorted(os.listdir(small))]
            for name, f in zip(names, sorted(os.listdir(small))):
                os.link(os.path.join(small, f), f'{d}/root/{name}')
            os.link(src, f'{d}/root/{h_big}')
            with open(f'{d}/blobfs-paths', 'w') as f:
                f.writelines(f'/stores/s/blobs/{h}\n' for h in names)
            with open(f'{d}/nginx-paths', 'w') as f:
                f.writelines(f'/{h}\n' for h in names)
            for who in ('blobfs', 'nginx'):
                with open(f'{d}/{who}.lua', 'w') as f:
                    f.write(WRK_LUA.format(paths=f'{d}/{who}-paths'))
            nginx = self.start_nginx(d)
            blobfs_url, nginx_url = f'http://127.0.0.1:{HTTP_PORT}', f'http://127.0.0.1:{NGINX_PORT}'
            self.record('10', 'blobfs', f'wrk -t2 -c32 -d10s -s $B/w10/blobfs.lua {blobfs_url}')
            self.record('10', 'nginx', f'wrk -t2 -c32 -d10s -s $B/w10/nginx.lua {nginx_url}')
            auth = f'-H {q("Authorization: Bearer " + TOKEN)}'

            def servers(rep):
                """Both servers, the first alternating from run to run."""
                order = [('blobfs', blobfs_url), ('nginx', nginx_url)]
                return order[::-1] if rep % 2 else order

            def large_gets(row, rep):
                """10b and 10d: the large blob, cached and read once through
                the mount, GET twice on one connection from each server."""
                self.warm([src])
                self.run(f'cat {q(mnt)}/s/{h_big} >/dev/null')
                for who, url in servers(rep):
                    path = f'/stores/s/blobs/{h_big}' if who == 'blobfs' else f'/{h_big}'
                    t = self.timed(f'curl -sS --fail -o /dev/null -o /dev/null {url}{path} {url}{path}',
                                   log=(row.num, who) if rep == 0 else None)
                    (row.samples['blobfs'] if who == 'blobfs' else row.refs['nginx'][1]).append(
                        2 * big / t / MB)

            for rep in range(self.runs):
                self.log(f'workload 10: run {rep + 1}/{self.runs}')
                # 10: small GETs (a first pass warms both).
                for who, url in servers(rep):
                    rate = self.wrk(url, f'{d}/{who}.lua')
                    (r10.samples['blobfs'] if who == 'blobfs' else r10.refs['nginx'][1]).append(rate)
                large_gets(r10b, rep)
                # 10c: uploads of the large file.
                self.warm([src])
                self.run(f'curl -sS --fail -X DELETE {auth} {blobfs_url}/stores/s/blobs/{h_big}')
                self.sync()
                t = self.timed(f'curl -sS --fail -o /dev/null {auth} -T {q(src)} '
                               f'{blobfs_url}/stores/s/blobs/{h_big}',
                               log=('10c', 'blobfs') if rep == 0 else None)
                r10c.samples['blobfs'].append(big / t / MB)
                self.sync()
                t = self.timed(f'curl -sS --fail -o /dev/null -T {q(src)} {nginx_url}/dav/up{rep}',
                               log=('10c', 'nginx') if rep == 0 else None)
                r10c.refs['nginx'][1].append(big / t / MB)
                os.unlink(f'{d}/root/dav/up{rep}')
                self.run(f'curl -sS --fail -X DELETE {auth} {blobfs_url}/stores/s/blobs/{h_big}')
                self.sync()
                t = self.timed(f'cp {q(src)} {q(mnt)}/s/incoming/big{rep}',
                               log=('10c', 'mount') if rep == 0 else None)
                r10c.refs['mount'][1].append(big / t / MB)
                self.log(f'  small GETs: blobfs {r10.samples["blobfs"][-1]:,.0f}/s, nginx '
                         f'{r10.refs["nginx"][1][-1]:,.0f}/s; large GET: blobfs '
                         f'{r10b.samples["blobfs"][-1]:,.0f} MB/s, nginx '
                         f'{r10b.refs["nginx"][1][-1]:,.0f}; upload: blobfs '
                         f'{r10c.samples["blobfs"][-1]:,.0f} MB/s, nginx WebDAV '
                         f'{r10c.refs["nginx"][1][-1]:,.0f}, mount {r10c.refs["mount"][1][-1]:,.0f}')
            # 10d: 10b again with every GET hashing the blob (-o rehash).
            self.umount(mnt)
            self.mount_blobfs(data, mnt, options=(f'http=127.0.0.1:{HTTP_PORT}', f'tokens={tokens}',
                                                  'rehash'), log='10d')
            self.run(f'cp {q(src)} {q(mnt)}/s/incoming/big')
            for rep in range(self.runs):
                large_gets(r10d, rep)
                self.log(f'  large GET with rehash: blobfs {r10d.samples["blobfs"][-1]:,.0f} MB/s, '
                         f'nginx {r10d.refs["nginx"][1][-1]:,.0f}')
        finally:
            if nginx:
                self.stop_nginx(nginx)
            self.umount(mnt)
            self.rmtree(d)
