"""CPython shares its compiled modules through the remote (docs/REMOTE.md,
"CPython through the remote").

Machine 1 runs /usr/bin/python3 with PYTHONPYCACHEPREFIX=<mount>/.tree on
a small project: each .pyc committed through the tree view records the
hash of its source, and `scriptcache push` uploads them to a real nginx.
Machine 2 has an empty shard, a mount with -o remote=URL, and the same
project in another directory with other mtimes: its imports fetch the
.pyc from the remote (their header rewritten to the local source's mtime
and size), CPython takes them without compiling, and the output is right.
A source edited on machine 2 is compiled there, never served the remote's
bytes; a tampered blob is refused.  Servers and mounts are real and torn
down whatever happens (tests/remote/test_remote.py, tests/fs/conftest.py);
a machine without nginx or FUSE fails these tests, never skips them.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fs'))

from conftest import mounted  # noqa: E402  (tests/fs/conftest.py)
from test_remote import nginx, ok, remote_env, run  # noqa: E402

PY = '/usr/bin/python3'
TAG = 'pyc ' + sys.implementation.cache_tag  # what a .pyc entry is shared under

PROJECT = {
    'proj/__init__.py': b'from .util import greet\nVERSION = "1.0"\n',
    'proj/util.py': b'def greet(n):\n    assert n  # gone with -O\n    return "hello " + n\n',
    'proj/sub/__init__.py': b'',
    'proj/sub/deep.py': b'import json\n\ndef dump(x):\n    return json.dumps(x, sort_keys=True)\n',
    'proj/hashed.py': b'def h():\n    return "hash-based pyc"\n',
    'app.py': (b'import proj, proj.sub.deep, proj.hashed\n\n'
               b'def main():\n'
               b'    print(proj.greet("fleet"), proj.VERSION)\n'
               b'    print(proj.sub.deep.dump({"b": 1, "a": 2}))\n'
               b'    print(proj.hashed.h())\n'),
}
MODULES = ['app', 'proj', 'proj.util', 'proj.sub', 'proj.sub.deep', 'proj.hashed']
EXPECTED = 'hello fleet 1.0\n{"a": 2, "b": 1}\nhash-based pyc\n'


def write_project(d, mtime):
    for rel, data in PROJECT.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.utime(p, (mtime, mtime))


def source_of(d, mod):
    rel = mod.replace('.', '/')
    return str(d / (rel + '/__init__.py' if (d / rel).is_dir() else rel + '.py'))


def cache_key(d, mod, opt=''):
    """The tree key of a module's .pyc (PYTHONPYCACHEPREFIX mirrors the source)."""
    src = source_of(d, mod)
    base = os.path.splitext(src)[0]
    return '%s.%s%s.pyc' % (base, sys.implementation.cache_tag, '.opt-1' if opt else '')


def py_env(mnt):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith('SCRIPTCACHE') and k != 'PYTHONDONTWRITEBYTECODE'}
    e['PYTHONPYCACHEPREFIX'] = os.path.join(mnt, '.tree')
    return e


def run_app(mnt, d, verbose=False, opt=False):
    code = 'import sys; sys.path.insert(0, %r); import app; app.main()' % str(d)
    flags = (['-v'] if verbose else []) + (['-O'] if opt else [])
    r = subprocess.run([PY, *flags, '-c', code], capture_output=True,
                       env=py_env(mnt), cwd='/', timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors='replace')[-4000:]
    return r.stdout.decode(), r.stderr.decode(errors='replace')


def compile_hashed(mnt, d):
    """proj/hashed.py as a checked-hash .pyc (served unchanged by the remote)."""
    code = ('import py_compile as p; p.compile(%r, doraise=True, '
            'invalidation_mode=p.PycInvalidationMode.CHECKED_HASH)' % source_of(d, 'proj.hashed'))
    r = subprocess.run([PY, '-c', code], capture_output=True, env=py_env(mnt), timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors='replace')


def entries(shard):
    rc, out, err, _ = run('--shard', shard, 'ls', '--json')
    assert rc == 0, err
    return {e['key']: e for e in json.loads(out)}


