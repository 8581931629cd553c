# benchlib/workloads_s3.py - workload 9: stores on an S3 object store (the
# radosgw of scripts/ceph-dev, started for the workload when it is not
# running and stopped after it if so) next to s3cmd talking to the same
# radosgw: one large file (9), many small files (9b), and a read of a blob
# the mount has cached (9c) next to the same read from a local blobfs.
#
# What is timed for blobfs: 9, `cp` into incoming/ of a mount with -o sync
# (close() returns once the object store has the blob: the same finish line
# as `s3cmd put`); 9b, `cp -r` into incoming/ of a mount without it, then
# until the bucket lists every blob (polled every 50 ms), next to
# `s3cmd sync`, which returns when all are uploaded, and next to what radosgw
# itself takes: the same files PUT by `curl --parallel` (32 at once, one
# connection each, kept alive), the ceiling any client reaches here.

import os
import subprocess
import time

from .common import REPO, KiB, MiB, MB, q, human, BenchError

CEPH_DEV = os.path.join(REPO, 'scripts', 'ceph-dev')
BUCKET = 'blobfs-bench'


class WorkloadsS3:
    """Workload 9 (mixed into cli.Bench)."""

    def s3_env(self):
        """Starts the cluster when it is not running; the AWS_* variables."""
        running = subprocess.run([CEPH_DEV, 'status'], stdin=subprocess.DEVNULL,
                                 capture_output=True).returncode == 0
        r = subprocess.run([CEPH_DEV, 'start'], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=900)
        if r.returncode != 0:
            raise BenchError('scripts/ceph-dev start failed: ' + r.stderr[-300:])
        self.s3_started = not running
        env = {}
        for line in r.stdout.splitlines():
            if line.startswith('export ') and '=' in line:
                k, v = line[7:].split('=', 1)
                env[k] = v
        return env

    def s3_client(self, env):
        import boto3
        from botocore.config import Config
        return boto3.client('s3', endpoint_url=env['AWS_ENDPOINT_URL'],
                            aws_access_key_id=env['AWS_ACCESS_KEY_ID'],
                            aws_secret_access_key=env['AWS_SECRET_ACCESS_KEY'],
                            region_name=env.get('AWS_REGION', 'us-east-1'),
                            config=Config(s3={'addressing_style': 'path'}))

    def s3cmd(self, env):
        host = env['AWS_ENDPOINT_URL'].split('://', 1)[1]
        return (f's3cmd --no-ssl --host={q(host)} --host-bucket={q(host)} '
                f'--access_key={q(env["AWS_ACCESS_KEY_ID"])} '
                f'--secret_key={q(env["AWS_SECRET_ACCESS_KEY"])} '
                f'--region={q(env.get("AWS_REGION", "us-east-1"))} --config=/dev/null')

    def curl_puts(self, env, src, files, url):
        """The command that PUTs every file of src with curl, 32 at once (a
        config file of upload-file/url pairs, written now)."""
        cfg = f'{self.B}/w9/curl-{os.path.basename(url.rstrip("/"))}.cfg'
        os.makedirs(os.path.dirname(cfg), exist_ok=True)
        with open(cfg, 'w') as f:
            for name in files:
                f.write(f'upload-file = "{src}/{name}"\nurl = "{url}{name}"\noutput = /dev/null\n')
        region = env.get('AWS_REGION', 'us-east-1')
        return (f'curl -sS --fail --parallel --parallel-max 32 '
                f'--aws-sigv4 {q("aws:amz:" + region + ":s3")} '
                f'--user {q(env["AWS_ACCESS_KEY_ID"] + ":" + env["AWS_SECRET_ACCESS_KEY"])} '
                f'-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -K {q(cfg)}')

    def s3_count(self, client, prefix):
        n = 0
        for page in client.get_paginator('list_objects_v2').paginate(Bucket=BUCKET, Prefix=prefix):
            n += page.get('KeyCount', 0)
        return n

    def s3_empty(self, client, prefix):
        keys = []
        for page in client.get_paginator('list_objects_v2').paginate(Bucket=BUCKET, Prefix=prefix):
            keys += [{'Key': o['Key']} for o in page.get('Contents', [])]
        for i in range(0, len(keys), 1000):
            client.delete_objects(Bucket=BUCKET, Delete={'Objects': keys[i:i + 1000]})

    def w_s3(self):
        """Workload 9: blobfs on S3 next to s3cmd."""
        big = 64 * MiB if self.quick else 256 * MiB
        n = 200 if self.quick else 1000
        r9 = self.add_row('9', f'S3 (radosgw): ingest of one {human(big)} file (MB/s)', 'rate',
                          [('minref', 's3cmd', 1.0)], '≥ 1.0× `s3cmd put`')
        r9.refs['s3cmd'] = ('s3cmd put', [])
        r9b = self.add_row('9b', f'S3 (radosgw): ingest of {n:,} files of 4 KiB (files/s)', 'rate',
                           [('minref', 's3cmd', 5.0)], '≥ 5× `s3cmd sync`')
        r9b.refs['s3cmd'] = ('s3cmd sync', [])
        r9b.refs['curl'] = ('curl --parallel (32 at once)', [])
        r9c = self.add_row('9c', self.cold(f'S3 (radosgw): cat of a cached {human(big)} blob, '
                                           'cold (MB/s)'), 'rate',
                           [('minref', 'local', 0.9)], '≥ 0.9× a local blobfs')
        r9c.refs['local'] = ('a local blobfs', [])
        for r in (r9, r9b, r9c):
            for s in ('ext4', 'pt', 'naive'):
                r.text[s] = 'n/a (blobfs and s3cmd)'
        self.s3_started = False
        env = self.s3_env()
        try:
            self.s3_runs(env, big, n, r9, r9b, r9c)
        finally:
            if self.s3_started:
                subprocess.run([CEPH_DEV, 'stop'], stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=300)

    def s3_runs(self, env, big, n, r9, r9b, r9c):
        B = self.B
        client = self.s3_client(env)
        try:
            client.create_bucket(Bucket=BUCKET)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        src, small = f'{B}/src/s3big', f'{B}/src/s3small'
        self.gen_file(src, big)
        self.gen_files(small, n, 4 * KiB)
        s3cmd = self.s3cmd(env)
        os.environ.update(env)   # the daemons and s3cmd talk to this radosgw
        local_data, local_mnt = f'{B}/w9/local-data', f'{B}/w9/local-mnt'
        for rep in range(self.runs):
            self.log(f'workload 9: run {rep + 1}/{self.runs}')
            pre = f'run{rep}-{int(time.time())}'
            # 9: one large file.
            self.warm([src])
            self.sync()
            t = self.timed(f'{s3cmd} put {q(src)} s3://{BUCKET}/{pre}-s3cmd/big >/dev/null',
                           log=('9', 'blobfs') if rep == 0 else None)
            r9.refs['s3cmd'][1].append(big / t / MB)
            mnt, cache = f'{B}/w9/{pre}-mnt', f'{B}/w9/{pre}-cache'
            self.mount_blobfs(f's3://{BUCKET}/{pre}', mnt, lock=f'{cache}/outbox/lock',
                              options=(f'cache={cache}', 'sync'))
            try:
                os.mkdir(f'{mnt}/s')
                self.warm([src])
                t = self.timed(f'cp {q(src)} {q(mnt)}/s/incoming/big')
                r9.samples['blobfs'].append(big / t / MB)
                self.log(f'  blobfs: {big / t / MB:,.0f} MB/s; s3cmd put: '
                         f'{r9.refs["s3cmd"][1][-1]:,.0f}')
                # 9c: read it once (fetched into the read cache), then cold.
                h = self.blob_name(src)
                self.run(f'cat {q(mnt)}/s/{h} >/dev/null')
            finally:
                self.umount(mnt)
            self.mount_blobfs(f's3://{BUCKET}/{pre}', mnt, lock=f'{cache}/outbox/lock',
                              options=(f'cache={cache}',))
            try:
                self.drop_caches()
                t = self.timed(f'cat {q(mnt)}/s/{h} >/dev/null')
                r9c.samples['blobfs'].append(big / t / MB)
            finally:
                self.umount(mnt)
            if rep == 0:
                os.makedirs(local_data, exist_ok=True)
                self.mount_blobfs(local_data, local_mnt)
                os.mkdir(f'{local_mnt}/s')
                self.run(f'cp {q(src)} {q(local_mnt)}/s/incoming/big')
                self.umount(local_mnt)
            self.mount_blobfs(local_data, local_mnt)
            try:
                self.drop_caches()
                t = self.timed(f'cat {q(local_mnt)}/s/{h} >/dev/null')
                r9c.refs['local'][1].append(big / t / MB)
            finally:
                self.umount(local_mnt)
            self.log(f'  cached read: {r9c.samples["blobfs"][-1]:,.0f} MB/s; local blobfs: '
                     f'{r9c.refs["local"][1][-1]:,.0f}')
            # 9b: many small files.
            self.warm([os.path.join(small, f) for f in os.listdir(small)])
            self.sync()
            t = self.timed(f'{s3cmd} sync {q(small)}/ s3://{BUCKET}/{pre}-s3cmd/small/ >/dev/null',
                           log=('9b', 'blobfs') if rep == 0 else None)
            r9b.refs['s3cmd'][1].append(n / t)
            files = sorted(os.listdir(small))
            cmd = self.curl_puts(env, small, files,
                                 f'{env["AWS_ENDPOINT_URL"]}/{BUCKET}/{pre}-curl/')
            self.warm([os.path.join(small, f) for f in files])
            self.sync()
            t = self.timed(cmd, log=('9b', 'curl') if rep == 0 else None)
            if self.s3_count(client, f'{pre}-curl/') != n:
                raise BenchError('curl --parallel did not store every file')
            r9b.refs['curl'][1].append(n / t)
            self.mount_blobfs(f's3://{BUCKET}/{pre}b', mnt, lock=f'{cache}b/outbox/lock',
                              options=(f'cache={cache}b',))
            try:
                os.mkdir(f'{mnt}/s')
                t0 = time.perf_counter()
                self.run(f'cp -r {q(small)}/. {q(mnt)}/s/incoming/')
                while self.s3_count(client, f'{pre}b/s/') < n + 1:   # and the meta object
                    if time.perf_counter() - t0 > 600:
                        raise BenchError('the uploads did not end within 600 s')
                    time.sleep(0.05)
                t = time.perf_counter() - t0
                r9b.samples['blobfs'].append(n / t)
            finally:
                self.umount(mnt)
            self.log(f'  {n:,} small files: blobfs {n / t:,.0f} files/s; s3cmd sync: '
                     f'{r9b.refs["s3cmd"][1][-1]:,.0f}; curl --parallel: '
                     f'{r9b.refs["curl"][1][-1]:,.0f}')
            for p in (f'{pre}-s3cmd/', f'{pre}-curl/', f'{pre}/', f'{pre}b/'):
                self.s3_empty(client, p)
            self.rmtree(f'{B}/w9/{pre}-cache')
            self.rmtree(f'{B}/w9/{pre}-cacheb')

    def blob_name(self, path):
        import hashlib
        h = hashlib.sha256()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(8 * MiB), b''):
                h.update(chunk)
        return h.hexdigest()
