#!/usr/bin/python3
"""fs_remote_bench.py - scriptcachefs -o remote=URL: what a miss costs.

usage: /usr/bin/python3 bench/fs_remote_bench.py [BUILD_DIR] [ROUNDS]

Needs nginx (nginx-light), luac5.4 and lua-penlight (the sources), root or
a user allowed to mount.  Prints, for the penlight modules (Lua 5.4):

  cold start  machine 2, empty shard, every module read once through the
              mount (the flat view's <encoded key>/blob): fetched from the
              remote (loopback nginx), verified, put into the shard; against
              compiling the same sources with luac5.4 in one process, and
              against reading them again (local hits);
  misses      the first miss of a new mount and the following ones (the
              median of 5), each a stat of an entry's name whose source
              exists, at the default 200 ms budget, side by side: without
              any remote; with the server up but without those sources
              (404, then the negative cache); and with a dead remote:
              stopped (SIGSTOP: the kernel accepts connections, nginx never
              answers), killed (nothing listens: connection refused) and
              blackholed (a listener whose accept queue is full: the kernel
              drops the SYNs, as a firewall that drops packets would).

Every figure is the median of ROUNDS rounds (default 5), each with a new
shard and a new mount.  The server and the mounts are those of the tests
(tests/remote/test_remote.py, tests/fs/conftest.py).
"""
import contextlib
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import pathlib
import socket

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, '..', 'build'))
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
os.environ['SCRIPTCACHE_CLI'] = os.path.join(BUILD, 'cli', 'scriptcache')
os.environ['SCRIPTCACHEFS'] = os.path.join(BUILD, 'fs', 'scriptcachefs')
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'remote'))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'fs'))

from conftest import mounted  # noqa: E402
import test_remote as tr  # noqa: E402

LUAC = shutil.which('luac5.4') or sys.exit('luac5.4 not found')
TAG = 'lua 5.4 bytecode bench'
SOURCES = sorted(glob.glob('/usr/share/lua/5.4/pl/*.lua')) or sys.exit('lua-penlight not found')


def env_clean(**extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith('SCRIPTCACHE')}

    e.update(extra)
    return e


def encode_all(keys):
    return [subprocess.run([tr.CLI, 'encode', '--key', k], capture_output=True,
                           check=True).stdout.decode().rstrip('\n') for k in keys]


def read_all(paths):
    t0 = time.perf_counter()
    for p in paths:
        with open(p, 'rb') as f:
            f.read()
    return time.perf_counter() - t0


NEXT = 5  # following misses timed after the first


def time_misses(res, key, shard, mnt, opts, paths, around=None):
    """Mount, then time the first miss and the NEXT following ones (a stat
    each) into res[key + '1'] and res[key + '2'] (their median).  @around:
    a context manager entered after the mount, before the misses."""
    with mounted(str(shard), str(mnt), *opts, env=env_clean()) as m:
        with (around() if around else contextlib.nullcontext()):
            times = []
            for nm in paths[:1 + NEXT]:
                t0 = time.perf_counter()
                if os.path.exists(os.path.join(m.path, nm)):
                    sys.exit('%s: %s hit, the bench expects misses' % (key, nm))
                times.append(time.perf_counter() - t0)
    res.setdefault(key + '1', []).append(times[0])
    res.setdefault(key + '2', []).append(statistics.median(times[1:]))


@contextlib.contextmanager
def stopped(srv):
    os.kill(srv.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)


@contextlib.contextmanager
def blackhole():
    """A port on 127.0.0.1 whose SYNs the kernel drops: a listener with a
    backlog of 0 that never accepts, its queue filled by one connection."""
    lst = socket.socket()
    lst.bind(('127.0.0.1', 0))
    lst.listen(0)
    fill = []
    try:
        for _ in range(2):  # the accept queue holds backlog + 1
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(lst.getsockname())
            fill.append(c)
        time.sleep(0.05)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect(lst.getsockname())
            sys.exit('blackhole: the probe connected, SYNs are not dropped')
        except socket.timeout:
            pass
        finally:
            probe.close()
        yield 'http://127.0.0.1:%d' % lst.getsockname()[1]
    finally:
        for c in fill:
            c.close()
        lst.close()