def stats(m):
    with open(os.path.join(m.path, '.stats')) as f:
        return json.load(f)


def tree_bytes(m, key):
    with open(os.path.join(m.path, '.tree') + key, 'rb') as f:
        return f.read()


def nohash(ents):
    """The entries without a source hash, each of a source that is a symlink."""
    out = [k for k, e in ents.items() if 'source_hash' not in e]
    for k in out:
        assert os.path.islink(k.rsplit('.', 3)[0] + '.py'), k
    return out


def machine1(tmp_path, srv, opt=False):
    """Compile the project through a mount (@opt: with and without -O),
    push; {module: .pyc bytes} (and {module: .opt-1.pyc bytes})."""
    d1 = tmp_path / 'm1' / 'src' / 'app1'
    write_project(d1, 1_600_000_000)
    shard = tmp_path / 'm1' / 'scripts.shard'
    pycs = {}
    with mounted(str(shard), str(tmp_path / 'mnt1')) as m:
        compile_hashed(m.path, d1)
        out, _ = run_app(m.path, d1)
        assert out == EXPECTED
        for mod in MODULES:
            pycs[mod] = tree_bytes(m, cache_key(d1, mod))
        if opt:
            assert run_app(m.path, d1, opt=True)[0] == EXPECTED
            for mod in MODULES:
                pycs['opt', mod] = tree_bytes(m, cache_key(d1, mod, 'opt'))
    ents = entries(shard)
    py = os.path.realpath(PY)
    for mod in MODULES:
        e = ents[cache_key(d1, mod)]
        # the cache path is no source file, but the source's hash is recorded
        assert e['has_source'] is False and e['tag'] == TAG, e
        assert e['exe_path'] == py and len(e['source_hash']) == 32, e
        assert e['source_size'] == len(PROJECT[os.path.relpath(source_of(d1, mod), d1)]), e
        if opt:
            e = ents[cache_key(d1, mod, 'opt')]
            assert e['tag'] == TAG + ' opt-1' and e['source_hash'], e
    assert pycs['proj.hashed'][4:8] == b'\x03\x00\x00\x00'  # checked hash
    assert pycs['proj.util'][4:8] == b'\x00\x00\x00\x00'    # timestamp
    # With -O, the standard library's .opt-1.pyc too (Debian ships none);
    # one whose source is a symbolic link (Debian's sitecustomize.py) is
    # not read, so it records no source hash and stays local.
    n = len([e for e in ents.values() if 'source_hash' in e])
    assert n == len(ents) - len(nohash(ents)) and (n == len(MODULES) or opt), sorted(ents)
    j = json.loads(ok('--shard', shard, 'push', '--json', env=remote_env(srv)))
    assert j['entries'] == n and j['stored'] == n, j
    assert j['skipped_no_source_hash'] == len(ents) - n, j
    return d1, pycs


def machine2_dir(tmp_path):
    d2 = tmp_path / 'm2' / 'elsewhere' / 'app2'
    write_project(d2, 1_700_000_000)
    return d2


