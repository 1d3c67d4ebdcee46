"""The mount shows the union of its shard and read-only lower shards (issue 14).

Lower shards are built with the CLI (`scriptcache put` into a scratch shard,
then `scriptcache build`), root-owned 0644 as they ship, and stacked with
-o lower=...; every mount is real (conftest.mounted) and is unmounted in a
finally block.  The lower shard file must never change: each test compares
its bytes before and after.
"""
import errno
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from conftest import CLI, FS, cli, encode, mounted, unmount, wait_for

LOWER = {
    '/opt/app/a.pyc': b'lower a\n',
    '/opt/app/sub/b.pyc': b'lower b' * 1000,
    '/opt/app/c.pyc': b'lower c\n',
}


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def build_lower(env, name='low.shard', entries=LOWER):
    """A lower shard as `scriptcache build` ships it: root's, 0644."""
    scratch = str(env.dir / ('scratch-' + name + '.in'))
    for key, data in entries.items():
        blob = env.dir / 'in.blob'
        blob.write_bytes(data)
        cli('--shard', scratch, 'put', '--no-source', '--key', key, str(blob))
    out = str(env.dir / name)
    cli('--shard', scratch, 'build', out)
    os.chown(out, 0, 0)
    os.chmod(out, 0o644)
    return out


def own_entries(shard):
    """The shard file alone (--shard: no lower shards), {key: entry}."""
    return {x['key']: x for x in json.loads(cli('--shard', shard, 'ls', '--json').stdout)}


def union_entries(top, lower):
    """What the stack shows, as `scriptcache ls` on the default shard sees it."""
    r = subprocess.run([CLI, 'ls', '--json'], capture_output=True, check=True,
                       env=dict(os.environ, SCRIPTCACHE_PATH=top, SCRIPTCACHE_LOWER=lower))
    return {x['key']: x for x in json.loads(r.stdout)}


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def stats(m):
    with open(os.path.join(m.path, '.stats')) as f:
        return json.load(f)


def meta(m, key):
    with open(os.path.join(m.entry(key), 'metadata.json')) as f:
        return json.load(f)


def test_lower_entries_are_listed_and_read_only(env):
    low = build_lower(env)
    before = digest(low)
    with mounted(env.shard, env.mnt, '-o', 'lower=' + low) as m:
        top = (os.path.getsize(env.shard), digest(env.shard))
        # flat view: one directory per lower entry, bytes readable
        assert sorted(os.listdir(m.path)) == sorted(encode(k) for k in LOWER)
        tree = os.path.join(m.path, '.tree')
        assert sorted(os.listdir(tree + '/opt/app')) == ['a.pyc', 'c.pyc', 'sub']
        for key, data in LOWER.items():
            assert sorted(os.listdir(m.entry(key))) == ['blob', 'metadata.json']
            blob = os.path.join(m.entry(key), 'blob')
            assert read(blob) == data
            assert read(tree + key) == data
            assert os.stat(blob).st_ino == os.stat(tree + key).st_ino
            # read-only: no write bits on the blob nor on metadata.json
            assert os.stat(blob).st_mode & 0o777 == 0o444
            assert os.stat(os.path.join(m.entry(key), 'metadata.json')).st_mode & 0o777 == 0o444
            md = meta(m, key)
            assert md['key'] == key and md['status'] == 'fresh'
            assert md['layer'] == 1 and md['layer_path'] == low
            assert 'key_base' not in md
        # writes in place are refused with EROFS, in both views; root passes
        # the kernel's mode check, so the first WRITE is what fails (the fast
        # mode sends no OPEN; -o commit_on_close fails the open itself, below)
        for path in (os.path.join(m.entry('/opt/app/a.pyc'), 'blob'), tree + '/opt/app/c.pyc'):
            fd = os.open(path, os.O_WRONLY)
            try:
                with pytest.raises(OSError) as ei:
                    os.write(fd, b'x')
                assert ei.value.errno == errno.EROFS
                with pytest.raises(OSError) as ei:
                    os.pwrite(fd, b'x', 3)
                assert ei.value.errno == errno.EROFS
            finally:
                os.close(fd)
            with pytest.raises(OSError) as ei:
                os.open(path, os.O_WRONLY | os.O_TRUNC)
            assert ei.value.errno == errno.EROFS
            with pytest.raises(OSError) as ei:
                os.truncate(path, 1)
            assert ei.value.errno == errno.EROFS
            with pytest.raises(OSError) as ei:
                with open(path, 'ab') as f:
                    f.write(b'more')
            assert ei.value.errno == errno.EROFS
        # a chmod is kept by the daemon, but never shows write bits
        blob_a = os.path.join(m.entry('/opt/app/a.pyc'), 'blob')
        os.chmod(blob_a, 0o666)
        assert os.stat(blob_a).st_mode & 0o777 == 0o444
        # nothing changed anywhere
        for key, data in LOWER.items():
            assert read(os.path.join(m.entry(key), 'blob')) == data
        st = stats(m)
        assert [(l['layer'], l['path'], l['status'], l['entries'], l['relocatable'], l['base'])
                for l in st['layers']] == [(0, env.shard, 'ok', 0, False, None),
                                          (1, low, 'ok', len(LOWER), False, None)]
        assert st['shard_stats']['lower_layers'] == 1
        assert st['shard_stats']['lower_unusable'] == 0
        assert st['daemon']['lower_hits'] >= len(LOWER)
        assert st['daemon']['commits'] == 0
        # reading every lower blob wrote nothing to the top shard
        assert (os.path.getsize(env.shard), digest(env.shard)) == top
    assert own_entries(env.shard) == {}
    assert digest(low) == before