def main():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix='fsremote-bench-'))
    try:
        m1 = tmp / 'm1'
        m1.mkdir()
        src2 = tmp / 'm2src'
        src2.mkdir()
        # machine 1 compiles; machine 2 has the same files elsewhere
        for s in SOURCES:
            out = m1 / (os.path.basename(s) + '.luac')
            subprocess.run([LUAC, '-o', str(out), s], check=True)
            subprocess.run([tr.CLI, '--shard', str(m1 / 's.shard'), 'put', '--tag', TAG,
                            '--exe', LUAC, s, str(out)], check=True)
            shutil.copy(s, src2 / os.path.basename(s))
        keys2 = [str(src2 / os.path.basename(s)) for s in SOURCES]
        names = encode_all(keys2)
        # sources machine 1 never compiled: not on the remote
        lone = []
        for i in range(1 + NEXT):
            p = src2 / ('lone%d.lua' % i)
            p.write_bytes(b'return %d\n' % i)
            lone.append(str(p))
        lone_names = encode_all(lone)
        n = len(keys2)
        res = {'cold': [], 'cold_nosync': [], 'warm': [], 'luac': [], 'miss_ms': [],
               'req_ms': []}
        for r in range(ROUNDS):
            t0 = time.perf_counter()
            subprocess.run([LUAC, '-o', '/dev/null', *keys2], check=True)
            res['luac'].append(time.perf_counter() - t0)
        with tr.nginx(tmp) as srv:
            subprocess.run([tr.CLI, '--shard', str(m1 / 's.shard'), 'push'], check=True,
                           env=env_clean(SCRIPTCACHE_REMOTE=srv.url), capture_output=True)
            opts = ('-o', 'remote=%s,remote_tag=%s,remote_exe=%s' % (srv.url, TAG, LUAC))
            for r in range(ROUNDS):
                shard = tmp / ('m2-%d.shard' % r)
                mnt = tmp / ('mnt-%d' % r)
                with mounted(str(shard), str(mnt), *opts, env=env_clean()) as m:
                    blobs = [os.path.join(m.path, nm, 'blob') for nm in names]
                    res['cold'].append(read_all(blobs))
                    res['warm'].append(read_all(blobs))
                    with open(os.path.join(m.path, '.stats')) as f:
                        rs = json.load(f)['remote']
                    res['miss_ms'].append(rs['time_ms'])
                    res['req_ms'].append(rs['request_ms'])
                # the same without fdatasync on the puts (-o nosync)
                with mounted(str(tmp / ('ns-%d.shard' % r)), str(mnt), opts[0],
                             opts[1] + ',nosync', env=env_clean()) as m:
                    blobs = [os.path.join(m.path, nm, 'blob') for nm in names]
                    res['cold_nosync'].append(read_all(blobs))
            # the first and the following misses, a new mount each round;
            # the cases interleaved so that a load change hits them all
            for r in range(ROUNDS):
                t = tmp / ('r%d' % r)
                t.mkdir()
                time_misses(res, 'none', t / 'none.shard', t / 'mnt', (), names)
                time_misses(res, 'absent', t / 'absent.shard', t / 'mnt', opts, lone_names)
                time_misses(res, 'stop', t / 'stop.shard', t / 'mnt', opts, names,
                            lambda: stopped(srv))
            srv.kill()
            for r in range(ROUNDS):
                t = tmp / ('r%d' % r)
                time_misses(res, 'kill', t / 'kill.shard', t / 'mnt', opts, names)
                with blackhole() as url:
                    bh = ('-o', 'remote=%s,remote_tag=%s,remote_exe=%s' % (url, TAG, LUAC))
                    time_misses(res, 'hole', t / 'hole.shard', t / 'mnt', bh, names)
        med = {k: statistics.median(v) for k, v in res.items()}
        print('%d penlight modules, %d rounds, medians' % (n, ROUNDS))
        print('cold start via the remote : %7.2f ms total, %6.3f ms per module'
              % (med['cold'] * 1e3, med['cold'] * 1e3 / n))
        print('  of which in the daemon  : %7.2f ms asking and putting, %.2f ms in requests'
              % (med['miss_ms'], med['req_ms']))
        print('cold start, -o nosync     : %7.2f ms total, %6.3f ms per module'
              % (med['cold_nosync'] * 1e3, med['cold_nosync'] * 1e3 / n))
        print('luac5.4, one process      : %7.2f ms total, %6.3f ms per module'
              % (med['luac'] * 1e3, med['luac'] * 1e3 / n))
        print('warm (local hits)         : %7.2f ms total, %6.3f ms per module'
              % (med['warm'] * 1e3, med['warm'] * 1e3 / n))
        print('misses through the mount (a stat of an entry whose source exists), '
              'budget 200 ms:')
        print('%-46s %22s %16s' % ('', 'first miss (med, min)', 'following (med)'))
        for k, what in (('none', 'no remote'),
                        ('absent', 'server up, sources not on it (404 each)'),
                        ('stop', 'stopped server (SIGSTOP)'),
                        ('kill', 'killed server (connection refused)'),
                        ('hole', 'blackholed (SYNs dropped)')):
            print('%-46s %9.3f ms, %6.3f ms %13.3f ms' % (what, med[k + '1'] * 1e3,
                                                         min(res[k + '1']) * 1e3,
                                                         med[k + '2'] * 1e3))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
