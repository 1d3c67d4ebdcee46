"""scriptcachefs through ordinary system calls, against the real library.

Each test mounts the real daemon (conftest.mounted) and unmounts it in a
finally block.  "The library" is the scriptcache CLI ($SCRIPTCACHE_CLI),
which reads and writes the shard through libscriptcache.
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import cli, encode, is_mounted, mounted, unmount, wait_for

IDLE_MS = 300  # -o idle_commit_ms for the plain-cp tests


def ls_json(e):
    return {x['key']: x for x in json.loads(cli('--shard', e.shard, 'ls', '--json').stdout)}


# ---- the flat view ----

def test_listing(env):
    keys = [env.source('a.lua'), env.source('b.lua'), '/nowhere/c.pyc']
    for k in keys[:2]:
        env.put(k, b'compiled ' + k.encode())
    env.put(keys[2], b'pyc', '--no-source')
    with mounted(env.shard, env.mnt) as m:
        assert sorted(os.listdir(m.path)) == sorted(encode(k) for k in keys)
        for k in keys:
            assert sorted(os.listdir(m.entry(k))) == ['blob', 'metadata.json']
            st = os.stat(m.entry(k))
            assert st.st_mode & 0o777 == 0o755 and st.st_uid == os.getuid()
            st = os.stat(os.path.join(m.entry(k), 'blob'))
            assert st.st_mode & 0o777 == 0o644
        # .stats: readable, not listed
        assert '.stats' not in os.listdir(m.path)
        stats = json.load(open(os.path.join(m.path, '.stats')))
        assert stats['shard_stats']['entries'] == 3


def test_read_blob_and_metadata_byte_exact(env):
    key = env.source('m.lua')
    data = os.urandom(200 * 1024 + 17)
    env.put(key, data)
    lib_blob = env.get(key).stdout
    assert lib_blob == data
    info = ls_json(env)[key]
    with mounted(env.shard, env.mnt) as m:
        with open(os.path.join(m.entry(key), 'blob'), 'rb') as f:
            assert f.read() == lib_blob
        # partial reads at odd offsets
        with open(os.path.join(m.entry(key), 'blob'), 'rb') as f:
            f.seek(4097)
            assert f.read(10000) == lib_blob[4097:14097]
        meta = json.load(open(os.path.join(m.entry(key), 'metadata.json')))
        assert meta['key'] == key and meta['name'] == encode(key)
        assert meta['status'] == 'fresh'
        assert meta['blob']['size'] == len(data)
        assert meta['blob']['checksum'] == info['blob_id']
        assert meta['source']['mtime_sec'] == info['source_mtime']
        assert meta['source']['mtime_nsec'] == info['source_mtime_nsec']
        assert meta['source']['size'] == info['source_size']
        assert meta['fingerprint']['exe_id'] == info['exe_id']
        assert meta['fingerprint']['exe_path'] == info['exe_path']
        assert meta['fingerprint']['tag'] == info['tag']
        assert meta['offset'] == info['offset']
        assert os.stat(os.path.join(m.entry(key), 'blob')).st_size == len(data)


# ---- writing ----

def test_write_temp_and_rename_commits(env):
    key = env.source('new.lua')
    data = os.urandom(70000)
    with mounted(env.shard, env.mnt) as m:
        d = m.entry(key)
        os.mkdir(d)
        tmp = os.path.join(d, '.blob.tmp')
        with open(tmp, 'wb') as f:
            f.write(data)
        assert env.get(key).returncode == 1  # nothing committed yet
        os.rename(tmp, os.path.join(d, 'blob'))
        assert env.get(key).stdout == data
        assert open(os.path.join(d, 'blob'), 'rb').read() == data
        assert sorted(os.listdir(d)) == ['blob', 'metadata.json']
        meta = json.load(open(os.path.join(d, 'metadata.json')))
        st = os.stat(key)
        assert meta['source']['size'] == st.st_size
        assert meta['source']['mtime_sec'] == int(st.st_mtime)
        assert meta['fingerprint']['tag'] == 'scriptcachefs'
        # the writing process's executable is recorded
        assert meta['fingerprint']['exe_path'] == os.path.realpath('/proc/self/exe')
        # replace again: atomic, the reader sees the new bytes
        tmp2 = os.path.join(d, 'x.tmp')
        with open(tmp2, 'wb') as f:
            f.write(b'v2')
        os.replace(tmp2, os.path.join(d, 'blob'))
        assert env.get(key).stdout == b'v2'
        assert open(os.path.join(d, 'blob'), 'rb').read() == b'v2'


def test_key_without_source_gets_no_source(env):
    key = str(env.dir / 'does-not-exist.pyc')
    with mounted(env.shard, env.mnt) as m:
        d = m.entry(key)
        os.mkdir(d)
        with open(os.path.join(d, 't'), 'wb') as f:
            f.write(b'abc')
        os.rename(os.path.join(d, 't'), os.path.join(d, 'blob'))
        meta = json.load(open(os.path.join(d, 'metadata.json')))
        assert meta['source'] is None and meta['status'] == 'fresh'
    assert ls_json(env)[key]['has_source'] is False


def test_fsync_commits(env):
    key = env.source('f.lua')
    with mounted(env.shard, env.mnt) as m:
        d = m.entry(key)
        os.mkdir(d)
        fd = os.open(os.path.join(d, 'tmp'), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, b'fsynced bytes')
            assert env.get(key).returncode == 1
            os.fsync(fd)
            assert env.get(key).stdout == b'fsynced bytes'
        finally:
            os.close(fd)
        os.rename(os.path.join(d, 'tmp'), os.path.join(d, 'blob'))
        assert env.get(key).stdout == b'fsynced bytes'


def test_plain_cp_commits_when_idle_and_closed(env):
    key = env.source('cp.lua')
    src = env.dir / 'payload'
    data = os.urandom(300000)
    src.write_bytes(data)
    with mounted(env.shard, env.mnt, '-o', 'idle_commit_ms=%d' % IDLE_MS) as m:
        d = m.entry(key)
        os.mkdir(d)
        subprocess.run(['cp', str(src), os.path.join(d, 'blob')], check=True)
        took = wait_for(lambda: env.get(key).returncode == 0, timeout=5)
        assert took >= IDLE_MS / 1000 * 0.5
        assert env.get(key).stdout == data
        assert open(os.path.join(d, 'blob'), 'rb').read() == data
        assert os.stat(os.path.join(d, 'blob')).st_mode & 0o777 == 0o644


def test_plain_writer_still_writing_is_never_committed(env):
    key = env.source('slow.lua')
    with mounted(env.shard, env.mnt, '-o', 'idle_commit_ms=%d' % IDLE_MS) as m:
        d = m.entry(key)
        os.mkdir(d)
        with open(os.path.join(d, 'blob'), 'wb') as f:
            f.write(b'first half ')
            f.flush()
            time.sleep(IDLE_MS / 1000 * 4)  # idle, but still open for writing
            assert env.get(key).returncode == 1, 'half-written blob committed'
            f.write(b'second half')
        wait_for(lambda: env.get(key).returncode == 0, timeout=5)
        assert env.get(key).stdout == b'first half second half'


def test_unmount_commits_plain_written_blob(env):
    key = env.source('um.lua')
    with mounted(env.shard, env.mnt, '-o', 'idle_commit_ms=60000') as m:
        d = m.entry(key)
        os.mkdir(d)
        with open(os.path.join(d, 'blob'), 'wb') as f:
            f.write(b'at unmount')
        with open(os.path.join(d, 'leftover.tmp'), 'wb') as f:
            f.write(b'dropped')
        assert env.get(key).returncode == 1
    assert env.get(key).stdout == b'at unmount'
    assert len(ls_json(env)) == 1


def test_commit_on_close_option(env):
    key = env.source('coc.lua')
    with mounted(env.shard, env.mnt, '-o', 'commit_on_close,idle_commit_ms=60000') as m:
        d = m.entry(key)
        os.mkdir(d)
        with open(os.path.join(d, 'blob'), 'wb') as f:
            f.write(b'closed')
            f.flush()
            # env.get forks: the child's close-on-exec copy of f is closed
            # (a FLUSH), but f is still open here, so nothing is committed
            assert env.get(key).returncode == 1
            f.write(b' twice')
        assert env.get(key).stdout == b'closed twice'  # committed by close itself
        assert open(os.path.join(d, 'blob'), 'rb').read() == b'closed twice'
        # written again in place: committed by the last close too
        with open(os.path.join(d, 'blob'), 'ab') as f:
            f.write(b'!')
            assert env.get(key).stdout == b'closed twice'
        assert env.get(key).stdout == b'closed twice!'


def _shard_bytes(env, key):
    r = env.get(key)
    return r.stdout if r.returncode == 0 else None


def test_in_place_writes_flat_and_tree(env):
    """A committed blob is writable as on a directory: append, O_TRUNC,
    ftruncate, writes at any offset.  Every reader through the mount (both
    views: the same inode) sees each write at once; the shard keeps the
    committed version until the new one is complete (idle with no writer
    left, fsync), then holds exactly the new bytes as one new version."""
    key = env.source('rw.lua')
    env.put(key, b'original')
    with mounted(env.shard, env.mnt, '-o', 'idle_commit_ms=%d' % IDLE_MS) as m:
        blob = os.path.join(m.entry(key), 'blob')
        tree = os.path.join(m.path, '.tree', key.lstrip('/'))
        st = os.stat(blob)
        assert st.st_mode & 0o777 == 0o644
        assert os.stat(tree).st_ino == st.st_ino
        # append, through a descriptor held open
        fd = os.open(blob, os.O_WRONLY | os.O_APPEND)
        try:
            assert os.write(fd, b'+more') == 5
            assert open(blob, 'rb').read() == b'original+more'
            assert open(tree, 'rb').read() == b'original+more'
            assert os.stat(tree).st_size == 13
            # a writer still holds it: not complete, whatever the time
            time.sleep(3 * IDLE_MS / 1000)
            assert _shard_bytes(env, key) == b'original'
        finally:
            os.close(fd)
        wait_for(lambda: _shard_bytes(env, key) == b'original+more', timeout=5)
        before = ls_json(env)[key]
        # in place at an offset, through the tree view
        with open(tree, 'r+b') as f:
            f.seek(2)
            f.write(b'XY')
        assert open(blob, 'rb').read() == b'orXYinal+more'
        # O_TRUNC and fsync: complete at once
        with open(tree, 'wb') as f:
            f.write(b'new')
            f.flush()
            assert _shard_bytes(env, key) != b'new'
            os.fsync(f.fileno())
            assert _shard_bytes(env, key) == b'new'
        # ftruncate/truncate, then the idle rule
        os.truncate(blob, 2)
        assert open(tree, 'rb').read() == b'ne'
        assert os.stat(blob).st_size == 2
        wait_for(lambda: _shard_bytes(env, key) == b'ne', timeout=5)
        after = ls_json(env)[key]
        assert after['offset'] != before['offset']
        # extending truncate fills with zeros
        os.truncate(tree, 5)
        assert open(blob, 'rb').read() == b'ne\0\0\0'
        # what cannot be written still says so
        fd = os.open(os.path.join(m.entry(key), 'metadata.json'), os.O_WRONLY)
        try:
            with pytest.raises(OSError) as ei:
                os.write(fd, b'x')
            assert ei.value.errno == errno.EPERM
        finally:
            os.close(fd)
        with pytest.raises(OSError) as ei:
            open(os.path.join(m.path, 'file'), 'wb')  # the top level holds directories
        assert ei.value.errno == errno.EPERM
    # unmount completes what was pending
    assert _shard_bytes(env, key) == b'ne\0\0\0'
    assert ls_json(env)[key]['has_source'] is True


def test_in_place_write_keeps_no_source_and_read_only_refuses(env):
    env.put('/nosrc/x.pyc', b'abc', '--no-source')
    with mounted(env.shard, env.mnt) as m:
        tree = os.path.join(m.path, '.tree', 'nosrc', 'x.pyc')
        with open(tree, 'r+b') as f:
            f.write(b'X')
            f.flush()
            os.fsync(f.fileno())
    assert _shard_bytes(env, '/nosrc/x.pyc') == b'Xbc'
    assert ls_json(env)['/nosrc/x.pyc']['has_source'] is False
    with mounted(env.shard, env.mnt, '-o', 'ro') as m:
        tree = os.path.join(m.path, '.tree', 'nosrc', 'x.pyc')
        for op in (lambda: open(tree, 'r+b').write(b'Y'),
                   lambda: open(tree, 'wb'),
                   lambda: os.truncate(tree, 1)):
            with pytest.raises(OSError) as ei:
                op()
            assert ei.value.errno == errno.EROFS
    assert _shard_bytes(env, '/nosrc/x.pyc') == b'Xbc'


def test_reader_holding_old_version_while_writer_rewrites(env):
    """In place, a reader of the same file sees the new bytes (as on any
    filesystem) and the library keeps serving the committed version until
    the new one is complete.  Replaced by a rename, the file a reader holds
    open keeps its old bytes."""
    key = '/hold/m.pyc'
    env.put(key, b'version-1', '--no-source')
    with mounted(env.shard, env.mnt, '-o', 'idle_commit_ms=%d' % IDLE_MS) as m:
        tree = os.path.join(m.path, '.tree', 'hold', 'm.pyc')
        r = os.open(tree, os.O_RDONLY)
        try:
            assert os.pread(r, 100, 0) == b'version-1'
            with open(tree, 'r+b') as w:
                w.truncate(0)
                assert os.pread(r, 100, 0) == b''
                w.write(b'version-2!')
                w.flush()
                assert os.pread(r, 100, 0) == b'version-2!'
                assert _shard_bytes(env, key) == b'version-1'
                os.fsync(w.fileno())
            assert _shard_bytes(env, key) == b'version-2!'
            # a rename over the name: the held file keeps its bytes
            tmp = os.path.join(m.path, '.tree', 'hold', 'm.pyc.tmp')
            with open(tmp, 'wb') as f:
                f.write(b'version-3')
            os.rename(tmp, tree)
            assert open(tree, 'rb').read() == b'version-3'
            assert os.pread(r, 100, 0) == b'version-2!'
            assert _shard_bytes(env, key) == b'version-3'
        finally:
            os.close(r)


def test_rename_over_a_file_being_written_in_place(env):
    """A rename over a name replaces the version being written there: that
    writer keeps an inode no name leads to, and its bytes, complete or
    not, never reach the shard."""
    key = '/race/m.pyc'
    env.put(key, b'committed', '--no-source')
    with mounted(env.shard, env.mnt, '-o', 'idle_commit_ms=%d' % IDLE_MS) as m:
        d = os.path.join(m.path, '.tree', 'race')
        name = os.path.join(d, 'm.pyc')
        w = os.open(name, os.O_WRONLY)
        try:
            os.write(w, b'IN-PLACE')
            assert open(name, 'rb').read() == b'IN-PLACEd'
            with open(os.path.join(d, 'tmp'), 'wb') as f:
                f.write(b'renamed')
            os.rename(os.path.join(d, 'tmp'), name)
            assert open(name, 'rb').read() == b'renamed'
            os.write(w, b'-after')  # succeeds, as on an unlinked file
            os.fsync(w)
        finally:
            os.close(w)
        time.sleep(3 * IDLE_MS / 1000)
        assert _shard_bytes(env, key) == b'renamed'
        assert open(name, 'rb').read() == b'renamed'
    assert _shard_bytes(env, key) == b'renamed'
    assert sorted(ls_json(env)) == [key]


def test_rm_of_a_file_being_written_in_place(env):
    """rm of a file being written in place removes it: the pending version
    is dropped and the committed one evicted, in both views."""
    env.put('/rmw/a.pyc', b'aaaa', '--no-source')
    env.put('/rmw/b.pyc', b'bbbb', '--no-source')
    with mounted(env.shard, env.mnt, '-o', 'idle_commit_ms=%d' % IDLE_MS) as m:
        a = os.path.join(m.path, '.tree', 'rmw', 'a.pyc')
        b = os.path.join(m.entry('/rmw/b.pyc'), 'blob')
        for path in (a, b):
            with open(path, 'r+b') as f:
                f.write(b'X')
            os.unlink(path)
            assert not os.path.exists(path)
        time.sleep(3 * IDLE_MS / 1000)
        assert not os.path.exists(a) and not os.path.exists(b)
    assert ls_json(env) == {}


def test_two_writers_in_place_and_cp_to_a_tree_name(env):
    """Two processes writing one file in place: both writes land, as on a
    directory.  A file copied to a new tree name (no rename) is committed
    under that name when idle."""
    key = '/two/m.pyc'
    env.put(key, b'.' * 8192, '--no-source')
    with mounted(env.shard, env.mnt, '-o', 'idle_commit_ms=%d' % IDLE_MS) as m:
        name = os.path.join(m.path, '.tree', 'two', 'm.pyc')
        code = ('import os, sys\n'
                'fd = os.open(sys.argv[1], os.O_WRONLY)\n'
                'off = int(sys.argv[2])\n'
                'for i in range(64):\n'
                '    os.pwrite(fd, bytes([65 + off // 4096]) * 64, off + 64 * i)\n')
        ps = [subprocess.Popen(['python3', '-c', code, name, str(off)]) for off in (0, 4096)]
        assert [p.wait() for p in ps] == [0, 0]
        want = b'A' * 4096 + b'B' * 4096
        assert open(name, 'rb').read() == want
        wait_for(lambda: _shard_bytes(env, key) == want, timeout=5)
        shutil.copyfile(name, os.path.join(m.path, '.tree', 'two', 'copy.pyc'))
        wait_for(lambda: _shard_bytes(env, '/two/copy.pyc') == want, timeout=5)


def test_hard_links_in_both_views(env):
    """link(2): the new name is an entry with the same bytes; while two
    names hold the same bytes they report one inode and st_nlink 2 (also
    after a remount); unlink of one leaves the other; a write to one
    gives it its own bytes."""
    env.put('/ln/a.pyc', b'same bytes', '--no-source')
    with mounted(env.shard, env.mnt) as m:
        d = os.path.join(m.path, '.tree', 'ln')
        a, b = os.path.join(d, 'a.pyc'), os.path.join(d, 'b.pyc')
        assert os.stat(a).st_nlink == 1
        os.link(a, b)
        assert open(b, 'rb').read() == b'same bytes'
        assert os.path.samefile(a, b)
        assert os.stat(a).st_nlink == os.stat(b).st_nlink == 2
        assert _shard_bytes(env, '/ln/b.pyc') == b'same bytes'
        # the flat view shows the same file
        assert os.path.samefile(os.path.join(m.entry('/ln/b.pyc'), 'blob'), a)
        # a flat entry directory made by mkdir links its blob
        c = m.entry('/ln/c.pyc')
        os.mkdir(c)
        os.link(a, os.path.join(c, 'blob'))
        assert os.stat(a).st_nlink == 3
        # what link(2) refuses, with a directory's errors
        for src, dst, want in ((a, b, errno.EEXIST),
                               (a, os.path.join(m.path, 'x'), errno.EPERM),
                               (os.path.join(m.entry('/ln/a.pyc'), 'metadata.json'),
                                os.path.join(d, 'm.json'), errno.EPERM),
                               (a, os.path.join(c, 'other'), errno.EPERM),
                               (os.path.join(d, 'missing'), os.path.join(d, 'z'),
                                errno.ENOENT)):
            with pytest.raises(OSError) as ei:
                os.link(src, dst)
            assert ei.value.errno == want, (src, dst)
    with mounted(env.shard, env.mnt) as m:
        d = os.path.join(m.path, '.tree', 'ln')
        a, b = os.path.join(d, 'a.pyc'), os.path.join(d, 'b.pyc')
        assert os.path.samefile(a, b)
        assert os.stat(b).st_nlink == 3
        os.unlink(os.path.join(m.entry('/ln/c.pyc'), 'blob'))
        assert os.stat(a).st_nlink == 2
        with open(b, 'r+b') as f:
            f.write(b'S')
            f.flush()
            os.fsync(f.fileno())
        assert open(a, 'rb').read() == b'same bytes'
        assert open(b, 'rb').read() == b'Same bytes'
        assert not os.path.samefile(a, b)
        assert os.stat(a).st_nlink == 1
        os.unlink(b)
        assert open(a, 'rb').read() == b'same bytes'
    with mounted(env.shard, env.mnt, '-o', 'ro') as m:
        d = os.path.join(m.path, '.tree', 'ln')
        with pytest.raises(OSError) as ei:
            os.link(os.path.join(d, 'a.pyc'), os.path.join(d, 'r.pyc'))
        assert ei.value.errno == errno.EROFS
    assert sorted(ls_json(env)) == ['/ln/a.pyc']


def test_tree_renames(env):
    """A committed file of the tree renames as on a directory (its inode
    moves to the new key; the old entry is removed), also over another
    file and while it is written in place; a directory answers EXDEV (mv
    copies and removes); across kinds, a directory's errors."""
    env.put('/rn/f.pyc', b'f', '--no-source')
    env.put('/rn/g.pyc', b'g', '--no-source')
    env.put('/rn/sub/s.pyc', b's', '--no-source')
    with mounted(env.shard, env.mnt, '-o', 'idle_commit_ms=%d' % IDLE_MS) as m:
        d = os.path.join(m.path, '.tree', 'rn')
        for src, dst, want in (('sub', 'f.pyc', errno.ENOTDIR),
                               ('f.pyc', 'sub', errno.EISDIR),
                               ('nothing', 'h.pyc', errno.ENOENT)):
            with pytest.raises(OSError) as ei:
                os.rename(os.path.join(d, src), os.path.join(d, dst))
            assert ei.value.errno == want, (src, dst)
        f, h = os.path.join(d, 'f.pyc'), os.path.join(d, 'h.pyc')
        r = os.open(f, os.O_RDONLY)
        try:
            ino = os.fstat(r).st_ino
            os.rename(f, h)
            assert os.stat(h).st_ino == ino       # the same file, moved
            assert os.pread(r, 10, 0) == b'f'
        finally:
            os.close(r)
        assert not os.path.exists(f)
        assert not os.path.exists(m.entry('/rn/f.pyc'))
        assert open(os.path.join(m.entry('/rn/h.pyc'), 'blob'), 'rb').read() == b'f'
        assert sorted(ls_json(env)) == ['/rn/g.pyc', '/rn/h.pyc', '/rn/sub/s.pyc']
        # over another committed file, which is replaced
        os.rename(h, os.path.join(d, 'g.pyc'))
        assert open(os.path.join(d, 'g.pyc'), 'rb').read() == b'f'
        assert _shard_bytes(env, '/rn/g.pyc') == b'f'
        # while written in place: the pending bytes move, and complete
        g = os.path.join(d, 'g.pyc')
        with open(g, 'r+b') as w:
            w.write(b'G')
        os.rename(g, f)
        assert _shard_bytes(env, '/rn/f.pyc') == b'G'
        assert sorted(ls_json(env)) == ['/rn/f.pyc', '/rn/sub/s.pyc']
        # a directory: mv falls back to copy and remove
        with pytest.raises(OSError) as ei:
            os.rename(os.path.join(d, 'sub'), os.path.join(d, 'sub2'))
        assert ei.value.errno == errno.EXDEV
        subprocess.run(['mv', os.path.join(d, 'sub'), os.path.join(d, 'sub2')], check=True)
        assert open(os.path.join(d, 'sub2', 's.pyc'), 'rb').read() == b's'
        wait_for(lambda: sorted(ls_json(env)) == ['/rn/f.pyc', '/rn/sub2/s.pyc'], timeout=5)
    assert sorted(ls_json(env)) == ['/rn/f.pyc', '/rn/sub2/s.pyc']