def test_python_imports_from_the_remote_without_compiling(tmp_path):
    with nginx(tmp_path) as srv:
        d1, pycs = machine1(tmp_path, srv)
        d2 = machine2_dir(tmp_path)
        shard2 = tmp_path / 'm2' / 'scripts.shard'
        nlog = len(srv.log_lines())
        with mounted(str(shard2), str(tmp_path / 'mnt2'), '-o', 'remote=' + srv.url) as m:
            out, err = run_app(m.path, d2, verbose=True)
            assert out == EXPECTED
            for mod in MODULES:
                pyc = os.path.join(m.path, '.tree') + cache_key(d2, mod)
                # CPython took the fetched .pyc: no compile, no write
                assert '# %s matches %s' % (pyc, source_of(d2, mod)) in err, (mod, err[-3000:])
                assert "# code object from '%s'" % pyc in err, mod
                assert "# created '%s'" % pyc not in err, mod
            s = stats(m)
            r = s['remote']
            assert r['pyc_fills'] == len(MODULES) and r['fills'] == len(MODULES), r
            assert r['hits'] == len(MODULES) and r['integrity_failures'] == 0, r
            assert r['pyc_refused'] == 0 and r['fill_errors'] == 0, r
            assert s['daemon']['commits'] == 0, s['daemon']
            gets = [ln for ln in srv.log_lines()[nlog:] if '"GET /' in ln]
            assert sum('/cas/' in ln for ln in gets) == len(MODULES), gets
            assert not any('"PUT ' in ln for ln in srv.log_lines()[nlog:])
            # in the shard: machine 2's keys, header made for machine 2's source
            ents = entries(shard2)
            for mod in MODULES:
                e = ents[cache_key(d2, mod)]
                assert e['tag'] == TAG and e['has_source'] is False and e['source_hash'], e
                got = tree_bytes(m, cache_key(d2, mod))
                st = os.stat(source_of(d2, mod))
                if mod == 'proj.hashed':
                    assert got == pycs[mod]  # hash-based: served unchanged
                else:
                    assert got[:8] == pycs[mod][:8] and got[16:] == pycs[mod][16:]
                    assert int.from_bytes(got[8:12], 'little') == st.st_mtime_ns // 10**9
                    assert int.from_bytes(got[12:16], 'little') == st.st_size
                    assert got[8:12] != pycs[mod][8:12]  # machine 1's mtime was another
            # a second run is local: no request, no compile
            nreq = stats(m)['remote']['requests']
            out, err = run_app(m.path, d2, verbose=True)
            assert out == EXPECTED and '# created' not in err
            s = stats(m)
            assert s['remote']['requests'] == nreq and s['daemon']['commits'] == 0


def test_edited_source_is_compiled_not_served_stale(tmp_path):
    with nginx(tmp_path) as srv:
        d1, pycs = machine1(tmp_path, srv)
        d2 = machine2_dir(tmp_path)
        # same size, other bytes; and one of another size
        util = d2 / 'proj' / 'util.py'
        util.write_bytes(PROJECT['proj/util.py'].replace(b'hello ', b'howdy '))
        deep = d2 / 'proj' / 'sub' / 'deep.py'
        deep.write_bytes(PROJECT['proj/sub/deep.py'].replace(b'sort_keys=True',
                                                             b'sort_keys=False'))
        assert util.stat().st_size == len(PROJECT['proj/util.py'])
        shard2 = tmp_path / 'm2' / 'scripts.shard'
        with mounted(str(shard2), str(tmp_path / 'mnt2'), '-o', 'remote=' + srv.url) as m:
            out, err = run_app(m.path, d2, verbose=True)
            assert out == 'howdy fleet 1.0\n{"b": 1, "a": 2}\nhash-based pyc\n', out
            for mod in ('proj.util', 'proj.sub.deep'):
                pyc = os.path.join(m.path, '.tree') + cache_key(d2, mod)
                assert "# created '%s'" % pyc in err, (mod, err[-3000:])
                assert tree_bytes(m, cache_key(d2, mod)) != pycs[mod]
            s = stats(m)
            r = s['remote']
            assert r['pyc_fills'] == len(MODULES) - 2, r
            assert r['misses'] == 2 and r['integrity_failures'] == 0, r
            assert s['daemon']['commits'] == 2, s['daemon']
            # the local compile is shared as well, under its own source's hash
            ents = entries(shard2)
            assert ents[cache_key(d2, 'proj.util')]['tag'] == TAG
            assert (ents[cache_key(d2, 'proj.util')]['source_hash']
                    != entries(tmp_path / 'm1' / 'scripts.shard')[cache_key(d1, 'proj.util')]
                    ['source_hash'])


