"""Shared by the other modules: where the blobfs binary is, paths of str or
bytes, subprocesses with a timeout, integers from the environment."""

import os
import subprocess
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[3]


def blobfs_bin():
    """Path of the daemon binary: $BLOBFS_BIN or <repo>/build/blobfs."""
    return os.environ.get('BLOBFS_BIN') or str(REPO_ROOT / 'build' / 'blobfs')


def bpath(*parts):
    """Join path components. The result is bytes if any component is bytes
    (store names may be any bytes), else str."""
    if any(isinstance(p, bytes) for p in parts):
        return os.path.join(*[os.fsencode(p) for p in parts])
    return os.path.join(*[os.fspath(p) for p in parts])


def run(cmd, **kwargs):
    """subprocess.run with a timeout, text output and no stdin."""
    kwargs.setdefault('timeout', 120)
    kwargs.setdefault('capture_output', True)
    kwargs.setdefault('stdin', subprocess.DEVNULL)
    return subprocess.run(cmd, **kwargs)


def env_int(name, default):
    """Integer from the environment variable `name`, else `default`."""
    value = os.environ.get(name, '')
    return int(value) if value.strip() else default


def s3_store_name_ok(name):
    """Whether a store name (bytes) is one the S3 backend takes: UTF-8 without
    control characters (docs/FORMAT.md); others are EINVAL there."""
    try:
        text = name.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 0x20 or ord(c) == 0x7f for c in text)