def test_non_root_cannot_open_a_lower_blob_for_writing(env):
    """A user other than root is stopped by the mode (EACCES) at open."""
    low = build_lower(env)
    # nobody must reach the mount point: open pytest's 0700 directories
    # above it for search, for the test's duration (as test_fs.py does)
    opened = []
    p = env.dir
    while p != p.parent and os.stat(p).st_uid == 0:
        mode = os.stat(p).st_mode & 0o7777
        if mode & 0o001 == 0:
            opened.append((p, mode))
            os.chmod(p, mode | 0o011)
        p = p.parent
    try:
        with mounted(env.shard, env.mnt, '-o', 'allow_other,lower=' + low) as m:
            blob = os.path.join(m.entry('/opt/app/a.pyc'), 'blob')
            code = ('import errno, os, sys\n'
                    'try:\n    os.open(sys.argv[1], os.O_WRONLY)\nexcept OSError as e:\n'
                    '    print(errno.errorcode[e.errno])\nelse:\n    print("opened")\n')
            r = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
                                '/usr/bin/python3', '-c', code, blob],
                               capture_output=True, text=True)
            assert r.stdout.strip() == 'EACCES', (r.stdout, r.stderr)
            assert read(blob) == LOWER['/opt/app/a.pyc']
    finally:
        for p, mode in opened:
            os.chmod(p, mode)


def test_commit_on_close_refuses_the_open_for_writing(env):
    low = build_lower(env)
    with mounted(env.shard, env.mnt, '-o', 'commit_on_close,lower=' + low) as m:
        for path in (os.path.join(m.entry('/opt/app/a.pyc'), 'blob'),
                     os.path.join(m.path, '.tree/opt/app/a.pyc')):
            for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND):
                with pytest.raises(OSError) as ei:
                    os.open(path, flags)
                assert ei.value.errno == errno.EROFS
            assert read(path) == LOWER['/opt/app/a.pyc']
    assert own_entries(env.shard) == {}


def test_new_version_over_a_lower_entry_goes_to_the_top(env):
    low = build_lower(env)
    before = digest(low)
    with mounted(env.shard, env.mnt, '-o', 'nosync,lower=' + low) as m:
        tree = os.path.join(m.path, '.tree')
        # flat view: a pending file renamed over blob
        d = m.entry('/opt/app/a.pyc')
        with open(os.path.join(d, 'blob.tmp'), 'wb') as f:
            f.write(b'new a')
        os.rename(os.path.join(d, 'blob.tmp'), os.path.join(d, 'blob'))
        assert read(os.path.join(d, 'blob')) == b'new a'
        assert read(tree + '/opt/app/a.pyc') == b'new a'
        md = meta(m, '/opt/app/a.pyc')
        assert md['layer'] == 0 and md['layer_path'] == env.shard
        assert os.stat(os.path.join(d, 'blob')).st_mode & 0o222  # the top's: writable
        # tree view: CPython's protocol, a temporary name then os.replace
        tmp = tree + '/opt/app/sub/b.pyc.12345'
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, b'new b')
        os.close(fd)
        os.replace(tmp, tree + '/opt/app/sub/b.pyc')
        assert read(tree + '/opt/app/sub/b.pyc') == b'new b'
        assert read(os.path.join(m.entry('/opt/app/sub/b.pyc'), 'blob')) == b'new b'
        assert sorted(os.listdir(tree + '/opt/app/sub')) == ['b.pyc']
        assert meta(m, '/opt/app/sub/b.pyc')['layer'] == 0
        # the untouched one still comes from below
        assert meta(m, '/opt/app/c.pyc')['layer'] == 1
        assert stats(m)['daemon']['commits'] == 2
    own = own_entries(env.shard)
    assert sorted(own) == ['/opt/app/a.pyc', '/opt/app/sub/b.pyc']
    assert all(e['layer'] == 0 for e in own.values())
    u = union_entries(env.shard, low)
    assert {k: e['layer'] for k, e in u.items()} == {
        '/opt/app/a.pyc': 0, '/opt/app/sub/b.pyc': 0, '/opt/app/c.pyc': 1}
    assert digest(low) == before
    # a new mount shows the same union
    with mounted(env.shard, env.mnt, '-o', 'lower=' + low) as m:
        assert read(os.path.join(m.entry('/opt/app/a.pyc'), 'blob')) == b'new a'
        assert read(os.path.join(m.entry('/opt/app/c.pyc'), 'blob')) == LOWER['/opt/app/c.pyc']
    assert digest(low) == before


