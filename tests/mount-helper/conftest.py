"""Fixtures for the mount.scriptcachefs tests: real mounts, always undone.

$MOUNT_HELPER is the built helper, $SCRIPTCACHEFS the built daemon (the
helper execs it; the variable is the helper's own override), $SCRIPTCACHE_CLI
the CLI.  Every directory comes from tempfile.mkdtemp(); every mount made by a
test is unmounted in a finally block.  Mounting needs root (the tests also
mount as `nobody`, in a private mount namespace whose /dev/fuse is 0666):
without it the tests fail, they never skip.
"""
import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time

import pytest

HELPER = os.environ.get('MOUNT_HELPER')
FS = os.environ.get('SCRIPTCACHEFS')
CLI = os.environ.get('SCRIPTCACHE_CLI')
NOBODY = 65534


@pytest.fixture(autouse=True)
def _programs():
    for var, value in (('MOUNT_HELPER', HELPER), ('SCRIPTCACHEFS', FS),
                       ('SCRIPTCACHE_CLI', CLI)):
        if not value or not os.access(value, os.X_OK):
            pytest.fail('%s must name the built program (got %r)' % (var, value))
    if os.geteuid() != 0:
        pytest.fail('the mount helper tests mount for real and need root')


def mount_type(path):
    """fstype of the topmost mount at exactly path (None if none)."""
    found = None
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            mnt = fields[4].encode().decode('unicode_escape')
            if mnt == path:
                found = fields[fields.index('-') + 1]
    return found


def mount_options(path):
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                opts = fields[5]
    return opts.split(',')


def umount_busy_retry(argv, timeout=5):
    """Run an unmount command, again while it fails: the daemon opens its
    own mount once just after mounting (fs/notify.c primes the kernel), and
    an unmount at that instant gets EBUSY."""
    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode == 0 or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


# The same, for the sh scripts run in a namespace: umount_retry CMD...
SH_UMOUNT_RETRY = r'''
umount_retry() { i=0; until "$@"; do i=$((i+1)); [ $i -ge 100 ] && return 1; sleep 0.05; done; }
'''


def unmount(path):
    """Unmount everything stacked on path; lazily if busy."""
    for _ in range(8):
        if mount_type(path) is None:
            return
        r = subprocess.run(['umount', path], capture_output=True)
        if r.returncode != 0:
            subprocess.run(['umount', '-l', path], capture_output=True)
    assert mount_type(path) is None, 'could not unmount ' + path


@pytest.fixture
def tmp():
    """A fresh directory that `nobody` can traverse, removed afterwards."""
    d = tempfile.mkdtemp(prefix='sc-mh-')
    os.chmod(d, 0o755)
    mounts = []
    try:
        yield Tmp(d, mounts)
    finally:
        for m in mounts:
            unmount(m)
        shutil.rmtree(d, ignore_errors=True)


class Tmp:
    def __init__(self, path, mounts):
        self.path, self._mounts = path, mounts

    def dir(self, name, owner=0):
        p = os.path.join(self.path, name)
        os.makedirs(p, exist_ok=True)
        os.chown(p, owner, owner if owner == 0 else NOBODY)
        self._mounts.append(p)   # unmounted at teardown, whatever happens
        return p

    def file(self, name, data=b'', mode=0o600, owner=0):
        p = os.path.join(self.path, name)
        with open(p, 'wb') as f:
            f.write(data)
        os.chmod(p, mode)
        os.chown(p, owner, owner if owner == 0 else NOBODY)
        return p


def env(**extra):
    e = dict(os.environ)
    e['SCRIPTCACHEFS'] = FS
    e.update(extra)
    return e


def helper(*args, check=None, **extra_env):
    """Run the helper as mount(8) would; returns CompletedProcess (text)."""
    r = subprocess.run([HELPER, *args], capture_output=True, text=True,
                       env=env(**extra_env), timeout=30)
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
    return r


def wait_mounted(path, timeout=10):
    deadline = time.monotonic() + timeout
    while mount_type(path) != 'fuse.scriptcachefs':
        assert time.monotonic() < deadline, path + ' not mounted'
        time.sleep(0.01)


def cli(*args, **extra_env):
    return subprocess.run([CLI, *args], capture_output=True, text=True,
                          env=env(**extra_env), check=True).stdout


# A private mount namespace whose /dev/fuse is a fresh node of the given mode
# (Debian's is 0666; this machine's may be 0600), so that `nobody` can mount
# through fusermount3 without changing the host.  Mounts made inside vanish
# with the namespace; the script still unmounts them itself.
NS_PRELUDE = r'''
set -u
node=$(mktemp -u "$NS_TMP/fuse.XXXXXX")
mknod -m "$NS_FUSE_MODE" "$node" c 10 229
mount --bind "$node" /dev/fuse
rm -f "$node"
'''


def in_namespace(script, fuse_mode='666', **extra_env):
    """Run a sh script in a private mount namespace (see NS_PRELUDE)."""
    e = env(NS_TMP=tempfile.gettempdir(), NS_FUSE_MODE=fuse_mode, **extra_env)
    return subprocess.run(['unshare', '-m', '--propagation', 'private',
                           'sh', '-c', NS_PRELUDE + SH_UMOUNT_RETRY + script],
                          capture_output=True, text=True, env=e, timeout=60)


@contextlib.contextmanager
def sbin_links():
    """/usr/sbin/mount.scriptcachefs and mount.fuse.scriptcachefs -> the
    built helper, for mount(8), which looks only in /sbin and /usr/sbin.
    Serialized with a lock (test runs may overlap); removed in finally;
    an existing installed helper is never replaced."""
    links = ['/usr/sbin/mount.scriptcachefs', '/usr/sbin/mount.fuse.scriptcachefs']
    with open('/run/lock/scriptcache-mount-helper-test.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for link in links:
            if os.path.lexists(link):
                pytest.fail('%s exists (an installed helper?): refusing to '
                            'replace it for the test' % link)
        try:
            for link in links:
                os.symlink(HELPER, link)
            yield
        finally:
            for link in links:
                if os.path.islink(link) and os.readlink(link) == HELPER:
                    os.unlink(link)
