"""Small file systems for the tests of a full disk."""

import os
import time

from .common import run
from .mounting import is_mounted, unmount_path


def mount_tmpfs(path, size):
    """mount -t tmpfs -o size=SIZE tmpfs PATH (PATH is created). Pair with
    umount_tmpfs() in a finally block."""
    os.makedirs(path, exist_ok=True)
    r = run(['mount', '-t', 'tmpfs', '-o', f'size={size},mode=0755', 'tmpfs', str(path)],
            text=True)
    assert r.returncode == 0, f'mount -t tmpfs failed: {r.stderr.strip()}'
    return os.path.realpath(path)


def umount_tmpfs(path):
    """Unmount a tmpfs made by mount_tmpfs (lazily if it is still busy)."""
    path = os.path.realpath(str(path))
    if not is_mounted(path):
        return 'not-mounted'
    for attempt in range(5):
        if run(['umount', path]).returncode == 0 or not is_mounted(path):
            return 'clean'
        time.sleep(0.2 * (attempt + 1))
    run(['umount', '-l', path])
    return 'lazy'


class tmpfs_disk:
    """with tmpfs_disk(path, '24m') as disk: a small file system for tests
    of a full disk. Every Mount appended to .mounts is unmounted (exit
    status checked) before the tmpfs itself is unmounted, even when the body
    failed."""

    def __init__(self, path, size):
        self.path = path
        self.size = size
        self.mounts = []
        self.disk = None

    def __enter__(self):
        self.disk = mount_tmpfs(self.path, self.size)
        return self

    def __exit__(self, *exc):
        try:
            for m in self.mounts:
                if m.proc is not None:
                    m.umount(check=exc[0] is None)
                elif m.mounted:
                    unmount_path(m.mnt)
        finally:
            umount_tmpfs(self.disk)
        return False
