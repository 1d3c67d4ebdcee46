"""scriptcachefs -o remote=URL against a real nginx (docs/REMOTE.md, "The mount").

Machine 1 fills its shard with `scriptcache put --tag` and pushes; machine
2 mounts an empty shard with the remote, and a read of an entry through
the mount (the flat view's <encoded key>/blob) fetches, verifies and puts
it.  The server is the one of test_remote.py (nginx WebDAV on 127.0.0.1,
a random port); the mounts are those of tests/fs/conftest.py (real
mounts, unmounted whatever happens).  A machine without nginx or FUSE
fails these tests, never skips them.
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
from test_remote import (CLI, PASSWORD, SOURCES, TAG, compiled, fill,  # noqa: E402
                         htpasswd_line, make_certs, nginx, ok, remote_env, run, two_machines)


def mount_env(**extra):
    """Our environment without any SCRIPTCACHE_* variable, plus @extra."""
    e = {k: v for k, v in os.environ.items() if not k.startswith('SCRIPTCACHE')}
    e.update(extra)
    return e


def entry(m, key):
    return os.path.join(m.path, run('encode', '--key', key)[1].rstrip('\n'))


def stats(m):
    with open(os.path.join(m.path, '.stats')) as f:
        return json.load(f)


def read_blob(m, key):
    with open(os.path.join(entry(m, key), 'blob'), 'rb') as f:
        return f.read()


def shard_keys(shard):
    rc, out, err, _ = run('--shard', shard, 'ls', '--json')
    assert rc == 0, err
    return {e['key']: e for e in json.loads(out)}


def remote_opts(srv, *more):
    return ('-o', ','.join(['remote=' + srv.url, 'remote_tag=' + TAG, 'remote_exe=' + CLI,
                            *more]))


def test_mount_fetches_a_miss_and_backfills_the_shard(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with nginx(tmp_path, htpasswd=htpasswd_line('fleet', PASSWORD)) as srv:
        auth = tmp_path / 'auth'
        auth.write_text('fleet:%s\n' % PASSWORD)
        auth.chmod(0o600)
        env = remote_env(srv, SCRIPTCACHE_REMOTE_AUTH_FILE=str(auth))
        ok('--shard', m1.shard, 'push', env=env)
        nlog = len(srv.log_lines())
        (m2.dir / 'local-only.lua').write_bytes(b'print("never pushed")\n')
        menv = mount_env(SCRIPTCACHE_REMOTE_AUTH_FILE=str(auth))
        with mounted(str(m2.shard), str(tmp_path / 'mnt'), *remote_opts(srv), env=menv) as m:
            # the credentials are in neither the command line nor .stats
            with open('/proc/%d/cmdline' % m.proc.pid, 'rb') as f:
                assert PASSWORD.encode() not in f.read()
            s = stats(m)
            assert PASSWORD not in json.dumps(s)
            r = s['remote']
            assert r['url'] == srv.url and r['mode'] == 'rw' and r['timeout_ms'] == 200
            assert r['fingerprints'] == [{'tag': TAG, 'exe': CLI, 'from': 'option'}]
            assert r['lookups'] == 0 and r['breaker']['state'] == 'closed'

            for rel, data in SOURCES.items():
                assert read_blob(m, m2.path(rel)) == compiled(data)
            r = stats(m)['remote']
            assert r['lookups'] == 3 and r['hits'] == 3 and r['fills'] == 3, r
            assert r['misses'] == 0 and r['errors'] == 0 and r['integrity_failures'] == 0
            assert r['bytes'] >= sum(len(compiled(d)) for d in SOURCES.values())
            # now local: a second read asks nothing
            assert read_blob(m, m2.path('main.lua')) == compiled(SOURCES['main.lua'])
            assert stats(m)['remote']['lookups'] == 3

            # the local shard holds them, with machine 2's stat and the fingerprint
            keys = shard_keys(m2.shard)
            for rel in SOURCES:
                e = keys[m2.path(rel)]
                assert e['tag'] == TAG and e['status'] == 'fresh'
                assert e['source_mtime'] == 1_700_000_000

            # a source the remote lacks: a miss, then the negative cache
            lo = entry(m, m2.path('local-only.lua'))
            assert not os.path.exists(lo)
            r = stats(m)['remote']
            assert r['misses'] == 1 and r['negative_hits'] == 0
            req = r['requests']
            assert not os.path.exists(lo)
            r = stats(m)['remote']
            assert r['negative_hits'] == 1 and r['requests'] == req, r
            # not a source at all (no such file): no remote lookup
            assert not os.path.exists(entry(m, str(m2.dir / 'nope.lua')))
            assert stats(m)['remote']['lookups'] == r['lookups']
        # the mount never uploads
        assert not [l for l in srv.log_lines()[nlog:] if '"PUT ' in l]


def test_mount_refuses_a_tampered_blob(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with nginx(tmp_path) as srv:
        ok('--shard', m1.shard, 'push', env=remote_env(srv))
        target = hashlib.sha256(compiled(SOURCES['util.lua'])).hexdigest()
        p = os.path.join(srv.root, 'cas', target)
        data = bytearray(open(p, 'rb').read())
        data[10] ^= 0xff
        open(p, 'wb').write(bytes(data))
        with mounted(str(m2.shard), str(tmp_path / 'mnt'), *remote_opts(srv),
                     env=mount_env()) as m:
            assert not os.path.exists(entry(m, m2.path('util.lua')))
            assert read_blob(m, m2.path('main.lua')) == compiled(SOURCES['main.lua'])
            r = stats(m)['remote']
            assert r['integrity_failures'] == 1 and r['hits'] == 1 and r['fills'] == 1, r
            assert r['breaker']['state'] == 'closed', 'one bad object is no transport failure'
        keys = shard_keys(m2.shard)
        assert m2.path('util.lua') not in keys and m2.path('main.lua') in keys


def test_mount_stopped_server_costs_the_timeout_once(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with nginx(tmp_path) as srv:
        ok('--shard', m1.shard, 'push', env=remote_env(srv))
        with mounted(str(m2.shard), str(tmp_path / 'mnt'),
                     *remote_opts(srv, 'remote_timeout_ms=300', 'remote_breaker_s=2'),
                     env=mount_env()) as m:
            names = {rel: entry(m, m2.path(rel)) for rel in SOURCES}
            os.kill(srv.proc.pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                first = os.path.exists(names['main.lua'])
                t1 = time.monotonic()
                second = os.path.exists(names['util.lua'])
                t2 = time.monotonic()
                r = stats(m)['remote']
            finally:
                os.kill(srv.proc.pid, signal.SIGCONT)
            print('\nstopped remote, timeout 300 ms: first miss %.1f ms, second miss %.2f ms'
                  % ((t1 - t0) * 1e3, (t2 - t1) * 1e3))
            assert not first and not second
            assert t1 - t0 < 0.3 + 0.4, 'first miss took %.3f s' % (t1 - t0)
            assert t1 - t0 >= 0.25, 'the first miss did ask (%.3f s)' % (t1 - t0)
            assert t2 - t1 < 0.03, 'second miss took %.3f s' % (t2 - t1)
            assert r['timeouts'] == 1 and r['errors'] == 1 and r['lookups'] == 1, r
            b = r['breaker']
            assert b['state'] == 'open' and b['opens'] == 1 and b['skipped'] == 1, b
            # after the period, one miss probes again and the server answers
            time.sleep(2.1)
            assert read_blob(m, m2.path('util.lua')) == compiled(SOURCES['util.lua'])
            r = stats(m)['remote']
            assert r['breaker']['state'] == 'closed' and r['fills'] == 1, r


def test_mount_read_only_mode_sends_no_put(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with nginx(tmp_path) as srv:
        ok('--shard', m1.shard, 'push', env=remote_env(srv))
        snapshot, nlog = srv.files(), len(srv.log_lines())
        (m2.dir / 'local-only.lua').write_bytes(b'print("never pushed")\n')
        with mounted(str(m2.shard), str(tmp_path / 'mnt'), *remote_opts(srv),
                     env=mount_env(SCRIPTCACHE_REMOTE_MODE='ro')) as m:
            for rel, data in SOURCES.items():
                assert read_blob(m, m2.path(rel)) == compiled(data)
            assert not os.path.exists(entry(m, m2.path('local-only.lua')))
            # a compile through the mount commits locally only
            enc = entry(m, m2.path('local-only.lua'))
            os.mkdir(enc)
            with open(os.path.join(enc, 'blob'), 'wb') as f:
                f.write(b'compiled locally')
                f.flush()
                os.fsync(f.fileno())
            r = stats(m)['remote']
            assert r['mode'] == 'ro' and r['fills'] == 3 and r['misses'] == 1, r
        new = srv.log_lines()[nlog:]
        assert new and all('"GET ' in l for l in new), new
        assert srv.files() == snapshot


def test_mount_remote_options_checked(tmp_path):
    shard = str(tmp_path / 's.shard')
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    fs = os.environ.get('SCRIPTCACHEFS')
    (tmp_path / 'b').write_bytes(b'x')
    ok('--shard', shard, 'put', '--no-source', '--key', 'k', tmp_path / 'b')
    for opts, msg in ((['-o', 'remote=http://u:p@127.0.0.1:1/'], 'user name or password'),
                      (['-o', 'remote=http://127.0.0.1:1/,remote_tag=x'], 'go together'),
                      (['-o', 'remote=http://127.0.0.1:1/,remote_timeout_ms=0'], '1 to 60000'),
                      (['-o', 'ro,remote=http://127.0.0.1:1/'], 'writable')):
        r = subprocess.run([fs, '-f', *opts, shard, str(mnt)], capture_output=True,
                           env=mount_env(), timeout=20)
        err = r.stderr.decode(errors='replace')
        assert r.returncode != 0 and msg in err, (opts, err)
        assert 'u:p' not in err


def test_mount_fingerprints_from_the_shard(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with nginx(tmp_path) as srv:
        ok('--shard', m1.shard, 'push', env=remote_env(srv))
        # an empty shard and no remote_tag: nothing to look up with
        with mounted(str(tmp_path / 'empty.shard'), str(tmp_path / 'mnt'),
                     '-o', 'remote=' + srv.url, env=mount_env()) as m:
            assert not os.path.exists(entry(m, m2.path('main.lua')))
            r = stats(m)['remote']
            assert r['fingerprints'] == [] and r['lookups'] == 0 and r['requests'] == 0, r
        # machine 2 compiled something else with the same interpreter:
        # its fingerprint is learned at mount time
        other = tmp_path / 'other.lua'
        other.write_bytes(b'print("local")\n')
        (tmp_path / 'other.out').write_bytes(b'compiled other')
        ok('--shard', m2.shard, 'put', '--tag', TAG, other, tmp_path / 'other.out')
        with mounted(str(m2.shard), str(tmp_path / 'mnt'), '-o', 'remote=' + srv.url,
                     env=mount_env()) as m:
            r = stats(m)['remote']
            assert r['fingerprints'] == [{'tag': TAG, 'exe': os.path.realpath(CLI),
                                          'from': 'shard'}], r
            assert read_blob(m, m2.path('main.lua')) == compiled(SOURCES['main.lua'])
            assert stats(m)['remote']['fills'] == 1


def test_mount_allow_other_fetches_only_what_the_caller_may_read(tmp_path):
    """Another user must not get, through the daemon, the compiled form of a
    source it cannot read itself."""
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    os.chmod(m2.path('util.lua'), 0o600)
    nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']
    opened = []  # nobody must reach the mount and the sources
    p = tmp_path
    while p != p.parent and os.stat(p).st_uid == 0:
        mode = os.stat(p).st_mode & 0o7777
        if mode & 0o001 == 0:
            opened.append((p, mode))
            os.chmod(p, mode | 0o011)
        p = p.parent
    for d in (tmp_path / 'm2', tmp_path / 'm2' / 'srv', m2.dir):
        os.chmod(d, 0o755)
    try:
        with nginx(tmp_path) as srv:
            ok('--shard', m1.shard, 'push', env=remote_env(srv))
            with mounted(str(m2.shard), str(tmp_path / 'mnt'),
                         *remote_opts(srv, 'allow_other'), env=mount_env()) as m:
                r = subprocess.run(nobody + ['stat', entry(m, m2.path('util.lua'))],
                                   capture_output=True)
                assert r.returncode != 0 and b'No such file' in r.stderr, r
                assert stats(m)['remote']['lookups'] == 0
                r = subprocess.run(nobody + ['cat', os.path.join(
                    entry(m, m2.path('main.lua')), 'blob')], capture_output=True)
                assert r.returncode == 0 and r.stdout == compiled(SOURCES['main.lua']), r
                # root may read util.lua: fetched for root
                assert read_blob(m, m2.path('util.lua')) == compiled(SOURCES['util.lua'])
                assert stats(m)['remote']['fills'] == 2
    finally:
        for p, mode in opened:
            os.chmod(p, mode)


def test_mount_over_tls_with_a_private_ca(tmp_path):
    certs = make_certs(tmp_path / 'pki')
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    ca = str(certs['ca'])
    with nginx(tmp_path, tls=certs['server']) as srv:
        assert srv.url.startswith('https://')
        ok('--shard', m1.shard, 'push', env=remote_env(srv, SCRIPTCACHE_REMOTE_CA_FILE=ca))
        # The CA file from the environment, as the CLI takes it.  A budget
        # of 2 s: a new TLS connection on a loaded machine must not be
        # what is measured here.
        with mounted(str(m2.shard), str(tmp_path / 'mnt'),
                     *remote_opts(srv, 'remote_timeout_ms=2000'),
                     env=mount_env(SCRIPTCACHE_REMOTE_CA_FILE=ca)) as m:
            for rel, data in SOURCES.items():
                assert read_blob(m, m2.path(rel)) == compiled(data)
            r = stats(m)['remote']
            assert r['url'] == srv.url and r['fills'] == 3 and r['errors'] == 0, r
        # Without it, the system store: the certificate is not verified, the
        # miss is a plain ENOENT and the breaker opens.
        with mounted(str(tmp_path / 'm3.shard'), str(tmp_path / 'mnt'),
                     *remote_opts(srv, 'remote_timeout_ms=2000'), env=mount_env()) as m:
            assert not os.path.exists(entry(m, m2.path('main.lua')))
            r = stats(m)['remote']
            assert r['fills'] == 0 and r['errors'] == 1, r
            assert r['breaker']['state'] == 'open', r
        assert not shard_keys(str(tmp_path / 'm3.shard'))
