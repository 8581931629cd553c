"""The object store the S3 tests run against: the one-node Ceph of
scripts/ceph-dev (radosgw on loopback), started for the session when it is
not running and stopped at the end if this session started it.

BLOBFS_S3=0 skips the S3 tests (they are run by default, CI included).
"""

import os
import re
import subprocess
import uuid

from . import common

CEPH_DEV = os.path.join(str(common.REPO_ROOT), 'scripts', 'ceph-dev')
BUCKET = 'blobfs-tests'


def enabled():
    return os.environ.get('BLOBFS_S3', '1') != '0'


def _parse_env(text):
    env = {}
    for line in text.splitlines():
        m = re.match(r'export ([A-Z0-9_]+)=(.*)$', line.strip())
        if m:
            value = m.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in '\'"':
                value = value[1:-1]
            env[m.group(1)] = value
    return env


class Cluster:
    """A running radosgw: .env (the AWS_* variables), .client() (boto3),
    and a bucket for the tests."""

    def __init__(self):
        self.started_here = False
        self.env = {}

    def start(self):
        running = subprocess.run([CEPH_DEV, 'status'], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        if running.returncode != 0:
            self.started_here = True
        r = subprocess.run([CEPH_DEV, 'start'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, text=True, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f'scripts/ceph-dev start failed ({r.returncode}):\n{r.stderr[-4000:]}')
        self.env = {k: v for k, v in _parse_env(r.stdout).items() if k.startswith('AWS_')}
        if 'AWS_ENDPOINT_URL' not in self.env:
            raise RuntimeError(f'scripts/ceph-dev start printed no endpoint:\n{r.stdout}')
        c = self.client()
        try:
            c.create_bucket(Bucket=BUCKET)
        except c.exceptions.BucketAlreadyOwnedByYou:
            pass
        return self

    def stop(self):
        if self.started_here:
            subprocess.run([CEPH_DEV, 'stop'], stdin=subprocess.DEVNULL, timeout=300,
                           stdout=subprocess.DEVNULL)

    def client(self):
        import boto3
        from botocore.config import Config
        return boto3.client('s3', endpoint_url=self.env['AWS_ENDPOINT_URL'],
                            aws_access_key_id=self.env['AWS_ACCESS_KEY_ID'],
                            aws_secret_access_key=self.env['AWS_SECRET_ACCESS_KEY'],
                            region_name=self.env.get('AWS_REGION', 'us-east-1'),
                            config=Config(retries={'max_attempts': 2},
                                          s3={'addressing_style': 'path'}))

    def s3cmd(self, *args, **kwargs):
        """Runs s3cmd against this radosgw (no config file: everything on
        the command line)."""
        host = self.env['AWS_ENDPOINT_URL'].split('://', 1)[1]
        cmd = ['s3cmd', '--no-ssl', f'--host={host}', f'--host-bucket={host}',
               f'--access_key={self.env["AWS_ACCESS_KEY_ID"]}',
               f'--secret_key={self.env["AWS_SECRET_ACCESS_KEY"]}',
               f'--region={self.env.get("AWS_REGION", "us-east-1")}', '--config=/dev/null',
               *args]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
                              check=True, **kwargs)

    def new_prefix(self, name):
        """A location of its own for one test: s3://BUCKET/<name>-<random>."""
        safe = re.sub(r'[^a-z0-9-]', '-', name.lower())[:40]
        return f'{safe}-{uuid.uuid4().hex[:12]}'