def test_tampered_pyc_blob_is_refused(tmp_path):
    with nginx(tmp_path) as srv:
        d1, pycs = machine1(tmp_path, srv)
        d2 = machine2_dir(tmp_path)
        target = os.path.join(srv.root, 'cas', hashlib.sha256(pycs['proj.util']).hexdigest())
        data = bytearray(open(target, 'rb').read())
        data[-3] ^= 0xff
        open(target, 'wb').write(bytes(data))
        shard2 = tmp_path / 'm2' / 'scripts.shard'
        with mounted(str(shard2), str(tmp_path / 'mnt2'), '-o', 'remote=' + srv.url) as m:
            out, err = run_app(m.path, d2, verbose=True)
            assert out == EXPECTED
            pyc = os.path.join(m.path, '.tree') + cache_key(d2, 'proj.util')
            assert "# created '%s'" % pyc in err  # compiled here instead
            got = tree_bytes(m, cache_key(d2, 'proj.util'))
            # compiled from machine 2's file: its path is the code's filename
            assert str(d2).encode() in got and got != bytes(data)
            assert str(d1).encode() in pycs['proj.util']
            s = stats(m)
            r = s['remote']
            # (the lookup of the name before Python's rename asks again: a
            # refused blob is not remembered as a 404 is)
            assert 1 <= r['integrity_failures'] <= 2, r
            assert r['pyc_fills'] == len(MODULES) - 1 and r['fill_errors'] == 0, r
            assert r['breaker']['state'] == 'closed' and s['daemon']['commits'] == 1


def test_no_remote_for_a_name_that_is_no_pyc_of_a_source(tmp_path):
    """Names with no source (or not of the .pyc form) never cost a request,
    and a mount without -o remote leaves the tree as it was."""
    with nginx(tmp_path) as srv:
        d1, _ = machine1(tmp_path, srv)
        shard2 = tmp_path / 'm2' / 'scripts.shard'
        nlog = len(srv.log_lines())
        with mounted(str(shard2), str(tmp_path / 'mnt2'), '-o', 'remote=' + srv.url) as m:
            tree = os.path.join(m.path, '.tree')
            for key in (str(d1) + '/proj/nosuch.%s.pyc' % sys.implementation.cache_tag,
                        str(d1) + '/proj/util.pyc', str(d1) + '/proj/util.py'):
                assert not os.path.exists(tree + key), key
            r = stats(m)['remote']
            assert r['lookups'] == 0 and r['requests'] == 0, r
            # machine 1's own directory exists here: the same keys do hit
            assert os.path.exists(tree + cache_key(d1, 'proj.util'))
            assert stats(m)['remote']['pyc_fills'] == 1
        assert len([ln for ln in srv.log_lines()[nlog:] if '/ac/' in ln]) == 1


def test_optimized_pyc_are_shared_under_their_own_tag(tmp_path):
    """python3 -O's .opt-1.pyc (asserts stripped) is another action key than
    the plain .pyc of the same source: each machine gets the level it asks."""
    with nginx(tmp_path) as srv:
        d1, pycs = machine1(tmp_path, srv, opt=True)
        assert pycs['opt', 'proj.util'][16:] != pycs['proj.util'][16:]
        d2 = machine2_dir(tmp_path)
        shard2 = tmp_path / 'm2' / 'scripts.shard'
        with mounted(str(shard2), str(tmp_path / 'mnt2'), '-o', 'remote=' + srv.url) as m:
            out, err = run_app(m.path, d2, verbose=True, opt=True)
            assert out == EXPECTED
            assert not any(str(d2) in ln for ln in err.splitlines() if '# created' in ln)
            s = stats(m)
            ents = entries(shard2)
            # every entry came from the remote: the project's, and the
            # standard library's .opt-1.pyc machine 1 compiled
            local = nohash(ents)
            assert s['remote']['pyc_fills'] == len(ents) - len(local), s
            assert s['daemon']['commits'] == len(local), s
            assert set(ents) >= {cache_key(d2, mod, 'opt') for mod in MODULES}
            assert all(e['tag'] == TAG + ' opt-1' for k, e in ents.items() if k not in local)
            for mod in MODULES:
                assert ents[cache_key(d2, mod, 'opt')]['tag'] == TAG + ' opt-1'
                got = tree_bytes(m, cache_key(d2, mod, 'opt'))
                assert got[16:] == pycs['opt', mod][16:], mod


