#!/usr/bin/python3
"""fs_remote_bench.py - scriptcachefs -o remote=URL: what a miss costs.

usage: /usr/bin/python3 bench/fs_remote_bench.py [BUILD_DIR] [ROUNDS] [lua|python|all]

Needs nginx (nginx-light), root or a user allowed to mount; for lua,
luac5.4 and lua-penlight (the sources).  Prints, for the penlight modules
(Lua 5.4):

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

and for CPython (/usr/bin/python3, PYTHONPYCACHEPREFIX=<mount>/.tree), a
copy of part of the standard library (PY_PACKAGES) in a project directory,
so that no .pyc of the distribution's lies underneath, every module of it
imported by one process on an empty machine-2 mount:

  compiled    no remote: CPython compiles every module and commits its .pyc
              through the mount (durable puts, and -o nosync);
  pulled      -o remote=URL, machine 1 having pushed: each .pyc fetched,
              verified, its header made machine 2's, put (durable, nosync);
  warm        the same import again on the pulled mount (local hits);
  no cache    python3 -B, compiling with nothing written (reference).

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
WHAT = sys.argv[3] if len(sys.argv) > 3 else 'all'
os.environ['SCRIPTCACHE_CLI'] = os.path.join(BUILD, 'cli', 'scriptcache')
os.environ['SCRIPTCACHEFS'] = os.path.join(BUILD, 'fs', 'scriptcachefs')
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'remote'))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'fs'))

from conftest import mounted  # noqa: E402
import test_remote as tr  # noqa: E402

TAG = 'lua 5.4 bytecode bench'
PY = '/usr/bin/python3'
PY_STDLIB = '/usr/lib/python3.%d' % sys.version_info[1]
PY_PACKAGES = ['email', 'json', 'http', 'xml', 'asyncio', 'urllib', 'logging', 'concurrent',
               'html', 'unittest']


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


def lua():
    global LUAC, SOURCES
    LUAC = shutil.which('luac5.4') or sys.exit('luac5.4 not found')
    SOURCES = sorted(glob.glob('/usr/share/lua/5.4/pl/*.lua')) or sys.exit('lua-penlight not found')
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


def py_project(d, mtime):
    """PY_PACKAGES copied into @d (no __pycache__, no tests); their modules."""
    mods = []
    for pkg in PY_PACKAGES:
        shutil.copytree(os.path.join(PY_STDLIB, pkg), d / pkg,
                        ignore=shutil.ignore_patterns('__pycache__', 'test', 'tests'))
    for root, dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            os.utime(p, (mtime, mtime))
            if f.endswith('.py') and f != '__main__.py':
                rel = os.path.relpath(p, d)[:-3].replace('/', '.')
                mods.append(rel[:-len('.__init__')] if rel.endswith('.__init__') else rel)
    return sorted(mods)


PY_SCRIPT = """
import importlib, sys
sys.path.insert(0, %r)
n = 0
for m in %r:
    try:
        importlib.import_module(m)
        n += 1
    except Exception:
        pass
print(n)
"""


def py_run(d, mods, mnt=None, no_write=False):
    """One python3 importing @mods from @d; (seconds, modules imported)."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith('SCRIPTCACHE') and not k.startswith('PYTHON')}
    if mnt:
        e['PYTHONPYCACHEPREFIX'] = os.path.join(mnt, '.tree')
    t0 = time.perf_counter()
    r = subprocess.run([PY, *(['-B'] if no_write else []), '-c', PY_SCRIPT % (str(d), mods)],
                       env=e, capture_output=True, check=True, cwd='/')
    return time.perf_counter() - t0, int(r.stdout)


def python():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix='fsremote-pybench-'))
    try:
        d1, d2 = tmp / 'm1src', tmp / 'm2src'
        mods = py_project(d1, 1_600_000_000)
        py_project(d2, 1_700_000_000)
        res = {k: [] for k in ('compiled', 'compiled_nosync', 'pulled', 'pulled_nosync',
                               'warm', 'nocache', 'miss_ms', 'req_ms')}
        with tr.nginx(tmp) as srv:
            with mounted(str(tmp / 'm1.shard'), str(tmp / 'mnt1'), env=env_clean()) as m:
                _, n1 = py_run(d1, mods, m.path)
            push = subprocess.run([tr.CLI, '--shard', str(tmp / 'm1.shard'), 'push', '--json'],
                                  check=True, env=env_clean(SCRIPTCACHE_REMOTE=srv.url),
                                  capture_output=True)
            stored = json.loads(push.stdout)['entries']
            counts = set()
            for r in range(ROUNDS):
                res['nocache'].append(py_run(d2, mods, no_write=True)[0])
                for nosync in (0, 1):
                    sfx = '_nosync' if nosync else ''
                    o = ['-o', 'nosync'] if nosync else []
                    with mounted(str(tmp / ('c%d%s.shard' % (r, sfx))), str(tmp / 'mnt2'), *o,
                                 env=env_clean()) as m:
                        t, n = py_run(d2, mods, m.path)
                        res['compiled' + sfx].append(t)
                        counts.add(n)
                    ro = ['-o', 'remote=' + srv.url + (',nosync' if nosync else '')]
                    with mounted(str(tmp / ('p%d%s.shard' % (r, sfx))), str(tmp / 'mnt2'), *ro,
                                 env=env_clean()) as m:
                        t, n = py_run(d2, mods, m.path)
                        res['pulled' + sfx].append(t)
                        counts.add(n)
                        with open(os.path.join(m.path, '.stats')) as f:
                            st = json.load(f)
                        if st['daemon']['commits'] or st['remote']['pyc_fills'] != stored:
                            sys.exit('pulled run compiled something: commits %d, fills %d of %d'
                                     % (st['daemon']['commits'], st['remote']['pyc_fills'],
                                        stored))
                        if not nosync:
                            res['miss_ms'].append(st['remote']['time_ms'])
                            res['req_ms'].append(st['remote']['request_ms'])
                            res['warm'].append(py_run(d2, mods, m.path)[0])
        med = {k: statistics.median(v) for k, v in res.items()}
        print('CPython %s: %d modules of %s imported (%d .pyc pushed), %d rounds, medians'
              % (sys.version.split()[0], n1, '+'.join(PY_PACKAGES), stored, ROUNDS))
        if counts != {n1}:
            print('  (modules imported differ between runs: %s)' % sorted(counts))
        base = med['compiled']
        for k, label in (('compiled', 'compiled, committed (no remote)'),
                         ('compiled_nosync', 'compiled, committed, -o nosync'),
                         ('pulled', 'pulled from the remote'),
                         ('pulled_nosync', 'pulled from the remote, -o nosync'),
                         ('warm', 'warm (local hits)'),
                         ('nocache', 'python3 -B (compile, write nothing)')):
            print('%-36s: %8.1f ms  (%.2fx the compiled run)' % (label, med[k] * 1e3,
                                                                 med[k] / base))
        print('  pulled: daemon misses %.0f ms, of which HTTP requests %.0f ms'
              % (med['miss_ms'], med['req_ms']))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    if WHAT in ('lua', 'all'):
        lua()
    if WHAT in ('python', 'all'):
        python()