def test_rm_hides_a_lower_entry(env):
    low = build_lower(env)
    before = digest(low)
    with mounted(env.shard, env.mnt, '-o', 'nosync,lower=' + low) as m:
        tree = os.path.join(m.path, '.tree')
        # rm -r in the flat view
        shutil.rmtree(m.entry('/opt/app/a.pyc'))
        assert encode('/opt/app/a.pyc') not in os.listdir(m.path)
        assert not os.path.exists(m.entry('/opt/app/a.pyc'))
        # the other view follows within the watcher's tick (docs/FS.md,
        # "Coherence": asserted under 0.5 s, more on a loaded machine)
        wait_for(lambda: not os.path.exists(tree + '/opt/app/a.pyc'), timeout=2)
        wait_for(lambda: 'a.pyc' not in os.listdir(tree + '/opt/app'), timeout=2)
        # rm in the tree view, then rmdir of the directory left empty
        os.unlink(tree + '/opt/app/sub/b.pyc')
        assert os.listdir(tree + '/opt/app/sub') == []
        os.rmdir(tree + '/opt/app/sub')
        assert sorted(os.listdir(tree + '/opt/app')) == ['c.pyc']
        wait_for(lambda: sorted(os.listdir(m.path)) == [encode('/opt/app/c.pyc')], timeout=2)
        with pytest.raises(FileNotFoundError):
            os.stat(m.entry('/opt/app/sub/b.pyc'))
        # a second rm finds nothing
        with pytest.raises(FileNotFoundError):
            os.rmdir(m.entry('/opt/app/a.pyc'))
        assert read(tree + '/opt/app/c.pyc') == LOWER['/opt/app/c.pyc']
    assert digest(low) == before
    assert own_entries(env.shard) == {}  # whiteouts are not entries
    assert sorted(union_entries(env.shard, low)) == ['/opt/app/c.pyc']
    # still hidden after a remount; a new version brings the key back
    with mounted(env.shard, env.mnt, '-o', 'nosync,lower=' + low) as m:
        assert sorted(os.listdir(m.path)) == [encode('/opt/app/c.pyc')]
        os.mkdir(m.entry('/opt/app/a.pyc'))
        with open(os.path.join(m.entry('/opt/app/a.pyc'), 'x'), 'wb') as f:
            f.write(b'again')
        os.rename(os.path.join(m.entry('/opt/app/a.pyc'), 'x'),
                  os.path.join(m.entry('/opt/app/a.pyc'), 'blob'))
        assert meta(m, '/opt/app/a.pyc')['layer'] == 0
    assert sorted(union_entries(env.shard, low)) == ['/opt/app/a.pyc', '/opt/app/c.pyc']
    assert digest(low) == before


def test_rm_of_an_entry_that_shadows_a_lower_one_hides_both(env):
    low = build_lower(env)
    before = digest(low)
    env.put('/opt/app/a.pyc', b'top a', '--no-source')
    with mounted(env.shard, env.mnt, '-o', 'lower=' + low) as m:
        assert read(os.path.join(m.entry('/opt/app/a.pyc'), 'blob')) == b'top a'
        assert meta(m, '/opt/app/a.pyc')['layer'] == 0
        shutil.rmtree(m.entry('/opt/app/a.pyc'))
        # the lower entry does not come back: the whiteout replaced both
        assert encode('/opt/app/a.pyc') not in os.listdir(m.path)
        assert not os.path.exists(os.path.join(m.path, '.tree/opt/app/a.pyc'))
    assert '/opt/app/a.pyc' not in union_entries(env.shard, low)
    assert digest(low) == before