# ---- removing ----

def test_rm_rmdir_and_clear(env):
    keys = [env.source('r%d.lua' % i) for i in range(5)]
    for k in keys:
        env.put(k, b'x' * 100)
    with mounted(env.shard, env.mnt) as m:
        os.unlink(os.path.join(m.entry(keys[0]), 'blob'))
        assert env.get(keys[0]).returncode == 1
        os.rmdir(m.entry(keys[0]))
        assert encode(keys[0]) not in os.listdir(m.path)
        os.rmdir(m.entry(keys[1]))  # rmdir alone evicts too
        assert env.get(keys[1]).returncode == 1
        shutil.rmtree(m.entry(keys[2]))  # rm -r
        assert env.get(keys[2]).returncode == 1
        assert sorted(os.listdir(m.path)) == sorted(encode(k) for k in keys[3:])
        subprocess.run('rm -rf %s/*' % m.path, shell=True, check=True)
        assert os.listdir(m.path) == []
        assert ls_json(env) == {}
        with pytest.raises(OSError) as ei:
            os.unlink(os.path.join(m.path, '.stats'))
        assert ei.value.errno == errno.EPERM
        assert os.path.exists(os.path.join(m.path, '.stats'))


# ---- names ----

STRANGE = [
    '/tmp/with space/and%percent.lua',
    '/tmp/.hidden/x.lua',
    '/tmp/ünïcödé/файл.lua',
    '/tmp/ctl\x01\x7f/x.lua',
    '.leading-dot',
    '#leading-hash',
    '/' + 'd' * 120 + '/' + '%' * 100 + '.lua',   # encodes past NAME_MAX
    '/' + 'e' * 3000 + '.lua',                      # long key
]


