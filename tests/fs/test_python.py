"""Unmodified CPython 3.11 keeps its bytecode in the shard (issue 6).

Python is pointed at the mount's tree view with PYTHONPYCACHEPREFIX=<mount>/.tree
and runs real workloads; every mount is real (conftest.mounted) and is
unmounted in a finally block.  The interpreter is /usr/bin/python3 (the
system CPython 3.11), and PYTHONDONTWRITEBYTECODE, which these machines
set, is removed from its environment: otherwise Python writes nothing.
"""
import errno
import json
import marshal
import os
import pathlib
import subprocess
import time

import pytest

from conftest import cli, encode, mounted, wait_for

PY = '/usr/bin/python3'
MAGIC = None  # importlib.util.MAGIC_NUMBER of PY, filled on first use
ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = [l.strip() for l in (ROOT / 'bench' / 'py_bench_modules.txt').read_text().splitlines()
           if l.strip() and not l.startswith('#')]

# Prints, as JSON: a digest of what the imports computed, and for every
# module loaded from a .py source, its source path and cached (.pyc) path.
REPORT = r'''
import json, sys
mods = {}
for name, m in list(sys.modules.items()):
    spec = getattr(m, '__spec__', None)
    if spec and spec.origin and spec.origin.endswith('.py') and spec.cached:
        mods[name] = [spec.origin, spec.cached]
print(json.dumps({'result': RESULT, 'modules': mods}, sort_keys=True))
'''


def py_env(prefix, extra=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONDONTWRITEBYTECODE', 'PYTHONPYCACHEPREFIX', 'PYTHONHOME',
                        'PYTHONPATH', 'PYTHONSTARTUP', 'PYTHONNOUSERSITE')}
    if prefix is not None:
        env['PYTHONPYCACHEPREFIX'] = prefix
    env.update(extra or {})
    return env


def program(imports, result):
    return 'import %s\nRESULT = %s\n%s' % (', '.join(imports), result, REPORT)


