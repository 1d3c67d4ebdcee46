"""Fixtures for the scriptcachefs tests: a real shard, a real mount.

Every mount is made by the real daemon (path in $SCRIPTCACHEFS) in a
temporary directory and is unmounted in a finally block, whatever happens.
Where /dev/fuse exists a mount that fails is a test failure, never a skip.
"""
import contextlib
import errno
import os
import signal
import subprocess
import time

import pytest

FS = os.environ.get('SCRIPTCACHEFS')
CLI = os.environ.get('SCRIPTCACHE_CLI')


def _need(var, value):
    if not value or not os.access(value, os.X_OK):
        pytest.fail('%s must name the built program (got %r)' % (var, value))


def is_mounted(path):
    path = os.path.realpath(path)
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                return True
    return False


def unmount(mnt):
    """Unmount, lazily if it is busy; never leave a mount behind."""
    if not is_mounted(mnt):
        return
    r = subprocess.run(['fusermount3', '-u', mnt], capture_output=True)
    if r.returncode != 0 or is_mounted(mnt):
        subprocess.run(['fusermount3', '-u', '-z', mnt], capture_output=True)


class Mount:
    def __init__(self, shard, mnt, proc):
        self.shard, self.path, self.proc = shard, mnt, proc
        self.killed = False

    def kill(self):
        """SIGKILL the daemon: a test that means to kill it says so here,
        or mounted() fails it for a daemon that did not exit cleanly."""
        self.killed = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def entry(self, key):
        return os.path.join(self.path, encode(key))


@contextlib.contextmanager
def mounted(shard, mnt, *options, env=None):
    """Run scriptcachefs in the foreground on mnt; yield a Mount.

    When the test's body is done, the daemon must exit with status 0 once
    unmounted.  One that died during the test (a sanitizer's abort, a
    crash) fails the test with its stderr: the kernel goes on serving what
    it has cached from a dead mount, and a client that falls back silently
    (CPython) would otherwise hide the death."""
    _need('SCRIPTCACHEFS', FS)
    os.makedirs(mnt, exist_ok=True)
    # shard None: the default shard (no shard argument), with env's
    # environment (None: ours)
    proc = subprocess.Popen([FS, '-f', *options, *([shard] if shard else []), mnt],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    m = None
    done = hung = False
    try:
        deadline = time.monotonic() + 10
        while not is_mounted(mnt):
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail('scriptcachefs exited with %d before mounting: %s'
                            % (proc.returncode, err.decode(errors='replace')))
            if time.monotonic() > deadline:
                pytest.fail('scriptcachefs did not mount %s within 10 s' % mnt)
            time.sleep(0.01)
        m = Mount(shard, mnt, proc)
        yield m
        done = True
    finally:
        unmount(mnt)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            hung = True
            proc.kill()
            proc.wait()
        unmount(mnt)
    if done and not m.killed and (hung or proc.returncode != 0):
        err = proc.stderr.read().decode(errors='replace')
        pytest.fail('scriptcachefs %s: %s' % (
            'did not exit within 10 s of the unmount' if hung else
            'exited with %d' % proc.returncode, err[:4000]))


def cli(*args, check=True, input=None):
    _need('SCRIPTCACHE_CLI', CLI)
    r = subprocess.run([CLI, *args], capture_output=True, input=input)
    if check and r.returncode != 0:
        raise AssertionError('scriptcache %s: exit %d: %s' % (
            ' '.join(map(str, args)), r.returncode, r.stderr.decode(errors='replace')))
    return r


# These tests are about exact keys (what the mount shows for a key), so the
# helpers pass them with --key: the CLI would otherwise take them as paths
# and canonicalize them (docs/CLI.md, "Keys").
def encode(key):
    return cli('encode', '--key', key).stdout.decode().rstrip('\n')


def wait_for(pred, timeout=2.0, step=0.005):
    """Poll pred() until true; return the seconds it took, or fail."""
    t0 = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError('condition not met within %.1f s' % timeout)
        time.sleep(step)


@pytest.fixture
def env(tmp_path):
    """A fresh shard, a source directory and a mount point."""
    class Env:
        pass
    e = Env()
    e.dir = tmp_path
    e.shard = str(tmp_path / 'scripts.shard')
    e.src = tmp_path / 'src'
    e.src.mkdir()
    e.mnt = str(tmp_path / 'mnt')

    def put(key, data, *opts):
        blob = tmp_path / 'blob.in'
        blob.write_bytes(data)
        cli('--shard', e.shard, 'put', *opts, '--key', key, str(blob))
    e.put = put
    e.get = lambda key: cli('--shard', e.shard, 'get', '--key', key, check=False)

    def source(name, text='return 1\n'):
        p = e.src / name
        p.write_text(text)
        return str(p)
    e.source = source
    return e


@pytest.fixture(autouse=True, scope='session')
def _fuse_present():
    if not os.path.exists('/dev/fuse'):
        pytest.fail('/dev/fuse is missing: these tests need FUSE')