def test_long_and_strange_names(env):
    for i, k in enumerate(STRANGE):
        env.put(k, b'blob %d' % i, '--no-source')
    with mounted(env.shard, env.mnt) as m:
        names = os.listdir(m.path)
        assert sorted(names) == sorted(encode(k) for k in STRANGE)
        for n in names:
            assert len(n.encode()) <= 255 and '/' not in n and not n.startswith('.')
        assert sum(n.startswith('#') for n in names) == 2
        for i, k in enumerate(STRANGE):
            d = m.entry(k)
            assert open(os.path.join(d, 'blob'), 'rb').read() == b'blob %d' % i
            meta = json.load(open(os.path.join(d, 'metadata.json')))
            assert meta['key'] == k
        # a hashed name cannot be made by mkdir (its key is unknown)
        with pytest.raises(OSError):
            os.mkdir(os.path.join(m.path, '#' + '0' * 32))
        # writing a strange key through the mount
        k = '/tmp/new key %/ü.lua'
        os.mkdir(m.entry(k))
        with open(os.path.join(m.entry(k), 't'), 'wb') as f:
            f.write(b'strange')
        os.rename(os.path.join(m.entry(k), 't'), os.path.join(m.entry(k), 'blob'))
        assert env.get(k).stdout == b'strange'