def start_py(prefix, imports, result='None', verbose=False, path=None, extra=None):
    args = [PY] + (['-v'] if verbose else []) + ['-c', program(imports, result)]
    more = dict(extra or {})
    if path:
        more['PYTHONPATH'] = path
    return subprocess.Popen(args, env=py_env(prefix, more),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(p):
    out, err = p.communicate(timeout=120)
    err = err.decode(errors='replace')
    assert p.returncode == 0, err[-3000:]
    return json.loads(out), err


def run_py(prefix, imports, result='None', verbose=False, path=None, extra=None):
    return finish(start_py(prefix, imports, result, verbose, path, extra))


def quiet(err):
    """stderr of a non-verbose run must be empty: no warning, no traceback."""
    assert err == '', err[-3000:]


def loaded(err, prefix):
    """The .pyc files python -v says it loaded from under prefix: its line
    "# <prefix><key> matches <source>" for each, as {key: source}."""
    got = {}
    for l in err.splitlines():
        if l.startswith('# ' + prefix + '/') and ' matches ' in l:
            cached, source = l[2:].split(' matches ', 1)
            got[cached[len(prefix):]] = source
    return got


def said_about(err, words):
    """The lines of python -v output that mention any of words."""
    return [l for l in err.splitlines() if any(w in l for w in words)]


def daemon_state(m):
    """For assertion messages: is the mount's daemon still running?  (A
    sanitizer's report takes a while before the abort: wait a little.)"""
    try:
        rc = m.proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        return 'the daemon is running'
    return 'the daemon exited with %d: %s' % (
        rc, m.proc.stderr.read().decode(errors='replace')[:3000])


def shard_entries(shard):
    return {x['key']: x for x in json.loads(cli('--shard', shard, 'ls', '--json').stdout)}


def stats(m):
    with open(os.path.join(m.path, '.stats')) as f:
        return json.load(f)


def generation(m):
    return stats(m)['shard_stats']['generation']


def check_pyc(blob, source):
    """The blob is a whole, valid .pyc of source: header and code object."""
    global MAGIC
    if MAGIC is None:
        MAGIC = subprocess.run([PY, '-c', 'import importlib.util,sys;'
                                'sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER)'],
                               capture_output=True, check=True).stdout
    st = os.stat(source)
    assert blob[:4] == MAGIC, source
    assert int.from_bytes(blob[4:8], 'little') == 0, source  # timestamp-based
    assert int.from_bytes(blob[8:12], 'little') == int(st.st_mtime) & 0xFFFFFFFF, source
    assert int.from_bytes(blob[12:16], 'little') == st.st_size & 0xFFFFFFFF, source
    code = marshal.loads(blob[16:])
    assert code.co_filename == source


def dist_pyc(origin, key):
    """The .pyc the distribution ships for source origin and cache key
    (/A/B/__pycache__/<name> for key /A/B/<name>), if it is root's; else None."""
    p = os.path.join(os.path.dirname(origin), '__pycache__', os.path.basename(key))
    try:
        return p if os.stat(p).st_uid == 0 else None
    except FileNotFoundError:
        return None


def check_modules(m, report, prefix, dist=False):
    """Every module Python loaded from source has its .pyc in the shard,
    keyed by its path under the prefix; also in the flat view, with blob and
    metadata.json, stored with no source.  dist: the mount serves the
    distribution's .pyc (the default), so a module whose .pyc Debian
    ships must have no entry instead."""
    entries = shard_entries(m.shard)
    keys = {}
    for name, (origin, cached) in report['modules'].items():
        assert cached.startswith(prefix + '/'), (name, cached)
        key = cached[len(prefix):]
        if dist and dist_pyc(origin, key):
            assert key not in entries, (name, key)
            continue
        assert key in entries, (name, key)
        keys[key] = origin
    # nothing else was committed: no temporary file, ever
    assert set(entries) == set(keys), set(entries) ^ set(keys)
    for key, origin in keys.items():
        flat = m.entry(key)
        assert sorted(os.listdir(flat)) == ['blob', 'metadata.json']
        with open(os.path.join(flat, 'blob'), 'rb') as f:
            blob = f.read()
        check_pyc(blob, origin)
        with open(os.path.join(m.path, '.tree' + key), 'rb') as f:
            assert f.read() == blob
        meta = json.load(open(os.path.join(flat, 'metadata.json')))
        assert meta['key'] == key and meta['status'] == 'fresh' and meta['source'] is None
    return keys


# ---- the protocol, with plain system calls ----

def test_tree_view_protocol(env):
    with mounted(env.shard, env.mnt, '-o', 'nosync') as m:
        tree = os.path.join(m.path, '.tree')
        assert os.path.isdir(tree)
        assert '.tree' not in os.listdir(m.path)  # hidden, like .stats
        # a directory that does not exist in the real file system either
        # (the tree shows real directories: docs/FS.md, "Underneath")
        assert not os.path.exists('/sc-srv')
        d = os.path.join(tree, 'sc-srv', 'app')
        with pytest.raises(FileNotFoundError):
            os.stat(d)
        os.makedirs(d)                       # mkdir on demand, each level
        with pytest.raises(FileExistsError):
            os.mkdir(d)
        assert os.listdir(os.path.join(tree, 'sc-srv')) == ['app']
        final = os.path.join(d, 'mod.cpython-311.pyc')
        tmp = final + '.140234'
        data = os.urandom(5000)
        fd = os.open(tmp, os.O_EXCL | os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, data[:3000])
        os.write(fd, data[3000:])
        os.close(fd)
        with pytest.raises(FileExistsError):
            os.open(tmp, os.O_EXCL | os.O_CREAT | os.O_WRONLY)
        assert os.listdir(d) == [os.path.basename(tmp)]
        assert shard_entries(env.shard) == {}       # the temp is never an entry
        os.replace(tmp, final)                      # the rename commits
        entries = shard_entries(env.shard)
        assert list(entries) == ['/sc-srv/app/mod.cpython-311.pyc']
        assert env.get('/sc-srv/app/mod.cpython-311.pyc').stdout == data
        assert os.listdir(d) == ['mod.cpython-311.pyc']
        with open(final, 'rb') as f:
            assert f.read() == data
        assert os.stat(final).st_mode & 0o777 == 0o644
        # same entry in the flat view, with no source
        flat = m.entry('/sc-srv/app/mod.cpython-311.pyc')
        assert os.path.exists(os.path.join(flat, 'blob'))
        meta = json.load(open(os.path.join(flat, 'metadata.json')))
        assert meta['source'] is None and meta['status'] == 'fresh'
        assert meta['fingerprint']['tag'] == 'scriptcachefs'
        assert meta['fingerprint']['exe_path'] == os.path.realpath(PY)
        # O_EXCL on an existing name
        with pytest.raises(FileExistsError):
            os.open(final, os.O_EXCL | os.O_CREAT | os.O_WRONLY)
        # a temp that is unlinked (Python's error path) leaves nothing
        fd = os.open(tmp, os.O_EXCL | os.O_CREAT | os.O_WRONLY)
        os.write(fd, b'junk')
        os.close(fd)
        os.unlink(tmp)
        assert os.listdir(d) == ['mod.cpython-311.pyc']
        # a second version replaces the first one atomically
        data2 = os.urandom(7000)
        with open(tmp, 'xb') as f:
            f.write(data2)
        os.replace(tmp, final)
        with open(final, 'rb') as f:
            assert f.read() == data2
        # The other view shows it right after (docs/FS.md, "Coherence"):
        # the renaming thread drops the kernel's cached flat "blob" entry
        # just after its reply, which a read at once may still beat.
        def flat_blob():
            with open(os.path.join(flat, 'blob'), 'rb') as f:
                return f.read()
        wait_for(lambda: flat_blob() == data2, timeout=0.5)
        # errors: renames leave the directory, missing names, dirs as files
        with open(tmp, 'xb') as f:
            f.write(b'x')
        with pytest.raises(OSError) as ei:
            os.rename(tmp, os.path.join(tree, 'sc-srv', 'x.pyc'))
        assert ei.value.errno == errno.EXDEV
        os.unlink(tmp)
        with pytest.raises(FileNotFoundError):
            open(os.path.join(d, 'missing.pyc'), 'rb')
        with pytest.raises(IsADirectoryError):
            open(os.path.join(tree, 'sc-srv'), 'rb')
        # an empty directory made by mkdir lives in memory only
        os.mkdir(os.path.join(tree, 'empty'))
        assert 'empty' in os.listdir(tree)
        os.rmdir(os.path.join(tree, 'empty'))
        assert 'empty' not in os.listdir(tree)
        os.mkdir(os.path.join(tree, 'empty2'))
        with open(os.path.join(tree, 'empty2', 't.1'), 'xb') as f:
            f.write(b'never renamed')
        os.mkdir(os.path.join(tree, 'empty3'))
    with mounted(env.shard, env.mnt) as m:
        tree = os.path.join(m.path, '.tree')
        # as in a directory, a file left under its own name stays (unmount
        # completes it); the empty directory is gone
        assert sorted(os.listdir(tree)) == ['empty2', 'sc-srv']
        assert sorted(shard_entries(env.shard)) == ['/empty2/t.1', '/sc-srv/app/mod.cpython-311.pyc']
        assert open(os.path.join(tree, 'empty2', 't.1'), 'rb').read() == b'never renamed'
        os.unlink(os.path.join(tree, 'empty2', 't.1'))
        # rm in the tree evicts the entry; its directory stays, empty, as a
        # directory does, until rmdir
        os.unlink(os.path.join(tree, 'sc-srv', 'app', 'mod.cpython-311.pyc'))
        assert shard_entries(env.shard) == {}
        time.sleep(0.2)  # a rebuild of the index (the removal) keeps it too
        assert os.listdir(os.path.join(tree, 'sc-srv', 'app')) == []
        with pytest.raises(OSError) as ei:
            os.rmdir(os.path.join(tree, 'sc-srv'))
        assert ei.value.errno == errno.ENOTEMPTY
        os.rmdir(os.path.join(tree, 'sc-srv', 'app'))
        os.rmdir(os.path.join(tree, 'sc-srv'))
        assert not os.path.exists(os.path.join(tree, 'sc-srv'))
    cli('--shard', env.shard, 'verify')


def test_tree_coherent_with_other_writers(env):
    """Entries put and removed by other processes appear in and vanish from
    the tree, also after their bytes were read (warm page cache)."""
    with mounted(env.shard, env.mnt) as m:
        tree = os.path.join(m.path, '.tree')
        os.listdir(tree)  # the index exists from now on
        env.put('/opt/x/a.pyc', b'one', '--no-source')
        p = os.path.join(tree, 'opt', 'x', 'a.pyc')
        wait_for(lambda: os.path.exists(p), timeout=2)
        assert open(p, 'rb').read() == b'one'
        env.put('/opt/x/a.pyc', b'two!', '--no-source')
        wait_for(lambda: open(p, 'rb').read() == b'two!', timeout=2)
        cli('--shard', env.shard, 'rm', '--key', '/opt/x/a.pyc')
        wait_for(lambda: not os.path.exists(p), timeout=2)
        wait_for(lambda: os.listdir(tree) == [], timeout=2)
        # the flat view's rm reaches the tree too
        env.put('/opt/y.pyc', b'y', '--no-source')
        q = os.path.join(tree, 'opt', 'y.pyc')
        wait_for(lambda: os.path.exists(q), timeout=2)
        assert open(q, 'rb').read() == b'y'
        os.unlink(os.path.join(m.entry('/opt/y.pyc'), 'blob'))
        wait_for(lambda: not os.path.exists(q), timeout=2)


# ---- real workloads ----

def test_stdlib_imports_populate_then_read(env):
    """-o no_dist_pyc: the standard library is compiled and committed."""
    prefix_of = lambda m: os.path.join(m.path, '.tree')
    with mounted(env.shard, env.mnt, '-o', 'nosync,no_dist_pyc') as m:
        prefix = prefix_of(m)
        assert stats(m)['options']['dist_pyc'] is False
        first, err = run_py(prefix, MODULES, verbose=True)
        assert 'could not create' not in err
        keys = check_modules(m, first, prefix)
        assert len(keys) >= 150, len(keys)
        assert stats(m)['daemon']['dist_pyc_hits'] == 0
        assert loaded(err, prefix) == {}        # nothing was there to read
        gen, commits = generation(m), stats(m)['daemon']['commits']
        assert commits == len(keys)
        # second run, same mount: every module from the shard, nothing written
        second, err = run_py(prefix, MODULES, verbose=True)
        assert second == first
        assert loaded(err, prefix) == keys
        assert generation(m) == gen and stats(m)['daemon']['commits'] == commits
        out, err = run_py(prefix, MODULES)
        quiet(err)
        assert out == first
    cli('--shard', env.shard, 'verify')
    # a new mount: the bytes now come from the shard, not the page cache
    # (the committed entries win over the distribution's files)
    with mounted(env.shard, env.mnt) as m:
        prefix = prefix_of(m)
        third, err = run_py(prefix, MODULES, verbose=True)
        assert third == first
        assert loaded(err, prefix) == keys
        st = stats(m)
        assert st['shard_stats']['generation'] == gen and st['daemon']['commits'] == 0
        assert st['daemon']['reads'] >= len(keys)
        assert st['daemon']['dist_pyc_hits'] == 0


def test_second_python_hits_a_lower_shard(env, tmp_path):
    """A shard filled by a first Python run through a mount, built into a
    lower shard (root's, 0644), serves a second run through a fresh mount
    over an empty top shard: every module from the lower shard, nothing
    compiled, nothing written to the top (docs/FS.md, "Layers")."""
    prefix_of = lambda m: os.path.join(m.path, '.tree')
    with mounted(env.shard, env.mnt, '-o', 'nosync,no_dist_pyc') as m:
        prefix = prefix_of(m)
        first, err = run_py(prefix, MODULES, verbose=True)
        keys = check_modules(m, first, prefix)
        assert len(keys) >= 150, len(keys)
    low = str(tmp_path / 'python.shard')
    cli('--shard', env.shard, 'build', low)
    os.chown(low, 0, 0)
    os.chmod(low, 0o644)
    assert set(shard_entries(low)) == set(keys)
    with open(low, 'rb') as f:
        low_bytes = f.read()
    top = str(tmp_path / 'top.shard')
    with mounted(top, env.mnt, '-o', 'nosync,no_dist_pyc,lower=' + low) as m:
        prefix = prefix_of(m)
        assert [l['path'] for l in stats(m)['layers']] == [top, low]
        hits = stats(m)['daemon']['lower_hits']
        second, err = run_py(prefix, MODULES, verbose=True)
        assert second == first
        assert loaded(err, prefix) == keys, daemon_state(m)
        st = stats(m)
        assert st['daemon']['commits'] == 0
        assert st['daemon']['lower_hits'] - hits >= len(keys)
        for key in list(keys)[:20]:
            meta = json.load(open(os.path.join(m.entry(key), 'metadata.json')))
            assert meta['layer'] == 1 and meta['layer_path'] == low
        out, err = run_py(prefix, MODULES)
        quiet(err)
        assert out == first
    assert shard_entries(top) == {}       # the top gained no entry
    with open(low, 'rb') as f:
        assert f.read() == low_bytes      # the lower shard is never written


def dist_keys(report, prefix):
    """{key: (module, source, the distribution's .pyc)} of the modules of a
    run whose .pyc the distribution ships."""
    got = {}
    for name, (origin, cached) in report['modules'].items():
        key = cached[len(prefix):]
        pyc = dist_pyc(origin, key)
        if pyc:
            got[key] = (name, origin, pyc)
    return got


def same_run(out, ref):
    """Same result, same modules from the same sources (the cache paths
    differ: __pycache__ without a prefix, the prefix with one)."""
    assert out['result'] == ref['result']
    assert {n: o for n, (o, c) in out['modules'].items()} == \
           {n: o for n, (o, c) in ref['modules'].items()}


def test_dist_pyc_read_underneath_empty_mount(env):
    """An empty mount serves the .pyc Debian ships in __pycache__ (docs/FS.md,
    "Underneath"): a first run imports the standard library without
    compiling it and commits only the modules Debian did not compile."""
    make_pkg(env.src)
    path = str(env.src)
    imports = MODULES + ['pkg.a', 'pkg.sub.b']
    result = 'pkg.sub.b.g()'
    # reference: no prefix, nothing written (pkg gets no __pycache__, which
    # the mount would otherwise serve as the distribution's)
    ref, err = run_py(None, imports, result, path=path, extra={'PYTHONDONTWRITEBYTECODE': '1'})
    quiet(err)
    assert not (env.src / 'pkg' / '__pycache__').exists()
    with mounted(env.shard, env.mnt, '-o', 'nosync') as m:
        prefix = os.path.join(m.path, '.tree')
        first, err = run_py(prefix, imports, result, path=path, verbose=True)
        same_run(first, ref)
        dist = dist_keys(first, prefix)
        assert len(dist) >= 150, len(dist)
        # Python read and accepted every one of them ("matches"): none compiled
        got = loaded(err, prefix)
        missing = sorted(set(dist) - set(got))
        assert not missing, (missing[:10], said_about(err, missing[:3]), daemon_state(m))
        for key, (name, origin, pyc) in dist.items():
            assert got[key] == origin
        # ... byte for byte the distribution's file, read-only
        for key, (name, origin, pyc) in list(dist.items())[:20]:
            f = prefix + key
            with open(f, 'rb') as a, open(pyc, 'rb') as b:
                assert a.read() == b.read(), key
            st, real = os.stat(f), os.stat(pyc)
            assert st.st_size == real.st_size and st.st_mtime_ns == real.st_mtime_ns
            assert st.st_mode & 0o7777 == real.st_mode & 0o444
        # nothing written for them; our own package compiled and committed
        keys = check_modules(m, first, prefix, dist=True)
        assert sorted(os.path.relpath(o, path) for o in keys.values()) == [
            'pkg/__init__.py', 'pkg/a.py', 'pkg/sub/__init__.py', 'pkg/sub/b.py']
        st = stats(m)['daemon']
        assert st['commits'] == 4 and st['dist_pyc_hits'] >= len(dist), st
        assert st['dist_pyc_refused'] == 0, st
        # readdir lists what the cache holds; the real directories are found
        # by name only
        assert os.listdir(prefix) == [path.split('/')[1]]
        assert os.path.isdir(os.path.join(prefix, 'usr', 'lib'))
        assert os.listdir(os.path.join(prefix, 'usr', 'lib')) == []
        # a second run reads the same, writes nothing
        gen = generation(m)
        second, err = run_py(prefix, imports, result, path=path)
        quiet(err)
        assert second == first and generation(m) == gen
        assert stats(m)['daemon']['commits'] == 4
    cli('--shard', env.shard, 'verify')
    # read-only, new mount: the package from the shard, the standard
    # library from underneath, nothing to write
    before = shard_entries(env.shard)
    with mounted(env.shard, env.mnt, '-o', 'ro') as m:
        prefix = os.path.join(m.path, '.tree')
        out, err = run_py(prefix, imports, result, path=path, verbose=True)
        same_run(out, ref)
        assert 'could not create' not in err  # nothing was missing
        assert loaded(err, prefix) == dict(keys, **{k: v[1] for k, v in dist.items()})
        assert stats(m)['daemon']['dist_pyc_hits'] >= len(dist)
    assert shard_entries(env.shard) == before


def make_pkg(root):
    files = {
        'pkg/__init__.py': 'VERSION = 1\n',
        'pkg/a.py': 'def f():\n    return "a1"\n',
        'pkg/sub/__init__.py': '',
        'pkg/sub/b.py': 'from pkg.a import f\ndef g():\n    return f() + "-b1"\n',
    }
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return {rel: str(root / rel) for rel in files}


def edit(path, text):
    """Rewrite a source so that Python must see it changed: new size and an
    mtime at least 2 s away from the old one (the .pyc keeps seconds)."""
    old = os.stat(path).st_mtime
    with open(path, 'w') as f:
        f.write(text)
    os.utime(path, (old + 5, old + 5))


def test_package_with_edits(env):
    src = make_pkg(env.src)
    imports = ['json', 'pkg.a', 'pkg.sub.b']
    result = 'pkg.sub.b.g() + str(pkg.VERSION)'
    with mounted(env.shard, env.mnt, '-o', 'nosync') as m:
        prefix = os.path.join(m.path, '.tree')
        path = str(env.src)
        first, err = run_py(prefix, imports, result, path=path)
        quiet(err)
        assert first['result'] == 'a1-b11'
        keys = check_modules(m, first, prefix, dist=True)
        pkg_keys = {k for k, o in keys.items() if o.startswith(path)}
        assert len(pkg_keys) == 4
        src_tree = os.path.join(prefix, path.lstrip('/'))
        assert sorted(os.listdir(os.path.join(src_tree, 'pkg'))) == [
            '__init__.cpython-311.pyc', 'a.cpython-311.pyc', 'sub']
        before = shard_entries(env.shard)
        gen = generation(m)
        again, err = run_py(prefix, imports, result, path=path)
        quiet(err)
        assert again == first and generation(m) == gen
        # edit one source: that .pyc alone is rewritten, the entry replaced
        edit(src['pkg/a.py'], 'def f():\n    return "a2, edited"\n')
        third, err = run_py(prefix, imports, result, path=path)
        quiet(err)
        assert third['result'] == 'a2, edited-b11'
        assert generation(m) == gen + 1
        after = shard_entries(env.shard)
        assert set(after) == set(before)
        a_key = first['modules']['pkg.a'][1][len(prefix):]
        for k in after:
            same = (after[k]['offset'], after[k]['blob_id']) == \
                   (before[k]['offset'], before[k]['blob_id'])
            assert same == (k != a_key), k
        check_modules(m, third, prefix, dist=True)  # the new blob matches the new source
        fourth, err = run_py(prefix, imports, result, path=path)
        quiet(err)
        assert fourth == third and generation(m) == gen + 1
        # a new module in the package, and a new subpackage
        (env.src / 'pkg' / 'c.py').write_text('C = 3\n')
        (env.src / 'pkg' / 'deep' / 'er').mkdir(parents=True)
        (env.src / 'pkg' / 'deep' / '__init__.py').write_text('')
        (env.src / 'pkg' / 'deep' / 'er' / '__init__.py').write_text('E = 5\n')
        fifth, err = run_py(prefix, imports + ['pkg.c', 'pkg.deep.er'],
                            result + ' + str(pkg.c.C + pkg.deep.er.E)', path=path)
        quiet(err)
        assert fifth['result'] == 'a2, edited-b118'
        assert generation(m) == gen + 4
        check_modules(m, fifth, prefix, dist=True)
    cli('--shard', env.shard, 'verify')


def test_two_pythons_at_once(env):
    make_pkg(env.src)
    imports = MODULES + ['pkg.a', 'pkg.sub.b']
    path = str(env.src)
    # no_dist_pyc: both processes compile and commit the whole standard library
    with mounted(env.shard, env.mnt, '-o', 'nosync,no_dist_pyc') as m:
        prefix = os.path.join(m.path, '.tree')
        for round_ in range(2):
            procs = [start_py(prefix, imports, 'pkg.sub.b.g()', path=path) for _ in range(2)]
            outs = [finish(p) for p in procs]
            for out, err in outs:
                quiet(err)
            assert outs[0][0] == outs[1][0]
            cli('--shard', env.shard, 'verify')
            # every entry is a whole .pyc of its source (no torn entry);
            # a module may be missing if both processes drew the same
            # temporary name (Python then skips writing it, by design)
            entries = shard_entries(env.shard)
            origin = {c[len(prefix):]: o for o, c in outs[0][0]['modules'].values()}
            assert set(entries) <= set(origin)
            assert len(entries) >= len(origin) - 5
            for key in entries:
                with open(os.path.join(m.entry(key), 'blob'), 'rb') as f:
                    check_pyc(f.read(), origin[key])
            # a later run completes the cache and reads what is there
            out, err = run_py(prefix, imports, 'pkg.sub.b.g()', path=path)
            quiet(err)
            assert out == outs[0][0]
            check_modules(m, out, prefix)
            cli('--shard', env.shard, 'clear')
            wait_for(lambda: os.listdir(prefix) == [], timeout=2)


def test_read_only_mount_falls_back_silently(env):
    src = make_pkg(env.src)
    path = str(env.src)
    imports = ['json', 'email.message', 'pkg.a', 'pkg.sub.b']
    result = 'pkg.sub.b.g()'
    # reference: no prefix at all, no bytecode written
    ref, err = run_py(None, imports, result, path=path, extra={'PYTHONDONTWRITEBYTECODE': '1'})
    # no_dist_pyc: the standard library is what the first run caches, and
    # what the read-only mount must read from the shard (the layer: below)
    with mounted(env.shard, env.mnt, '-o', 'nosync,no_dist_pyc') as m:
        prefix = os.path.join(m.path, '.tree')
        first, err = run_py(prefix, ['json', 'pkg.a'], 'pkg.a.f()', path=path)
        quiet(err)
        cached = check_modules(m, first, prefix)  # {key: source}, every entry
        assert len(cached) > 5
    edit(src['pkg/a.py'], 'def f():\n    return "a1"  # edited\n')
    stale = first['modules']['pkg.a'][1][len(prefix):]

    def check_reads(out, err):
        """Python read from the mount exactly the .pyc of every module of
        this run that the first run cached, except pkg.a (its source was
        edited: Python finds that .pyc stale)."""
        want = {}
        for name, (origin, pyc) in out['modules'].items():
            key = pyc[len(prefix):]
            if key in cached and key != stale:
                want[key] = (name, origin)
        assert {'json', 'json.decoder', 'pkg'} <= {n for n, o in want.values()}
        got = loaded(err, prefix)
        missing = sorted(set(want) - set(got))
        assert not missing, 'not read from the mount: %s\n%s\n%s' % (
            ', '.join('%s (%s)' % (want[k][0], k) for k in missing),
            '\n'.join(said_about(err, [w for k in missing for w in (k, want[k][1])])),
            daemon_state(m))
        assert got == {k: o for k, (n, o) in want.items()}, daemon_state(m)
        assert "# bytecode is stale for 'pkg.a'" in err
        assert 'could not create' in err  # it did try to write

    with mounted(env.shard, env.mnt, '-o', 'ro,no_dist_pyc') as m:
        prefix = os.path.join(m.path, '.tree')
        gen = generation(m)
        # cold: every cached .pyc is read through the daemon
        out, err = run_py(prefix, imports, result, path=path, verbose=True)
        check_reads(out, err)
        # stale pkg/a, cached json, uncached email and pkg.sub: Python tries
        # to write, gets EROFS, and says nothing
        for _ in range(2):
            out, err = run_py(prefix, imports, result, path=path)
            quiet(err)
            assert out['result'] == ref['result']
            assert sorted(out['modules']) == sorted(ref['modules'])
        # warm: the same, from the kernel's caches
        out, err = run_py(prefix, imports, result, path=path, verbose=True)
        check_reads(out, err)
        assert generation(m) == gen
        with pytest.raises(OSError) as ei:
            os.mkdir(os.path.join(prefix, 'x'))
        assert ei.value.errno == errno.EROFS
        assert m.proc.poll() is None, daemon_state(m)
    assert set(shard_entries(env.shard)) == set(cached)
    cli('--shard', env.shard, 'verify')


# ---- writing .pyc files in place, as tools and test suites do ----

def _patches():
    """(name, function patching an open 'r+b' .pyc) pairs: each leaves a
    .pyc the importer must reject and rewrite."""
    def bad_magic(f):
        f.write(b'\0\0\0\0')

    def truncated_header(f):
        f.truncate(10)

    def old_timestamp(f):
        f.seek(8)
        f.write((1).to_bytes(4, 'little'))
    return [('bad magic', bad_magic), ('truncated header', truncated_header),
            ('old timestamp', old_timestamp)]


def test_pyc_patched_in_place_is_recompiled_as_with_a_native_prefix(env, tmp_path):
    """A .pyc patched in place (open 'r+b', seek, write; or truncated) is
    noticed by the importer, which recompiles and rewrites it, exactly as
    with a native prefix: the same bytes end up in both."""
    pkg = tmp_path / 'code'
    pkg.mkdir()
    (pkg / 'patched.py').write_text('VALUE = sum(range(10))\n')
    src = str(pkg / 'patched.py')
    native = str(tmp_path / 'native')
    with mounted(env.shard, env.mnt, '-o', 'nosync') as m:
        tree = os.path.join(m.path, '.tree')
        for prefix in (native, tree):
            out, err = run_py(prefix, ['patched'], 'patched.VALUE', path=str(pkg))
            quiet(err)
            assert out['result'] == 45
        # with a prefix, the cache path is <prefix><source dir>/<name>.pyc
        pyc = {p: p + src[:-3] + '.cpython-311.pyc' for p in (native, tree)}
        good = open(pyc[native], 'rb').read()
        assert open(pyc[tree], 'rb').read() == good
        for what, patch in _patches():
            for prefix in (native, tree):
                with open(pyc[prefix], 'r+b') as f:
                    patch(f)
                assert open(pyc[prefix], 'rb').read() != good, what
            # the mount serves the patched bytes at once
            assert open(pyc[tree], 'rb').read() == open(pyc[native], 'rb').read(), what
            for prefix in (native, tree):
                out, err = run_py(prefix, ['patched'], 'patched.VALUE', path=str(pkg))
                quiet(err)
                assert out['result'] == 45, what
                assert open(pyc[prefix], 'rb').read() == good, (what, prefix)
        key = src[:-3] + '.cpython-311.pyc'
        wait_for(lambda: cli('--shard', env.shard, 'get', '--key', key,
                             check=False).stdout == good, timeout=5)
    assert cli('--shard', env.shard, 'get', '--key', key).stdout == good
    cli('--shard', env.shard, 'verify')



def test_compileall_hardlink_dupes_through_the_mount(env, tmp_path):
    """python3 -m compileall -o 0 -o 1 -o 2 --hardlink-dupes (how Fedora
    byte-compiles): every level is written and readable, and the levels
    with identical bytes are hard links (os.path.samefile, st_nlink)."""
    pkg = tmp_path / 'lib'
    pkg.mkdir()
    # no docstring, no assert: the three levels are identical
    (pkg / 'same.py').write_text('X = 1\n')
    # a docstring and an assert: -O drops the assert, -OO the docstring
    (pkg / 'differ.py').write_text('"""doc"""\nassert True\nX = 2\n')
    with mounted(env.shard, env.mnt, '-o', 'nosync') as m:
        prefix = os.path.join(m.path, '.tree')
        r = subprocess.run([PY, '-m', 'compileall', '-q', '-o', '0', '-o', '1', '-o', '2',
                            '--hardlink-dupes', str(pkg)],
                           env=py_env(prefix), capture_output=True)
        assert r.returncode == 0, r.stdout + r.stderr
        base = prefix + str(pkg) + '/'
        names = ['%s.cpython-311%s.pyc' % (mod, opt) for mod in ('same', 'differ')
                 for opt in ('', '.opt-1', '.opt-2')]
        assert sorted(os.listdir(base)) == sorted(names)
        data = {n: open(base + n, 'rb').read() for n in names}
        for n in names:
            check_pyc(data[n], str(pkg / n.split('.')[0]) + '.py')
        # same.py: one inode, three names
        s = [os.stat(base + n) for n in names[:3]]
        assert data[names[0]] == data[names[1]] == data[names[2]]
        assert os.path.samefile(base + names[0], base + names[1])
        assert os.path.samefile(base + names[0], base + names[2])
        assert [x.st_nlink for x in s] == [3, 3, 3]
        # differ.py: three different files
        d = [os.stat(base + n) for n in names[3:]]
        assert len({x.st_ino for x in d}) == 3
        assert [x.st_nlink for x in d] == [1, 1, 1]
        # every name is in the shard, and the importer reads them
        keys = [str(pkg) + '/' + n for n in names]
        assert sorted(k for k in shard_entries(env.shard) if k.startswith(str(pkg) + '/')) == \
            sorted(keys)
        for flags in ([], ['-O'], ['-OO']):
            r = subprocess.run([PY, *flags, '-v', '-c', 'import same, differ'],
                               env=py_env(prefix, {'PYTHONPATH': str(pkg)}),
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr[-2000:]
            ours = [k for k in loaded(r.stderr, prefix) if k.startswith(str(pkg) + '/')]
            assert sorted(ours) == sorted(
                k for k in keys if k.endswith({(): 'n-311.pyc', ('-O',): 'opt-1.pyc',
                                               ('-OO',): 'opt-2.pyc'}[tuple(flags)]))
        # unlink of one name leaves the others
        os.unlink(base + names[1])
        assert open(base + names[0], 'rb').read() == data[names[0]]
        assert os.stat(base + names[2]).st_nlink == 2
        # writing to one linked name gives it its own bytes
        with open(base + names[2], 'r+b') as f:
            f.seek(16)
            f.write(b'\xff')
        assert open(base + names[0], 'rb').read() == data[names[0]]
        assert not os.path.samefile(base + names[0], base + names[2])
    cli('--shard', env.shard, 'verify')