def test_stopped_server_costs_one_budget_then_python_compiles(tmp_path):
    """A server that accepts and never answers: the first .pyc miss waits
    the budget, the breaker opens, the others ask nothing; CPython compiles
    every module and the output is right."""
    with nginx(tmp_path) as srv:
        machine1(tmp_path, srv)
        d2 = machine2_dir(tmp_path)
        shard2 = tmp_path / 'm2' / 'scripts.shard'
        with mounted(str(shard2), str(tmp_path / 'mnt2'), '-o',
                     'remote=%s,remote_timeout_ms=300' % srv.url) as m:
            os.kill(srv.proc.pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                out, err = run_app(m.path, d2)
                took = time.monotonic() - t0
            finally:
                os.kill(srv.proc.pid, signal.SIGCONT)
            assert out == EXPECTED
            s = stats(m)
            r = s['remote']
            assert r['breaker']['opens'] == 1 and r['timeouts'] >= 1, r
            assert r['pyc_lookups'] == 1 and r['breaker']['skipped'] >= len(MODULES) - 1, r
            assert r['pyc_fills'] == 0 and s['daemon']['commits'] == len(MODULES), s
            print('stopped server: python3 run %.0f ms (budget 300 ms)' % (took * 1e3))
            assert took < 0.3 + 5, took


def test_verified_blob_that_is_no_pyc_is_refused(tmp_path):
    """A record and blob that verify (the server's objects were replaced
    consistently) but are not a .pyc CPython takes: too short, or a flags
    word CPython does not know; or an unchecked-hash .pyc (flags 1), which
    CPython would run without comparing it with the source.  Refused,
    counted, not put; CPython compiles the module."""
    with nginx(tmp_path) as srv:
        d1, pycs = machine1(tmp_path, srv)
        d2 = machine2_dir(tmp_path)
        fakes = {'proj.util': b'junk',
                 'proj.sub.deep': pycs['proj.sub.deep'][:4] + b'\x07\x00\x00\x00' +
                 pycs['proj.sub.deep'][8:],
                 'proj.sub': pycs['proj.sub'][:4] + b'\x01\x00\x00\x00' +
                 pycs['proj.sub'][8:]}
        acdir = os.path.join(srv.root, 'ac')
        for mod, fake in fakes.items():
            old = hashlib.sha256(pycs[mod]).hexdigest()
            new = hashlib.sha256(fake).hexdigest()
            with open(os.path.join(srv.root, 'cas', new), 'wb') as f:
                f.write(fake)
            hit = 0
            for name in os.listdir(acdir):
                p = os.path.join(acdir, name)
                rec = open(p).read()
                if 'blob-sha256 %s\n' % old in rec:
                    rec = rec.replace('blob-sha256 %s\n' % old, 'blob-sha256 %s\n' % new)
                    rec = rec.replace('blob-size %d\n' % len(pycs[mod]),
                                      'blob-size %d\n' % len(fake))
                    open(p, 'w').write(rec)
                    hit += 1
            assert hit == 1, (mod, hit)
        shard2 = tmp_path / 'm2' / 'scripts.shard'
        with mounted(str(shard2), str(tmp_path / 'mnt2'), '-o', 'remote=' + srv.url) as m:
            out, err = run_app(m.path, d2, verbose=True)
            assert out == EXPECTED
            for mod in fakes:
                pyc = os.path.join(m.path, '.tree') + cache_key(d2, mod)
                assert "# created '%s'" % pyc in err, mod
                got = tree_bytes(m, cache_key(d2, mod))
                assert got != fakes[mod] and str(d2).encode() in got
            s = stats(m)
            r = s['remote']
            # (each refused twice at most: the lookup before Python's rename)
            assert 3 <= r['pyc_refused'] <= 6 and r['integrity_failures'] == 0, r
            assert r['pyc_fills'] == len(MODULES) - 3 and r['fill_errors'] == 0, r
            assert s['daemon']['commits'] == 3, s['daemon']