# ---- concurrency and coherence ----

def test_concurrent_readers_and_writer(env):
    key = env.source('c.lua')
    versions = [bytes([i]) * (65536 + i * 1000) for i in range(12)]
    env.put(key, versions[0])
    errors = []
    stop = threading.Event()
    with mounted(env.shard, env.mnt) as m:
        blob = os.path.join(m.entry(key), 'blob')

        def reader():
            n = 0
            while not stop.is_set():
                try:
                    data = open(blob, 'rb').read()
                except FileNotFoundError:
                    continue  # between a version's removal and the next lookup
                except OSError as e:
                    if e.errno == errno.ESTALE:
                        continue
                    errors.append(repr(e))
                    return
                if data not in versions:
                    errors.append('torn read: %d bytes, first %r' % (len(data), data[:1]))
                    return
                n += 1
        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for v in versions[1:]:
                env.put(key, v)
                time.sleep(0.02)
            # and writers through the mount at the same time
            for v in versions[:3]:
                t = os.path.join(m.entry(key), 'w.tmp')
                with open(t, 'wb') as f:
                    f.write(v)
                os.rename(t, blob)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors
        wait_for(lambda: open(blob, 'rb').read() == versions[2])


def test_stats_read_while_forgotten(env):
    """Each open of .stats is a new inode that the kernel forgets at close,
    possibly while the daemon is still inside the write(2) of the READ
    reply: the reply must not use the node's memory.  Under AddressSanitizer
    the old code aborted the daemon here within a few hundred reads."""
    env.put(env.source('s.lua'), b'x')
    errors = []
    with mounted(env.shard, env.mnt) as m:
        stats = os.path.join(m.path, '.stats')

        def reader():
            try:
                for _ in range(500):
                    with open(stats, 'rb') as f:
                        json.loads(f.read())
            except (OSError, ValueError) as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # the daemon exited normally at unmount, having answered every read
    err = m.proc.stderr.read().decode(errors='replace')
    assert not errors and m.proc.returncode == 0, (errors[:3], m.proc.returncode, err[:3000])


def test_coherence_with_external_put_and_rm(env):
    key = env.source('coh.lua')
    env.put(key, b'version one')
    with mounted(env.shard, env.mnt) as m:
        blob = os.path.join(m.entry(key), 'blob')
        for _ in range(3):  # warm: page cache and dentries
            assert open(blob, 'rb').read() == b'version one'
        env.put(key, b'version two, longer')
        took = wait_for(lambda: open(blob, 'rb').read() == b'version two, longer',
                        timeout=1.0)
        assert took < 0.5, 'new bytes took %.3f s' % took
        meta = json.load(open(os.path.join(m.entry(key), 'metadata.json')))
        assert meta['blob']['size'] == len(b'version two, longer')
        # a new key appears in the listing
        k2 = env.source('coh2.lua')
        env.put(k2, b'two')
        wait_for(lambda: encode(k2) in os.listdir(m.path), timeout=1.0)
        # external rm: the entry goes away
        cli('--shard', env.shard, 'rm', '--key', key)
        took = wait_for(lambda: not os.path.exists(m.entry(key)), timeout=1.0)
        assert took < 0.5
        # and comes back with new bytes, never the old page cache
        env.put(key, b'version three')
        wait_for(lambda: os.path.exists(blob), timeout=1.0)
        assert open(blob, 'rb').read() == b'version three'
        # external clear
        cli('--shard', env.shard, 'clear')
        wait_for(lambda: os.listdir(m.path) == [], timeout=1.0)


