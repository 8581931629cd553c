"""Helpers for the blobfs integration tests, by concern:

- common: the blobfs binary, bpath (str or bytes paths), run, env_int
- mounting: the Mount class (a foreground daemon on a DATADIR or on
  memory:), the backends the tests run on (BLOBFS_BACKENDS), mountinfo and
  /proc helpers, crashing a daemon on purpose, fsck and compact
- files: saving and reading blobs through the mount, expect_errno, sizes of
  a tree on disk
- packs: the pack format seen from outside (parse_pack, parse_store)
- tmpfs: small file systems for the full-disk tests

Import what you need from the module, e.g.
``from blobfs_test.files import save``.
"""