def test_lower_option_forms(env):
    low1 = build_lower(env, 'one.shard', {'/k/one.pyc': b'1'})
    low2 = build_lower(env, 'two.shard', {'/k/one.pyc': b'2', '/k/two.pyc': b'2'})
    # order is lookup order; repeated -o lower appends
    with mounted(env.shard, env.mnt, '-o', 'lower=' + low1, '-o', 'lower=' + low2) as m:
        assert read(m.path + '/.tree/k/one.pyc') == b'1'
        assert read(m.path + '/.tree/k/two.pyc') == b'2'
        assert [l['path'] for l in stats(m)['layers']] == [env.shard, low1, low2]
        assert meta(m, '/k/two.pyc')['layer'] == 2
    # a directory stands for its *.shard files, sorted by name
    d = env.dir / 'lowers'
    d.mkdir()
    os.rename(low2, d / 'a.shard')
    os.rename(low1, d / 'b.shard')
    (d / 'ignored.txt').write_text('x')
    with mounted(env.shard, env.mnt, '-o', 'lower=%s' % d) as m:
        assert [l['path'] for l in stats(m)['layers']] == [
            env.shard, str(d / 'a.shard'), str(d / 'b.shard')]
        assert read(m.path + '/.tree/k/one.pyc') == b'2'
    # a missing one is left out, with a word on stderr
    with mounted(env.shard, env.mnt, '-o', 'lower=%s:%s' % (env.dir / 'nope.shard',
                                                            d / 'b.shard')) as m:
        assert [l['path'] for l in stats(m)['layers']] == [env.shard, str(d / 'b.shard')]
    # -o nolowers, and a named shard without -o lower: no lower shard
    with mounted(env.shard, env.mnt, '-o', 'nolowers') as m:
        assert os.listdir(m.path) == []
        assert len(stats(m)['layers']) == 1
    with mounted(env.shard, env.mnt) as m:
        assert os.listdir(m.path) == []


def test_unusable_lower_shard_is_kept_and_misses(env):
    low = build_lower(env)
    before = digest(low)
    os.chmod(low, 0o666)  # writable by others: refused, SC_EINSECURE
    with mounted(env.shard, env.mnt, '-o', 'lower=' + low) as m:
        layers = stats(m)['layers']
        assert len(layers) == 2 and layers[1]['status'] != 'ok', layers
        assert stats(m)['shard_stats']['lower_unusable'] == 1
        assert os.listdir(m.path) == []
        # fixed while mounted: used again (path checks run once a second)
        os.chmod(low, 0o644)
        wait_for(lambda: os.path.exists(os.path.join(m.path, '.tree/opt/app/a.pyc')),
                 timeout=5, step=0.1)
        assert read(os.path.join(m.path, '.tree/opt/app/a.pyc')) == LOWER['/opt/app/a.pyc']
    assert digest(low) == before


def test_default_shard_gets_the_configured_lower_shards(env):
    low = build_lower(env)
    e = dict(os.environ, SCRIPTCACHE_PATH=env.shard, SCRIPTCACHE_LOWER=low)
    with mounted(None, env.mnt, env=e) as m:
        assert sorted(os.listdir(m.path)) == sorted(encode(k) for k in LOWER)
        assert [l['path'] for l in stats(m)['layers']] == [env.shard, low]
    # -o nolowers and -o lower override the configuration
    with mounted(None, env.mnt, '-o', 'nolowers', env=e) as m:
        assert os.listdir(m.path) == []
    other = build_lower(env, 'other.shard', {'/x/y.pyc': b'y'})
    with mounted(None, env.mnt, '-o', 'lower=' + other, env=e) as m:
        assert os.listdir(m.path) == [encode('/x/y.pyc')]
    # SCRIPTCACHE_LOWER_DIR, when SCRIPTCACHE_LOWER is unset
    e2 = dict(os.environ, SCRIPTCACHE_PATH=env.shard, SCRIPTCACHE_LOWER_DIR=str(env.dir))
    e2.pop('SCRIPTCACHE_LOWER', None)
    with mounted(None, env.mnt, env=e2) as m:
        paths = [l['path'] for l in stats(m)['layers']]
        assert paths[0] == env.shard and set(paths[1:]) == {low, other}