def test_external_put_seen_while_the_mount_commits(env):
    """The watcher does not re-read every directory after the daemon's own
    commits (it counts them); another process's commit made in between
    must still reach the kernel within the coherence window."""
    key = env.source('busy.lua')
    env.put(key, b'version 0')
    with mounted(env.shard, env.mnt, '-o', 'nosync') as m:
        blob = os.path.join(m.entry(key), 'blob')
        assert open(blob, 'rb').read() == b'version 0'
        stop = threading.Event()
        errors = []

        def writer():
            i = 0
            try:
                while not stop.is_set():
                    d = m.entry('/busy/w%05d.lua' % i)
                    os.mkdir(d)
                    with open(os.path.join(d, '.tmp'), 'wb') as f:
                        f.write(b'x' * 100)
                    os.rename(os.path.join(d, '.tmp'), os.path.join(d, 'blob'))
                    i += 1
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=writer)
        t.start()
        try:
            for v in range(1, 6):
                data = b'version %d' % v
                env.put(key, data)
                took = wait_for(lambda: open(blob, 'rb').read() == data, timeout=1.0)
                assert took < 0.5, 'version %d took %.3f s' % (v, took)
        finally:
            stop.set()
            t.join()
        assert not errors, errors
        stats = json.load(open(os.path.join(m.path, '.stats')))
        assert stats['daemon']['commits'] > 0


def test_root_listing_follows_the_mounts_own_commits(env):
    """A commit invalidates the kernel's copy of the root only when the root
    listing changed: a rename into .tree of a key the root did not list."""
    def write(d, name, data):
        with open(os.path.join(d, '.tmp'), 'wb') as f:
            f.write(data)
        os.rename(os.path.join(d, '.tmp'), os.path.join(d, name))

    with mounted(env.shard, env.mnt) as m:
        assert os.listdir(m.path) == []
        # flat view: mkdir lists the directory, its commit keeps it listed
        a = '/own/a.lua'
        os.mkdir(m.entry(a))
        write(m.entry(a), 'blob', b'a')
        assert os.listdir(m.path) == [encode(a)]
        assert open(os.path.join(m.entry(a), 'blob'), 'rb').read() == b'a'
        t0 = os.stat(m.path).st_mtime_ns
        # tree view: a new key appears in the root listing, the root's mtime moves
        b = '/own/b.pyc'
        write(os.path.join(m.path, '.tree', 'own'), 'b.pyc', b'b')
        wait_for(lambda: sorted(os.listdir(m.path)) == sorted([encode(a), encode(b)]),
                 timeout=0.5)
        assert os.stat(m.path).st_mtime_ns > t0
        assert open(os.path.join(m.entry(b), 'blob'), 'rb').read() == b'b'


def test_stale_source_makes_blob_vanish(env):
    key = env.source('s.lua')
    env.put(key, b'fresh')
    with mounted(env.shard, env.mnt) as m:
        d = m.entry(key)
        blob = os.path.join(d, 'blob')
        assert open(blob, 'rb').read() == b'fresh'
        with open(key, 'a') as f:
            f.write('-- edited\n')
        took = wait_for(lambda: not os.path.exists(blob), timeout=1.0)
        assert took < 0.5, 'blob vanished after %.3f s' % took
        with pytest.raises(FileNotFoundError):
            open(blob, 'rb')
        assert os.listdir(d) == ['metadata.json']
        meta = json.load(open(os.path.join(d, 'metadata.json')))
        assert meta['status'] == 'stale' and 'source' in meta['stale_reason']
        # source removed: still stale, directory still there
        os.unlink(key)
        time.sleep(0.1)
        assert os.listdir(d) == ['metadata.json']


def test_daemon_killed_mount_recoverable_shard_intact(env):
    key = env.source('k.lua')
    env.put(key, b'survives')
    mnt = env.mnt
    with mounted(env.shard, mnt) as m:
        assert open(os.path.join(m.entry(key), 'blob'), 'rb').read() == b'survives'
        os.mkdir(m.entry(env.source('half.lua')))
        with open(os.path.join(m.entry(str(env.src / 'half.lua')), 't'), 'wb') as f:
            f.write(b'never committed')
        m.kill()
        with pytest.raises(OSError) as ei:
            os.listdir(mnt)
        assert ei.value.errno == errno.ENOTCONN
        unmount(mnt)
        assert not is_mounted(mnt)
    assert cli('--shard', env.shard, 'verify').returncode == 0
    assert env.get(key).stdout == b'survives'
    assert list(ls_json(env)) == [key]
    with mounted(env.shard, mnt) as m:  # and it mounts again
        assert os.listdir(m.path) == [encode(key)]


def test_read_only_mount(env):
    key = env.source('ro.lua')
    env.put(key, b'read only')
    with mounted(env.shard, env.mnt, '-o', 'ro') as m:
        assert open(os.path.join(m.entry(key), 'blob'), 'rb').read() == b'read only'
        for op in (lambda: os.mkdir(m.entry('/tmp/x.lua')),
                   lambda: os.unlink(os.path.join(m.entry(key), 'blob')),
                   lambda: os.rmdir(m.entry(key)),
                   lambda: open(os.path.join(m.entry(key), 'new'), 'wb')):
            with pytest.raises(OSError) as ei:
                op()
            assert ei.value.errno == errno.EROFS
        stats = json.load(open(os.path.join(m.path, '.stats')))
        assert stats['options']['ro'] is True
    assert env.get(key).stdout == b'read only'


def test_default_shard_and_bad_arguments(env, tmp_path):
    from conftest import FS
    r = subprocess.run([FS], capture_output=True)
    assert r.returncode != 0
    r = subprocess.run([FS, '--help'], capture_output=True)
    assert r.returncode == 0 and b'idle_commit_ms' in r.stdout
    # default shard from $SCRIPTCACHE_PATH
    os.environ['SCRIPTCACHE_PATH'] = env.shard
    try:
        key = env.source('d.lua')
        env.put(key, b'default')
        mnt = str(tmp_path / 'm2')
        os.makedirs(mnt)
        proc = subprocess.Popen([FS, '-f', mnt])
        try:
            wait_for(lambda: is_mounted(mnt), timeout=10)
            assert os.listdir(mnt) == [encode(key)]
        finally:
            unmount(mnt)
            proc.wait(timeout=10)
    finally:
        del os.environ['SCRIPTCACHE_PATH']

    # a shard below its own mount point: refused at once, not a hang
    inner = str(tmp_path / 'm3')
    os.makedirs(inner)
    r = subprocess.run([FS, '-f', os.path.join(inner, 's.shard'), inner],
                       capture_output=True, timeout=20)
    assert r.returncode != 0 and b'inside the mount point' in r.stderr
    assert not is_mounted(inner)


