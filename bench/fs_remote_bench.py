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
  dead remote the first and the following misses with the server stopped
              (SIGSTOP: it accepts connections and never answers) and
              killed (connection refused), at the default timeout.

Every figure is the median of ROUNDS rounds (default 5), each with a new
shard and a new mount.  The server and the mounts are those of the tests
(tests/remote/test_remote.py, tests/fs/conftest.py).
"""
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
        n = len(keys2)
        res = {'cold': [], 'cold_nosync': [], 'warm': [], 'luac': [], 'miss_ms': [], 'req_ms': [], 'stop1': [], 'stop2': [],
               'dead1': [], 'dead2': []}
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
            # a stopped server: two misses of sources it would have had
            for r in range(ROUNDS):
                shard = tmp / ('stop-%d.shard' % r)
                mnt = tmp / ('mnt-stop-%d' % r)
                with mounted(str(shard), str(mnt), *opts, env=env_clean()) as m:
                    os.kill(srv.proc.pid, signal.SIGSTOP)
                    try:
                        for k, nm in (('stop1', names[0]), ('stop2', names[1])):
                            t0 = time.perf_counter()
                            os.path.exists(os.path.join(m.path, nm))
                            res[k].append(time.perf_counter() - t0)
                    finally:
                        os.kill(srv.proc.pid, signal.SIGCONT)
            srv.kill()
            for r in range(ROUNDS):
                shard = tmp / ('dead-%d.shard' % r)
                mnt = tmp / ('mnt-dead-%d' % r)
                with mounted(str(shard), str(mnt), *opts, env=env_clean()) as m:
                    for k, nm in (('dead1', names[0]), ('dead2', names[1])):
                        t0 = time.perf_counter()
                        os.path.exists(os.path.join(m.path, nm))
                        res[k].append(time.perf_counter() - t0)
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
        print('stopped server, 1st miss  : %7.2f ms (timeout 200 ms)' % (med['stop1'] * 1e3))
        print('stopped server, next miss : %7.3f ms (breaker open)' % (med['stop2'] * 1e3))
        print('killed server, 1st miss   : %7.3f ms (connection refused)' % (med['dead1'] * 1e3))
        print('killed server, next miss  : %7.3f ms (breaker open)' % (med['dead2'] * 1e3))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