def test_bad_lower_options_fail_the_mount(env):
    low = build_lower(env)
    os.makedirs(env.mnt, exist_ok=True)
    inside = os.path.join(env.mnt, 'low.shard')
    shutil.copy(low, inside)
    try:
        r = subprocess.run([FS, '-f', '-o', 'nolowers,lower=' + low, env.shard, env.mnt],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode != 0 and 'exclude each other' in r.stderr, r.stderr
        # a lower shard below the mount point would have the daemon call itself
        r = subprocess.run([FS, '-f', '-o', 'lower=' + inside, env.shard, env.mnt],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode != 0 and 'inside the mount point' in r.stderr, r.stderr
    finally:
        unmount(env.mnt)


def test_lower_shard_replaced_underneath_is_followed(env):
    """A package upgrade renames a new shard over the lower one: the mount
    shows the new entries within the library's one-second path check."""
    low = build_lower(env)
    with mounted(env.shard, env.mnt, '-o', 'lower=' + low) as m:
        tree = os.path.join(m.path, '.tree')
        assert read(tree + '/opt/app/a.pyc') == LOWER['/opt/app/a.pyc']
        assert sorted(os.listdir(tree + '/opt/app')) == ['a.pyc', 'c.pyc', 'sub']
        new = build_lower(env, 'new.shard', {'/opt/app/a.pyc': b'upgraded a',
                                             '/opt/app/d.pyc': b'new d'})
        os.rename(new, low)
        wait_for(lambda: sorted(os.listdir(m.path)) ==
                 sorted(encode(k) for k in ('/opt/app/a.pyc', '/opt/app/d.pyc')),
                 timeout=5, step=0.05)
        wait_for(lambda: sorted(os.listdir(tree + '/opt/app')) == ['a.pyc', 'd.pyc'],
                 timeout=5, step=0.05)
        assert read(tree + '/opt/app/a.pyc') == b'upgraded a'
        assert read(os.path.join(m.entry('/opt/app/d.pyc'), 'blob')) == b'new d'
        assert not os.path.exists(m.entry('/opt/app/c.pyc'))
    assert own_entries(env.shard) == {}


def test_relocatable_lower_shard_serves_a_moved_tree(env):
    """A shard built with --base-dir inside its tree, the tree copied to
    another directory with new mtimes: the mount shows the entries under
    the new paths, fresh by content, and an edited source's entry is gone."""
    build_dir = env.dir / 'build' / 'app'
    (build_dir / 'sub').mkdir(parents=True)
    sources = {'main.lua': b'print("main")\n', 'sub/util.lua': b'return {}\n'}
    scratch = str(env.dir / 'reloc-scratch.shard')
    for rel, text in sources.items():
        (build_dir / rel).write_bytes(text)
        blob = env.dir / 'in.blob'
        blob.write_bytes(b'compiled ' + text)
        cli('--shard', scratch, 'put', str(build_dir / rel), str(blob))
    (build_dir / '.cache').mkdir()
    shipped = str(build_dir / '.cache' / 'app.shard')
    cli('--shard', scratch, 'build', '--base-dir', str(build_dir), shipped)
    srv = env.dir / 'srv' / 'app'
    srv.parent.mkdir()
    subprocess.run(['cp', '-r', str(build_dir), str(srv)], check=True)
    shutil.rmtree(env.dir / 'build')  # nothing of the build place is left
    for rel in sources:
        os.utime(srv / rel, (1_000_000_000, 1_000_000_000))  # mtimes as an image gives them
    low = str(srv / '.cache' / 'app.shard')
    os.chown(low, 0, 0)
    os.chmod(low, 0o644)
    before = digest(low)
    with mounted(env.shard, env.mnt, '-o', 'lower=' + low) as m:
        keys = {str(srv / rel): b'compiled ' + text for rel, text in sources.items()}
        assert sorted(os.listdir(m.path)) == sorted(encode(k) for k in keys)
        for key, data in keys.items():
            assert read(os.path.join(m.entry(key), 'blob')) == data
            md = meta(m, key)
            assert md['status'] == 'fresh' and md['layer'] == 1
            assert md['key_base'] == str(srv)
            assert md['key'] == key
        st = stats(m)
        assert [(l['layer'], l['relocatable'], l['base']) for l in st['layers']] == \
            [(0, False, None), (1, True, str(srv))]
        # an edited source: its shipped entry is stale, its blob is gone
        edited = str(srv / 'main.lua')
        (srv / 'main.lua').write_bytes(b'print("edited")\n')
        edited_blob = os.path.join(m.entry(edited), 'blob')
        wait_for(lambda: not os.path.exists(edited_blob), timeout=5)
        md = meta(m, edited)
        assert md['status'] == 'stale' and md['layer'] == 1, md
        assert read(os.path.join(m.entry(str(srv / 'sub/util.lua')), 'blob')) == \
            b'compiled return {}\n'
        assert stats(m)['daemon']['commits'] == 0
    assert own_entries(env.shard) == {}
    assert digest(low) == before