def test_hostile_names_get_precise_errors_and_change_nothing(env):
    key = env.source('h.lua')
    env.put(key, b'kept')
    with mounted(env.shard, env.mnt) as m:
        before = cli('--shard', env.shard, 'stats', '--json').stdout
        cases = {
            '%ZZ': errno.EINVAL,             # not a percent-escape
            '%2': errno.EINVAL,              # cut short
            '%41bc': errno.EINVAL,           # escape of a byte that needs none
            '%2Fa%00b': errno.EINVAL,        # NUL
            'x' * 256: errno.ENAMETOOLONG,   # over NAME_MAX
        }
        for name, want in cases.items():
            with pytest.raises(OSError) as ei:
                os.mkdir(os.path.join(m.path, name))
            assert ei.value.errno == want, (name, ei.value)
        # names that decode to relative or dot-dot paths are not keys
        for name in ('relative.lua', '%2E%2E', 'a%2F..%2Fb', '%2Ftmp%2F..%2Fetc',
                     '%2Ftmp%2F.%2Fx', '%2Ftmp%2F%2Fx', '%2Ftmp%2F'):
            with pytest.raises(OSError) as ei:
                os.mkdir(os.path.join(m.path, name))
            assert ei.value.errno == errno.EINVAL, (name, ei.value)
        # a blob over the format's limit (SC_MAX_BLOB, 1 GiB): EFBIG at the
        # write that crosses it, nothing committed
        d = m.entry(env.source('big.lua'))
        os.mkdir(d)
        fd = os.open(os.path.join(d, 't'), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            with pytest.raises(OSError) as ei:
                os.pwrite(fd, b'x', 1 << 30)
            assert ei.value.errno == errno.EFBIG
        finally:
            os.close(fd)
        after = cli('--shard', env.shard, 'stats', '--json').stdout
        assert json.loads(after)['entries'] == json.loads(before)['entries'] == 1
        assert env.get(key).stdout == b'kept'


def test_allow_other_and_debug_options(env):
    key = env.source('opt.lua')
    env.put(key, b'options')
    with mounted(env.shard, env.mnt, '-o', 'allow_other', '-d') as m:
        with open('/proc/self/mountinfo') as f:
            line = [l for l in f if l.split()[4] == os.path.realpath(m.path)][0]
        assert 'allow_other' in line and 'default_permissions' in line
        assert 'fuse.scriptcachefs' in line
        assert open(os.path.join(m.entry(key), 'blob'), 'rb').read() == b'options'
    err = m.proc.stderr.read().decode(errors='replace')
    assert 'opcode: LOOKUP' in err  # -d: every request is printed


def _abort_connection(mnt):
    """Abort a hung FUSE connection (fusectl), so the test never hangs."""
    dev = None
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            if fields[4] == os.path.realpath(mnt):
                dev = fields[2].split(':')[1]
    if dev is None:
        return
    ctl = '/sys/fs/fuse/connections'
    made = False
    if not os.path.exists(os.path.join(ctl, dev)):
        subprocess.run(['mount', '-t', 'fusectl', 'none', ctl], capture_output=True)
        made = True
    try:
        with open(os.path.join(ctl, dev, 'abort'), 'w') as f:
            f.write('1')
    finally:
        if made:
            subprocess.run(['umount', ctl], capture_output=True)


def test_sigkill_right_after_mount_never_hangs(env):
    """Killed in its first milliseconds, while its own first request to the
    mount may be in flight behind a client's mkdir, the daemon still exits
    and the mount point can be cleaned up.  (A daemon thread blocked in a
    request to its own mount kept a SIGKILLed daemon alive forever.)"""
    from conftest import FS
    rounds = int(os.environ.get('SC_TEST_KILL_ROUNDS', '40'))
    for i in range(rounds):
        mnt = str(env.dir / ('k%d' % i))
        os.makedirs(mnt)
        proc = subprocess.Popen([FS, '-f', env.shard, mnt],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not is_mounted(mnt) and proc.poll() is None:
                pass
            assert proc.poll() is None, 'scriptcachefs exited before mounting'

            def mkdirs():
                for j in range(20):
                    try:
                        os.mkdir(os.path.join(mnt, 'd%d' % j))
                    except OSError:
                        return
            t = threading.Thread(target=mkdirs, daemon=True)
            t.start()
            time.sleep((i % 5) * 0.0002)
            proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _abort_connection(mnt)
                proc.wait(timeout=10)
                pytest.fail('round %d: the SIGKILLed daemon did not exit' % i)
            t.join(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            unmount(mnt)
            assert not is_mounted(mnt)


# ---- attributes: chmod, chown, utimes (docs/FS.md, "Attributes") ----

def _cached_at_ns(meta_path):
    import calendar
    s = json.load(open(meta_path))['cached_at']  # 2026-11-29T09:41:46.123456789Z
    sec = calendar.timegm(time.strptime(s[:19], '%Y-%m-%dT%H:%M:%S'))
    return sec * 10**9 + int(s[20:29])


def _forget_inodes():
    """Make the kernel forget unused inodes (FORGET reaches the daemon), so
    that what stat shows next comes from a new lookup, not the kernel's
    attribute cache.  Needs root."""
    os.sync()
    # needs root, as the chown checks do (CI runs as root): no silent skip
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('2')


def _set_attrs(path, mode, uid, gid, times_ns):
    os.chmod(path, mode)
    os.chown(path, uid, gid)
    os.utime(path, ns=times_ns)


def _assert_attrs(path, mode, uid, gid, times_ns):
    st = os.stat(path)
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == (oct(mode), uid, gid), path
    assert (st.st_atime_ns, st.st_mtime_ns) == times_ns, path


def test_chmod_chown_utime_on_entry_dir_blob_and_metadata(env):
    key = env.source('attr.lua')
    env.put(key, b'attributes')
    with mounted(env.shard, env.mnt) as m:
        d = m.entry(key)
        blob, meta = os.path.join(d, 'blob'), os.path.join(d, 'metadata.json')
        t0 = time.time()
        _set_attrs(d, 0o750, 1234, 5678, (1_000_000_001_000000123, 1_000_000_002_000000456))
        _set_attrs(blob, 0o440, 2345, 6789, (1_100_000_001_000000000, 1_100_000_002_000000789))
        _set_attrs(meta, 0o400, 3456, 7890, (1_200_000_001_000000000, 1_200_000_002_000000000))
        for _ in range(2):  # as answered, and again after the kernel forgot
            _assert_attrs(d, 0o750, 1234, 5678, (1_000_000_001_000000123, 1_000_000_002_000000456))
            _assert_attrs(blob, 0o440, 2345, 6789, (1_100_000_001_000000000, 1_100_000_002_000000789))
            _assert_attrs(meta, 0o400, 3456, 7890, (1_200_000_001_000000000, 1_200_000_002_000000000))
            assert os.stat(blob).st_ctime >= t0 - 1  # a change of attributes
            _forget_inodes()
        # the tree view shows the blob's inode: the same attributes
        _assert_attrs(os.path.join(m.path, '.tree', key.lstrip('/')), 0o440, 2345, 6789,
                      (1_100_000_001_000000000, 1_100_000_002_000000789))
        # utime(path, None) is UTIME_NOW
        before = time.time_ns()
        os.utime(blob)
        os.utime(d)
        for p in (blob, d):
            st = os.stat(p)
            assert before - 10**9 <= st.st_mtime_ns <= time.time_ns() + 10**9
            assert before - 10**9 <= st.st_atime_ns <= time.time_ns() + 10**9
        # chown of only the group keeps the owner
        os.chown(blob, -1, 42)
        assert (os.stat(blob).st_uid, os.stat(blob).st_gid) == (2345, 42)
        # the mode is shown as set on a blob; metadata.json (generated)
        # never shows write bits
        os.chmod(blob, 0o664)
        assert os.stat(blob).st_mode & 0o7777 == 0o664
        os.chmod(blob, 0o444)
        os.chmod(meta, 0o600)
        assert os.stat(meta).st_mode & 0o7777 == 0o400
        with pytest.raises(OSError) as ei:
            os.truncate(d, 1)
        assert ei.value.errno == errno.EISDIR
        # directories keep every permission bit
        os.chmod(d, 0o1777)
        assert os.stat(d).st_mode & 0o7777 == 0o1777
        assert open(blob, 'rb').read() == b'attributes'
    assert env.get(key).stdout == b'attributes'


def test_chmod_chown_utime_in_tree_view(env):
    key = env.source('tattr.pyc')
    env.put(key, b'tree bytes')
    with mounted(env.shard, env.mnt) as m:
        tree = os.path.join(m.path, '.tree')
        f = os.path.join(tree, key.lstrip('/'))
        parent = os.path.dirname(f)
        made = os.path.join(parent, 'made')
        os.mkdir(made)
        _set_attrs(parent, 0o700, 11, 12, (10**18, 2 * 10**18))
        _set_attrs(f, 0o404, 13, 14, (3 * 10**17, 4 * 10**17))
        _set_attrs(made, 0o711, 15, 16, (5 * 10**17, 6 * 10**17))
        _set_attrs(tree, 0o750, 17, 18, (7 * 10**17, 8 * 10**17))
        for _ in range(2):
            _assert_attrs(parent, 0o700, 11, 12, (10**18, 2 * 10**18))
            _assert_attrs(f, 0o404, 13, 14, (3 * 10**17, 4 * 10**17))
            _assert_attrs(made, 0o711, 15, 16, (5 * 10**17, 6 * 10**17))
            _assert_attrs(tree, 0o750, 17, 18, (7 * 10**17, 8 * 10**17))
            # the flat view's blob is the same file
            _assert_attrs(os.path.join(m.entry(key), 'blob'), 0o404, 13, 14,
                          (3 * 10**17, 4 * 10**17))
            _forget_inodes()
        # a directory removed and made again starts afresh
        os.rmdir(made)
        os.mkdir(made)
        st = os.stat(made)
        assert (st.st_mode & 0o7777, st.st_uid) == (0o755, os.getuid())
        # a new version committed by rename gets the shard's attributes
        tmp = f + '.1234'
        with open(tmp, 'wb') as w:
            w.write(b'tree v2')
        os.rename(tmp, f)
        st = os.stat(f)
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o644, os.getuid(), os.getgid())
        assert st.st_mtime_ns != 4 * 10**17
        _assert_attrs(parent, 0o700, 11, 12, (10**18, 2 * 10**18))  # the directory keeps its own
        assert open(f, 'rb').read() == b'tree v2'


def test_new_version_resets_attributes_same_version_keeps_them(env):
    key = env.source('ver.lua')
    env.put(key, b'v1')
    with mounted(env.shard, env.mnt) as m:
        d = m.entry(key)
        blob, meta = os.path.join(d, 'blob'), os.path.join(d, 'metadata.json')
        _set_attrs(d, 0o700, 21, 22, (10**17, 2 * 10**17))
        _set_attrs(blob, 0o400, 23, 24, (3 * 10**17, 4 * 10**17))
        _set_attrs(meta, 0o440, 25, 26, (5 * 10**17, 6 * 10**17))
        # a new version committed by rename through the mount
        tmp = os.path.join(d, 'tmp')
        with open(tmp, 'wb') as w:
            w.write(b'v2')
        old = _cached_at_ns(meta)
        os.rename(tmp, blob)
        # metadata.json follows within the coherence window (docs/FS.md)
        wait_for(lambda: _cached_at_ns(meta) != old, timeout=2.0)
        cached = _cached_at_ns(meta)
        st = os.stat(blob)
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o644, os.getuid(), os.getgid())
        assert st.st_mtime_ns == cached
        st = os.stat(meta)
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o444, os.getuid(), os.getgid())
        # the directory keeps its mode and owner; its times follow the version
        st = os.stat(d)
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o700, 21, 22)
        assert st.st_mtime_ns == cached
        # a new version from another process: the same
        _set_attrs(blob, 0o400, 23, 24, (3 * 10**17, 4 * 10**17))
        env.put(key, b'v3')
        wait_for(lambda: open(blob, 'rb').read() == b'v3', timeout=2.0)
        st = os.stat(blob)
        assert (st.st_mode & 0o7777, st.st_uid) == (0o644, os.getuid())
        # the same version keeps them, even when it goes stale (metadata.json
        # stays, with a new status)
        _set_attrs(meta, 0o440, 25, 26, (5 * 10**17, 6 * 10**17))
        with open(key, 'a') as w:
            w.write('-- edited\n')
        wait_for(lambda: not os.path.exists(blob), timeout=2.0)
        wait_for(lambda: json.load(open(meta))['status'] == 'stale', timeout=2.0)
        _assert_attrs(meta, 0o440, 25, 26, (5 * 10**17, 6 * 10**17))
        # evicted and written again: a new directory, with fresh attributes
        shutil.rmtree(d)
        os.mkdir(d)
        st = os.stat(d)
        assert (st.st_mode & 0o7777, st.st_uid) == (0o755, os.getuid())
        # removed and put again by another process while the kernel had
        # forgotten the directory: fresh attributes too
        other = env.source('other.lua')
        env.put(other, b'o1')
        od = m.entry(other)
        _set_attrs(od, 0o700, 27, 28, (10**17, 2 * 10**17))
        _set_attrs(os.path.join(od, 'blob'), 0o400, 27, 28, (10**17, 2 * 10**17))
        _forget_inodes()
        cli('--shard', env.shard, 'rm', '--key', other)
        wait_for(lambda: not os.path.exists(od), timeout=2.0)
        env.put(other, b'o2')
        wait_for(lambda: os.path.exists(od), timeout=2.0)
        for p, mode in ((od, 0o755), (os.path.join(od, 'blob'), 0o644)):
            st = os.stat(p)
            assert (st.st_mode & 0o7777, st.st_uid) == (mode, os.getuid()), p


