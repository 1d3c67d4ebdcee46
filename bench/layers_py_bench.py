#!/usr/bin/python3
"""layers_py_bench.py - CPython's first run in a container with a shipped
shard, through the mount (issue 14, docs/LAYERS.md).

usage: /usr/bin/python3 bench/layers_py_bench.py [BUILD_DIR] [ROUNDS]

The program is py_bench.sh's: /usr/bin/python3 importing 71 standard-library
modules (bench/py_bench_modules.txt, 202 .pyc files), with
PYTHONPYCACHEPREFIX on the mount's tree view.  Every mount runs with
-o no_dist_pyc, so that the bytecode comes from the shards, not from the
.pyc Debian ships underneath (which would serve an empty mount as well and
hide what the layers do).  Variants, timed round robin (ROUNDS rounds,
default 30), the Python process only:

  (w)  the hundredth run: one mount kept up, its shard warm (kernel caches
       warm too);
  (w0) a fresh mount of a warm shard before each run (the daemon and the
       kernel's caches cold, the shard warm): the same start as (s) without
       the layers;
  (s)  a container's first run: before each run a fresh mount of a new
       (absent) own shard with -o lower=<the shipped shard>, built by
       `scriptcache build` from (w)'s shard, root's, 0644;
  (c)  nothing shipped: a fresh mount of a new own shard, every module
       compiled and committed through the mount.

Before timing, (s) must serve every .pyc from the lower shard and commit
nothing, (c) must commit every .pyc.  The mounts are those of the tests
(tests/fs/conftest.py), unmounted even on failure.
"""
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, '..', 'build'))
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 30
CLI = os.path.join(BUILD, 'cli', 'scriptcache')
FS = os.path.join(BUILD, 'fs', 'scriptcachefs')
PY = '/usr/bin/python3'

with open(os.path.join(HERE, 'py_bench_modules.txt')) as f:
    MODS = [line.strip() for line in f if line.strip() and not line.startswith('#')]
PROG = 'import %s; print("imported", len(__import__("sys").modules))' % ', '.join(MODS)
OPTS = 'nosync,no_dist_pyc'


def py_env(mnt):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(('SCRIPTCACHE', 'PYTHON'))}
    e['PYTHONPYCACHEPREFIX'] = os.path.join(mnt, '.tree')
    e['SCRIPTCACHE_LOWER'] = ''
    return e


def mount(shard, mnt, *opts):
    os.makedirs(mnt, exist_ok=True)
    o = ','.join((OPTS,) + opts)
    subprocess.run([FS, '-o', o, shard, mnt], check=True, env=py_env(mnt))


def unmount(mnt):
    with open('/proc/self/mounts') as f:
        if (' %s ' % mnt) in f.read():
            subprocess.run(['fusermount3', '-u', mnt], check=True)


def stats(mnt):
    with open(os.path.join(mnt, '.stats')) as f:
        return json.load(f)


def run(mnt):
    """Wall ms and the Python process's CPU ms (user + system), output."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([PY, '-c', PROG], env=py_env(mnt), check=True,
                         stdout=subprocess.PIPE).stdout
    wall = (time.perf_counter() - t0) * 1000
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000
    return wall, cpu, out


def main():
    w = tempfile.mkdtemp(prefix='sc-layers-py.')
    mnts = {v: os.path.join(w, 'mnt-' + v) for v in ('w', 'w0', 's', 'c')}
    try:
        warm = os.path.join(w, 'warm.shard')
        mount(warm, mnts['w'])
        _, _, expect = run(mnts['w'])
        npyc = stats(mnts['w'])['daemon']['commits']
        _, _, again = run(mnts['w'])
        assert again == expect and stats(mnts['w'])['daemon']['commits'] == npyc
        shipped = os.path.join(w, 'shipped.shard')
        subprocess.run([CLI, '--shard', warm, 'build', shipped], check=True,
                       stdout=subprocess.DEVNULL)
        os.chown(shipped, 0, 0)
        os.chmod(shipped, 0o644)
        warm2 = os.path.join(w, 'warm2.shard')
        shutil.copyfile(warm, warm2)

        def fresh(v):
            unmount(mnts[v])
            if v == 'w0':
                mount(warm2, mnts[v])
                return
            own = os.path.join(w, 'own-%s.shard' % v)
            for p in (own, own + '.lock'):
                if os.path.exists(p):
                    os.unlink(p)
            if v == 's':
                mount(own, mnts[v], 'lower=' + shipped)
            else:
                mount(own, mnts[v])

        # checks before timing
        for v in ('w0', 's', 'c'):
            fresh(v)
            _, _, out = run(mnts[v])
            assert out == expect, (v, out, expect)
            d = stats(mnts[v])['daemon']
            if v == 's':
                assert d['commits'] == 0 and d['lower_hits'] >= npyc, d
            if v == 'c':
                assert d['commits'] == npyc, (d['commits'], npyc)
        print('layers_py_bench: %s; %d .pyc committed by the first run; shipped shard %d KiB; '
              'load %s' % (expect.decode().strip(), npyc, os.path.getsize(shipped) // 1024,
                           ' '.join(open('/proc/loadavg').read().split()[:3])))

        names = {'w': '(w) warm mount, warm shard', 'w0': '(w0) fresh mount, warm shard',
                 's': '(s) fresh mount, shipped lower shard', 'c': '(c) fresh mount, nothing shipped'}
        t = {v: [] for v in names}
        c = {v: [] for v in names}
        for _ in range(ROUNDS):
            for v in names:
                if v != 'w':
                    fresh(v)
                ms, cpu, out = run(mnts[v])
                assert out == expect
                t[v].append(ms)
                c[v].append(cpu)
            assert stats(mnts['s'])['daemon']['commits'] == 0
        med = {v: (statistics.median(t[v]), statistics.median(c[v])) for v in names}
        print('%d rounds, round robin: medians of the Python process, wall and CPU '
              '(user + system; the daemon\'s is not in it)' % ROUNDS)
        print('| variant | wall [ms] | vs (w) | vs (w0) | CPU [ms] | vs (w) | vs (w0) |')
        print('|:---|---:|---:|---:|---:|---:|---:|')
        for v, n in names.items():
            (m, cm), (b, cb), (b0, cb0) = med[v], med['w'], med['w0']
            print('| %s | %.1f | %.2f | %.2f | %.1f | %.2f | %.2f |'
                  % (n, m, m / b, m / b0, cm, cm / cb, cm / cb0))
    finally:
        for m in mnts.values():
            try:
                unmount(m)
            except subprocess.CalledProcessError:
                subprocess.run(['fusermount3', '-u', '-z', m])
        shutil.rmtree(w, ignore_errors=True)


if __name__ == '__main__':
    main()