def test_attributes_do_not_survive_remount_and_ro_refuses(env):
    key = env.source('remount.lua')
    env.put(key, b'kept bytes')
    with mounted(env.shard, env.mnt) as m:
        d = m.entry(key)
        _set_attrs(d, 0o700, 31, 32, (10**17, 2 * 10**17))
        _set_attrs(os.path.join(d, 'blob'), 0o400, 33, 34, (3 * 10**17, 4 * 10**17))
        _set_attrs(os.path.join(m.path, '.tree'), 0o700, 35, 36, (5 * 10**17, 6 * 10**17))
    for opts, dmode in (((), 0o755), (('-o', 'ro'), 0o555)):
        with mounted(env.shard, env.mnt, *opts) as m:
            d = m.entry(key)
            blob, meta = os.path.join(d, 'blob'), os.path.join(d, 'metadata.json')
            cached = _cached_at_ns(meta)
            for p, mode in ((d, dmode), (blob, 0o644 if not opts else 0o444), (meta, 0o444)):
                st = os.stat(p)
                assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == \
                    (mode, os.getuid(), os.getgid()), p
                assert st.st_mtime_ns == cached, p
            st = os.stat(os.path.join(m.path, '.tree'))
            assert (st.st_mode & 0o7777, st.st_uid) == (dmode, os.getuid())
            if opts:
                for p in (d, blob, meta, os.path.join(m.path, '.tree')):
                    for op in (lambda: os.chmod(p, 0o700), lambda: os.chown(p, 1, 1),
                               lambda: os.utime(p, ns=(1, 1)), lambda: os.utime(p)):
                        with pytest.raises(OSError) as ei:
                            op()
                        assert ei.value.errno == errno.EROFS
            assert open(blob, 'rb').read() == b'kept bytes'


# ---- underneath: the distribution's .pyc (docs/FS.md, "Underneath") ----

PY = '/usr/bin/python3'


def _dist_tree(root, names):
    """Modules in root/dist, compiled by root into dist/__pycache__ as the
    distribution's would be.  Returns (dist dir, {name: its real .pyc},
    {name: its name under .tree})."""
    d = root / 'dist'
    d.mkdir()
    for n in names:
        (d / (n + '.py')).write_text('X = %r\n' % n)
    subprocess.run([PY, '-m', 'compileall', '-q', str(d)], check=True)
    tag = subprocess.run([PY, '-c', 'import sys; print(sys.implementation.cache_tag)'],
                         capture_output=True, check=True, text=True).stdout.strip()
    pyc = {n: str(d / '__pycache__' / ('%s.%s.pyc' % (n, tag))) for n in names}
    for p in pyc.values():
        assert os.stat(p).st_uid == 0  # these tests run as root, like CI
    return d, pyc, {n: str(d).lstrip('/') + '/' + os.path.basename(p) for n, p in pyc.items()}


def _daemon_stats(m):
    with open(os.path.join(m.path, '.stats')) as f:
        return json.load(f)['daemon']


def test_dist_pyc_served_read_only_and_shadowed(env):
    names = ['served', 'renamed', 'put', 'nobody', 'worldw', 'link', 'fifo']
    d, pyc, rel = _dist_tree(env.dir, names)
    os.chown(pyc['nobody'], 65534, 65534)          # another user's bytes
    os.chmod(pyc['worldw'], 0o666)                 # anyone's bytes
    os.unlink(pyc['link'])
    os.symlink(pyc['served'], pyc['link'])         # a link to trusted bytes
    os.unlink(pyc['fifo'])
    os.mkfifo(pyc['fifo'], 0o644)                  # must not block the daemon
    real = {n: open(pyc[n], 'rb').read() for n in ('served', 'renamed', 'put')}
    with mounted(env.shard, env.mnt, '-o', 'nosync') as m:
        tree = os.path.join(m.path, '.tree')
        t = {n: os.path.join(tree, r) for n, r in rel.items()}
        # served: its bytes, its size and mtime, read-only, nothing cached
        with open(t['served'], 'rb') as f:
            assert f.read() == real['served']
        st, rst = os.stat(t['served']), os.stat(pyc['served'])
        assert (st.st_size, st.st_mtime_ns, st.st_uid) == (rst.st_size, rst.st_mtime_ns, 0)
        assert st.st_mode & 0o7777 == 0o444
        assert ls_json(env) == {}
        assert _daemon_stats(m)['dist_pyc_hits'] == 1
        # refused: owned by another user, writable by others, a symbolic
        # link, a FIFO: as if absent
        for n in ('nobody', 'worldw', 'link', 'fifo'):
            assert not os.path.exists(t[n]), n
        assert _daemon_stats(m)['dist_pyc_refused'] == 3  # the FIFO is no file
        # the mount itself is never underneath (the daemon would wait on itself)
        assert not os.path.exists(tree + m.path)
        assert not os.path.exists(os.path.join(tree + m.path, '.stats'))
        # readdir lists the cache only
        assert os.listdir(os.path.dirname(t['served'])) == []
        # writes: EACCES (root passes the kernel's mode check, so the
        # daemon's answer is what is seen); the real file is untouched
        for op in (lambda: os.open(t['served'], os.O_WRONLY | os.O_TRUNC),
                   lambda: os.truncate(t['served'], 0),
                   lambda: os.unlink(t['served']),
                   lambda: os.rename(t['served'], t['served'] + '.moved')):
            with pytest.raises(OSError) as ei:
                op()
            assert ei.value.errno == errno.EACCES
        fd = os.open(t['served'], os.O_WRONLY)
        try:
            with pytest.raises(OSError) as ei:
                os.write(fd, b'x')
            assert ei.value.errno == errno.EACCES
        finally:
            os.close(fd)
        with pytest.raises(OSError) as ei:
            os.rmdir(os.path.join(tree, 'usr', 'lib'))  # a real directory
        assert ei.value.errno == errno.EACCES
        assert open(pyc['served'], 'rb').read() == real['served']
        assert os.path.exists(os.path.join(tree, 'usr', 'lib'))
        # a hard link copies the distribution's bytes into a cache entry
        os.link(t['served'], t['served'] + '.lnk')
        assert open(t['served'] + '.lnk', 'rb').read() == real['served']
        assert ls_json(env)['/' + rel['served'] + '.lnk']['size'] == len(real['served'])
        os.unlink(t['served'] + '.lnk')
        # a rename over the name commits, and the entry shadows the file
        tmp = t['renamed'] + '.1234'
        with open(tmp, 'wb') as f:
            f.write(b'committed')
        assert open(t['renamed'], 'rb').read() == real['renamed']
        os.rename(tmp, t['renamed'])
        assert open(t['renamed'], 'rb').read() == b'committed'
        key_renamed = '/' + rel['renamed']
        assert list(ls_json(env)) == [key_renamed]
        # a put by another process shadows a file the kernel holds
        assert open(t['put'], 'rb').read() == real['put']
        key_put = '/' + rel['put']
        env.put(key_put, b'put elsewhere', '--no-source')
        wait_for(lambda: open(t['put'], 'rb').read() == b'put elsewhere', timeout=2)
        # evicting the entries brings the distribution's files back
        os.unlink(t['renamed'])
        cli('--shard', env.shard, 'rm', '--key', key_put)
        wait_for(lambda: open(t['put'], 'rb').read() == real['put'], timeout=2)
        assert open(t['renamed'], 'rb').read() == real['renamed']
        assert ls_json(env) == {}
    assert open(pyc['served'], 'rb').read() == real['served']


def test_dist_pyc_option_off(env):
    d, pyc, rel = _dist_tree(env.dir, ['off'])
    with mounted(env.shard, env.mnt, '-o', 'no_dist_pyc') as m:
        tree = os.path.join(m.path, '.tree')
        assert not os.path.exists(os.path.join(tree, rel['off']))
        assert not os.path.exists(os.path.join(tree, 'usr'))
        st = json.load(open(os.path.join(m.path, '.stats')))
        assert st['options']['dist_pyc'] is False
        assert st['daemon']['dist_pyc_hits'] == 0


def test_dist_pyc_allow_other_checks_each_caller(env):
    """With allow_other, each caller gets only what it may read itself: the
    real path is walked with its credentials, and nothing one caller looked
    up is kept for another (entry timeout 0)."""
    private = env.dir / 'private'
    private.mkdir(mode=0o700)              # nobody may not search it
    d, pyc, rel = _dist_tree(private, ['mine'])
    os.chmod(pyc['mine'], 0o644)           # the file itself is world-readable
    public = env.dir / 'public'
    public.mkdir(mode=0o755)
    d2, pyc2, rel2 = _dist_tree(public, ['secret'])
    os.chmod(pyc2['secret'], 0o600)        # a reachable file nobody may not read
    nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']
    # nobody must reach the mount point: open pytest's 0700 directories
    # above it for search, for the test's duration
    opened = []
    p = env.dir
    while p != p.parent and os.stat(p).st_uid == 0:
        mode = os.stat(p).st_mode & 0o7777
        if mode & 0o001 == 0:
            opened.append((p, mode))
            os.chmod(p, mode | 0o011)
        p = p.parent
    try:
        with mounted(env.shard, env.mnt, '-o', 'allow_other') as m:
            f = os.path.join(m.path, '.tree', rel['mine'])
            real = open(pyc['mine'], 'rb').read()
            assert open(f, 'rb').read() == real
            assert os.path.exists(m.path + '/.stats')
            r = subprocess.run(nobody + ['cat', m.path + '/.stats'], capture_output=True)
            assert r.returncode == 0, r  # nobody reaches the mount
            refused = _daemon_stats(m)['dist_pyc_refused']
            # the daemon refuses it (ENOENT), not the kernel (EACCES):
            # every tree directory on the way is 0755
            for path in (f, os.path.join(m.path, '.tree', rel2['secret'])):
                r = subprocess.run(nobody + ['cat', path], capture_output=True)
                assert r.returncode != 0 and r.stdout == b'', r
                assert b'No such file' in r.stderr, r
                # refused by the daemon: private/ (which nobody may not
                # search; the kernel asks twice, revalidating root's dentry
                # then looking up afresh), then the file nobody may not read
                now = _daemon_stats(m)['dist_pyc_refused']
                assert now > refused, path
                refused = now
            # and root again, after nobody was refused
            assert open(f, 'rb').read() == real
            assert open(os.path.join(m.path, '.tree', rel2['secret']), 'rb').read() == \
                open(pyc2['secret'], 'rb').read()
            # what nobody may read, it gets: the standard library's own .pyc
            lib = os.path.join(m.path, '.tree', 'usr', 'lib', 'python3.11',
                               'json', '__init__.cpython-311.pyc')
            r = subprocess.run(nobody + ['cat', lib], capture_output=True)
            assert r.returncode == 0, r
            assert r.stdout == open(
                '/usr/lib/python3.11/json/__pycache__/__init__.cpython-311.pyc', 'rb').read()
    finally:
        for p, mode in opened:
            os.chmod(p, mode)
