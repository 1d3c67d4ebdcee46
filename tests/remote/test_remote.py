"""scriptcache push / pull against a real WebDAV server (docs/REMOTE.md).

Each test starts its own nginx on 127.0.0.1 (a random free port, a
generated configuration, every file in a temporary directory, no daemon,
no master process) and kills it in a finally block, whatever happens.  A
machine without nginx fails these tests: scripts/deps installs nginx-light.

Two shards stand for two machines that have the same sources in
different directories, with different mtimes: what makes a compiled script
valid on both is its fingerprint and the source's bytes, never a path.
"""
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

CLI = os.environ.get('SCRIPTCACHE_CLI')
TAG = 'testvm 1.0 bytecode v1'
PASSWORD = 'Pw-9f3c1e-not-in-any-output'

SOURCES = {
    'main.lua': b'local util = require "util"\nprint(util.greet("fleet"))\n',
    'util.lua': b'return { greet = function(n) return "hello " .. n end }\n',
    'lib/deep/json.lua': b'-- a vendored module\nreturn {}\n' + bytes(range(256)),
}


def compiled(src):
    """Stand-in for an interpreter's compiled bytes: binary, distinct."""
    return b'\x1bTVM\x00' + hashlib.sha256(src).digest() + src[::-1]


def find_nginx():
    for d in os.environ.get('PATH', '').split(os.pathsep) + ['/usr/sbin', '/sbin']:
        p = os.path.join(d, 'nginx')
        if d and os.access(p, os.X_OK):
            return p
    pytest.fail('nginx not found (scripts/deps installs nginx-light): the remote '
                'tests need a real server and do not skip')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, base, proc, port, root, access_log):
        self.base, self.proc, self.port = base, proc, port
        self.root, self.access_log = root, access_log
        self.url = 'http://127.0.0.1:%d' % port

    def files(self):
        """{relative path: sha256 of the bytes} of everything stored."""
        out = {}
        for d, _, names in os.walk(self.root):
            for n in names:
                p = os.path.join(d, n)
                with open(p, 'rb') as f:
                    out[os.path.relpath(p, self.root)] = hashlib.sha256(f.read()).hexdigest()
        return out

    def log_lines(self):
        with open(self.access_log, encoding='utf-8', errors='replace') as f:
            return f.read().splitlines()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port}{ssl};
        root {root};{tls}
        client_max_body_size 1100m;
        location / {{
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw;
{auth}
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(tmp_path, htpasswd=None, tls=None):
    """A WebDAV server on 127.0.0.1; killed on the way out.  @tls: (certificate
    chain, key) files to serve https:// with."""
    exe = find_nginx()
    prefix = tmp_path / 'nginx'
    root = tmp_path / 'www'
    (prefix / 'tmp').mkdir(parents=True)
    root.mkdir()
    auth = ''
    if htpasswd:
        with open(prefix / 'htpasswd', 'w') as f:
            f.write(htpasswd)
        auth = ('            auth_basic "scriptcache";\n'
                '            auth_basic_user_file %s/htpasswd;' % prefix)
    proc = None
    for attempt in range(5):  # the free port may be taken again meanwhile
        port = free_port()
        conf = prefix / 'nginx.conf'
        ssl, tls_conf = '', ''
        if tls:
            ssl = ' ssl'
            tls_conf = ('\n        ssl_certificate %s;\n        ssl_certificate_key %s;'
                        % tuple(tls))
        conf.write_text(NGINX_CONF.format(p=prefix, port=port, root=root, auth=auth,
                                          ssl=ssl, tls=tls_conf))
        proc = subprocess.Popen([exe, '-p', str(prefix), '-e', str(prefix / 'error.log'),
                                 '-c', str(conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(('127.0.0.1', port)) == 0:
                    up = True
                    break
            time.sleep(0.02)
        if up:
            break
        err = b''
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err = proc.stderr.read()
        log = (prefix / 'error.log').read_text(errors='replace') \
            if (prefix / 'error.log').exists() else ''
        if 'Address already in use' not in log + err.decode(errors='replace'):
            pytest.fail('nginx did not start: %s %s' % (err.decode(errors='replace'), log[-2000:]))
        proc = None
    if proc is None:
        pytest.fail('nginx could not bind a free port in 5 attempts')
    srv = Server(tmp_path, proc, port, str(root), str(prefix / 'access.log'))
    if tls:
        srv.url = 'https://127.0.0.1:%d' % port
    try:
        yield srv
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # a test may have stopped it
        srv.kill()


def run(*args, env=None, timeout=120):
    """The CLI with a clean remote environment plus @env; returns (rc, out, err, secs)."""
    if not CLI or not os.access(CLI, os.X_OK):
        pytest.fail('SCRIPTCACHE_CLI must name the built scriptcache (got %r)' % CLI)
    e = {k: v for k, v in os.environ.items() if not k.startswith('SCRIPTCACHE')}
    e.update(env or {})
    t0 = time.monotonic()
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, env=e, timeout=timeout)
    return (r.returncode, r.stdout.decode(errors='replace'), r.stderr.decode(errors='replace'),
            time.monotonic() - t0)


def ok(*args, env=None):
    rc, out, err, _ = run(*args, env=env)
    assert rc == 0, 'scriptcache %s: exit %d: %s%s' % (' '.join(map(str, args)), rc, out, err)
    return out


def as_json(*args, env=None, want_rc=0):
    rc, out, err, _ = run(*args, '--json', env=env)
    assert rc == want_rc, 'exit %d (want %d): %s %s' % (rc, want_rc, out, err)
    return json.loads(out), err


class Machine:
    """One machine: a shard and a copy of the sources in its own directory."""

    def __init__(self, tmp_path, name, mtime):
        self.dir = tmp_path / name / 'srv' / ('app-' + name)
        self.shard = tmp_path / name / 'scripts.shard'
        for rel, data in SOURCES.items():
            p = self.dir / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            os.utime(p, (mtime, mtime))

    def path(self, rel):
        return str(self.dir / rel)

    def sc(self, *args, **kw):
        return run('--shard', self.shard, *args, **kw)


def fill(tmp_path, m):
    """Machine m compiles its sources: `scriptcache put --tag` of each."""
    for rel, data in SOURCES.items():
        blob = tmp_path / ('blob-' + rel.replace('/', '_'))
        blob.write_bytes(compiled(data))
        rc, out, err, _ = m.sc('put', '--tag', TAG, m.path(rel), blob)
        assert rc == 0, err


def two_machines(tmp_path):
    return Machine(tmp_path, 'm1', 1_600_000_000), Machine(tmp_path, 'm2', 1_700_000_000)


def remote_env(srv, **extra):
    e = {'SCRIPTCACHE_REMOTE': srv.url, 'SCRIPTCACHE_REMOTE_TIMEOUT_MS': '5000'}
    e.update(extra)
    return e


def test_push_then_pull_on_another_machine(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    # An entry without a source cannot be keyed portably: skipped, counted.
    (tmp_path / 'nosrc').write_bytes(b'x')
    assert m1.sc('put', '--no-source', '--key', 'mod:x', tmp_path / 'nosrc')[0] == 0

    with nginx(tmp_path) as srv:
        env = remote_env(srv)
        j, _ = as_json('--shard', m1.shard, 'push', env=env)
        assert j['entries'] == 3 and j['stored'] == 3 and j['skipped_no_source_hash'] == 1
        assert j['blobs_uploaded'] == 3 and j['records_uploaded'] == 3
        assert j['errors'] == 0 and j['failed'] == 0 and j['bytes_up'] > 0
        assert j['remote'] == srv.url and j['mode'] == 'rw'

        # The server holds the Bazel layout: /cas/<sha256 of the bytes>,
        # /ac/<action key> holding a version 1 record naming the blob.
        files = srv.files()
        cas = {p[4:] for p in files if p.startswith('cas/')}
        want = {hashlib.sha256(compiled(d)).hexdigest() for d in SOURCES.values()}
        assert cas == want
        assert all(files['cas/' + h] == h for h in cas), 'CAS object named by its SHA-256'
        acs = sorted(p for p in files if p.startswith('ac/'))
        assert len(acs) == 3
        for p in acs:
            text = open(os.path.join(srv.root, p)).read()
            m = re.fullmatch(r'scriptcache-record 1\nkey ([0-9a-f]{64})\n'
                             r'blob-sha256 ([0-9a-f]{64})\nblob-size (\d+)\n', text)
            assert m, text
            assert m.group(1) == p[3:] and m.group(2) in want
        # No path and no mtime in what the server holds.
        for p in acs:
            assert str(m1.dir) not in open(os.path.join(srv.root, p)).read()

        # A second push sends no blob again (HEAD first) and no record.
        before = len(srv.log_lines())
        j, _ = as_json('--shard', m1.shard, 'push', env=env)
        assert j['stored'] == 3 and j['blobs_uploaded'] == 0 and j['blobs_present'] == 3
        assert j['records_uploaded'] == 0 and j['records_present'] == 3
        assert not [l for l in srv.log_lines()[before:] if '"PUT ' in l]

        # Machine 2: nothing locally, then a pull of its directory.
        assert m2.sc('get', m2.path('main.lua'))[0] == 1
        j, err = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=env)
        assert j['files'] == 3 and j['fetched'] == 3 and j['hits'] == 3, (j, err)
        assert j['misses'] == 0 and j['integrity_failures'] == 0 and j['errors'] == 0
        assert j['bytes_down'] >= sum(len(compiled(d)) for d in SOURCES.values())

        # ... and hits locally, as its interpreter would, with no server.
        srv.kill()
        for rel, data in SOURCES.items():
            rc, _, err, _ = m2.sc('get', m2.path(rel))
            assert rc == 0, err
            r = subprocess.run([CLI, '--shard', m2.shard, 'get', m2.path(rel)],
                               capture_output=True)
            assert r.stdout == compiled(data)
        rc, out, err, _ = m2.sc('ls', '--json')
        entries = json.loads(out)
        assert sorted(e['key'] for e in entries) == sorted(m2.path(r) for r in SOURCES)
        assert all(e['status'] == 'fresh' and e['tag'] == TAG for e in entries)
        assert all(e['source_mtime'] == 1_700_000_000 for e in entries), 'machine 2 stat'

        # Pulling again needs no server at all: everything is local.
        j, _ = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=env)
        assert j['already_local'] == 3 and j['requests'] == 0


def test_pull_misses_and_human_summary(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with nginx(tmp_path) as srv:
        env = remote_env(srv)
        ok('--shard', m1.shard, 'push', env=env)
        # Another tag, another source: misses, not errors (exit 0).
        j, _ = as_json('--shard', m2.shard, 'pull', '--tag', 'othervm 2', m2.dir, env=env)
        assert j['not_on_remote'] == 3 and j['misses'] == 3 and j['fetched'] == 0
        (m2.dir / 'main.lua').write_bytes(SOURCES['main.lua'] + b'-- edited\n')
        out = ok('--shard', m2.shard, 'pull', '--tag', TAG, m2.path('main.lua'),
                 m2.path('util.lua'), env=env)
        assert re.search(r'pulled from http://127\.0\.0\.1:\d+: 2 files, 1 fetched, '
                         r'0 already local, 1 not on the remote', out), out
        assert re.search(r'remote: 1 hits, 1 misses, 0 errors, 0 integrity failures', out), out
        assert m2.sc('get', m2.path('main.lua'))[0] == 1
        assert m2.sc('get', m2.path('util.lua'))[0] == 0
        # Two copies of a source the remote lacks: one request, the second
        # answered by the negative cache.  The shard, inside the directory
        # pulled, is not taken for a source.
        d = tmp_path / 'copies'
        d.mkdir()
        for n in ('one.lua', 'two.lua'):
            (d / n).write_bytes(b'print("vendored twice")\n')
        j, _ = as_json('--shard', d / 'copies.shard', 'pull', '--tag', TAG, d, env=env)
        assert j['files'] == 2 and j['misses'] == 1 and j['negative_hits'] == 1, j
        assert j['requests'] == 1 and j['not_on_remote'] == 2, j
        # --tag is required; a missing file is reported, the rest goes on.
        rc, _, err, _ = m2.sc('pull', m2.dir, env=env)
        assert rc == 2 and '--tag' in err
        rc, out, err, _ = m2.sc('pull', '--tag', TAG, tmp_path / 'nope.lua', m2.dir, env=env)
        assert rc == 2 and 'nope.lua' in err and '3 files' in out, (out, err)


def test_tampered_blob_is_refused(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with nginx(tmp_path) as srv:
        env = remote_env(srv)
        ok('--shard', m1.shard, 'push', env=env)
        # Overwrite one blob in the server's directory, same size.
        target = hashlib.sha256(compiled(SOURCES['util.lua'])).hexdigest()
        p = os.path.join(srv.root, 'cas', target)
        data = bytearray(open(p, 'rb').read())
        data[10] ^= 0xff
        open(p, 'wb').write(bytes(data))
        # And make another one longer than its record says.
        target2 = hashlib.sha256(compiled(SOURCES['main.lua'])).hexdigest()
        with open(os.path.join(srv.root, 'cas', target2), 'ab') as f:
            f.write(b'trailing junk')

        j, err = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=env, want_rc=1)
        assert j['integrity_failures'] == 2 and j['hits'] == 1 and j['fetched'] == 1, (j, err)
        assert 'SHA-256 mismatch' in err and 'refused' in err and target in err, err
        assert 'more bytes than the record' in err, err
        # Nothing of the refused blobs reached the shard.
        assert m2.sc('get', m2.path('util.lua'))[0] == 1
        assert m2.sc('get', m2.path('main.lua'))[0] == 1
        assert m2.sc('get', m2.path('lib/deep/json.lua'))[0] == 0
        rc, out, err, _ = m2.sc('pull', '--tag', TAG, m2.dir, env=env)
        assert rc == 1 and '2 refused (integrity)' in out and '2 integrity failures' in out


def test_server_gone_fails_fast(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    many = tmp_path / 'many'
    many.mkdir()
    for i in range(200):
        (many / ('s%03d.lua' % i)).write_bytes(b'return %d\n' % i)
    with nginx(tmp_path) as srv:
        env = remote_env(srv, SCRIPTCACHE_REMOTE_TIMEOUT_MS='400')
        ok('--shard', m1.shard, 'push', env=env)

        # A server that accepts connections but never answers (stopped):
        # the first request times out and the run stops there, it does not
        # wait 400 ms for each of the 200 files.
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            rc, out, err, secs = m2.sc('pull', '--json', '--tag', TAG, many, env=env)
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        assert rc == 2, (out, err)
        assert 'did not answer within the timeout' in err and 'stopped' in err, err
        j = json.loads(out)
        assert j['stopped'] and j['requests'] == 1 and j['errors'] == 1, j
        assert 0.3 < secs < 5, 'bounded by the 400 ms timeout, took %.2f s' % secs

        # The server killed: connection refused, at once.
        srv.kill()
        rc, out, err, secs = m2.sc('pull', '--tag', TAG, m2.dir, env=env)
        assert rc == 2 and 'cannot connect' in err and 'stopped' in out, (out, err)
        assert secs < 3, 'took %.2f s' % secs
        rc, out, err, secs = m1.sc('push', env=env)
        assert rc == 2 and 'cannot connect' in err and secs < 3, (out, err)


def test_read_only_and_off_send_nothing(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with nginx(tmp_path) as srv:
        rw = remote_env(srv)
        ro = remote_env(srv, SCRIPTCACHE_REMOTE_MODE='ro')
        off = remote_env(srv, SCRIPTCACHE_REMOTE_MODE='off')
        # Read-only: push refuses before any request, pull only reads.
        rc, out, err, _ = m1.sc('push', env=ro)
        assert rc == 2 and 'read-only' in err
        assert srv.files() == {} and srv.log_lines() == []
        ok('--shard', m1.shard, 'push', env=rw)
        snapshot, nlog = srv.files(), len(srv.log_lines())
        j, _ = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=ro)
        assert j['mode'] == 'ro' and j['fetched'] == 3
        (tmp_path / 'other.lua').write_bytes(b'print("not on the server")\n')
        j, _ = as_json('--shard', m2.shard, 'pull', '--tag', TAG, tmp_path / 'other.lua', env=ro)
        assert j['not_on_remote'] == 1
        rc, _, err, _ = m1.sc('push', env=ro)
        assert rc == 2
        new = srv.log_lines()[nlog:]
        assert new and all('"GET ' in l for l in new), new
        assert srv.files() == snapshot, 'read-only mode changed the server'
        # Off: nothing at all, exit 0 with a note.
        for args in (('push',), ('pull', '--tag', TAG, m2.dir)):
            rc, out, err, _ = m1.sc(*args, env=off)
            assert rc == 0 and 'off' in err, err
        j, _ = as_json('--shard', m1.shard, 'push', env=off)
        assert j == {'remote': None, 'mode': 'off'}
        assert len(srv.log_lines()) == nlog + len(new)
        # No remote configured at all.
        rc, _, err, _ = m1.sc('push')
        assert rc == 2 and 'SCRIPTCACHE_REMOTE' in err


def htpasswd_line(user, password):
    h = subprocess.run(['openssl', 'passwd', '-apr1', '-stdin'], input=password.encode(),
                       capture_output=True, check=True).stdout.decode().strip()
    return '%s:%s\n' % (user, h)


def test_basic_auth_credentials_never_shown(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    outputs = []

    def sc(m, *args, env):
        rc, out, err, secs = m.sc(*args, env=env)
        outputs.append(out + err)
        return rc, out, err

    with nginx(tmp_path, htpasswd=htpasswd_line('fleet', PASSWORD)) as srv:
        env = remote_env(srv)
        rc, out, err = sc(m1, 'push', env=env)
        assert rc == 2 and 'refused the credentials' in err and 'HTTP 401' in err, err

        auth = tmp_path / 'auth'
        auth.write_text('fleet:%s\n' % PASSWORD)
        auth.chmod(0o644)
        with_file = remote_env(srv, SCRIPTCACHE_REMOTE_AUTH_FILE=str(auth))
        rc, out, err = sc(m1, 'push', env=with_file)
        assert rc == 2 and 'chmod 600' in err, err
        auth.chmod(0o600)
        rc, out, err = sc(m1, 'push', env=with_file)
        assert rc == 0 and '3 stored' in out, (out, err)

        # netrc style, for the server's host.
        netrc = tmp_path / 'netrc'
        netrc.write_text('machine elsewhere login x password y\n'
                         'machine 127.0.0.1 login fleet password %s\n' % PASSWORD)
        netrc.chmod(0o600)
        rc, out, err = sc(m2, 'pull', '--tag', TAG, m2.dir,
                          env=remote_env(srv, SCRIPTCACHE_REMOTE_AUTH_FILE=str(netrc)))
        assert rc == 0 and '3 fetched' in out, (out, err)

        # From the environment; a wrong password is a clear refusal.
        rc, out, err = sc(m2, 'pull', '--tag', TAG, m2.dir,
                          env=remote_env(srv, SCRIPTCACHE_REMOTE_AUTH='fleet:' + PASSWORD))
        assert rc == 0, err
        rc, out, err = sc(m1, 'push', env=remote_env(srv, SCRIPTCACHE_REMOTE_AUTH='fleet:wrong'))
        assert rc == 2 and 'refused the credentials' in err

        # In the URL: refused before any request, and not repeated.
        nlog = len(srv.log_lines())
        bad = 'http://fleet:%s@127.0.0.1:%d' % (PASSWORD, srv.port)
        rc, out, err = sc(m1, 'push', '--remote', bad, env={})
        assert rc == 2 and 'user:password@' in err, err
        rc, out, err = sc(m1, 'push', env={'SCRIPTCACHE_REMOTE': bad})
        assert rc == 2
        assert len(srv.log_lines()) == nlog

        # While a pull runs (against the stopped server, so it waits), the
        # password is in no process's command line.
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            p = subprocess.Popen([CLI, '--shard', m2.shard, 'pull', '--tag', 'x', m2.dir],
                                 env={'SCRIPTCACHE_REMOTE': srv.url,
                                      'SCRIPTCACHE_REMOTE_TIMEOUT_MS': '1500',
                                      'SCRIPTCACHE_REMOTE_AUTH_FILE': str(auth)},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(0.3)
            for pid in os.listdir('/proc'):
                if pid.isdigit():
                    try:
                        with open('/proc/%s/cmdline' % pid, 'rb') as f:
                            assert PASSWORD.encode() not in f.read(), 'password in argv of %s' % pid
                    except OSError:
                        pass
            out, err = p.communicate(timeout=30)
            outputs.append((out + err).decode(errors='replace'))
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)

        logs = ''
        for name in ('access.log', 'error.log'):
            logs += (tmp_path / 'nginx' / name).read_text(errors='replace')
        assert 'fleet' in logs  # the log does record the user...
        for text in outputs + [logs]:
            assert PASSWORD not in text, text  # ... never the password
        shard_bytes = open(m2.shard, 'rb').read() + open(m1.shard, 'rb').read()
        assert PASSWORD.encode() not in shard_bytes


# ---- verify --remote ----

def verify_json(m, *args, env, want_rc=0):
    j, err = as_json('--shard', m.shard, 'verify', *args, env=env, want_rc=want_rc)
    return j, err


def test_verify_remote_checks_what_it_downloads(tmp_path):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    (tmp_path / 'nosrc').write_bytes(b'x')
    assert m1.sc('put', '--no-source', '--key', 'mod:x', tmp_path / 'nosrc')[0] == 0
    # Without --remote, verify is what it was: the local shard alone.
    j, _ = verify_json(m1, env={})
    assert set(j) == {'path', 'ok', 'records_checked', 'problems', 'set_aside'} and j['ok']

    with nginx(tmp_path) as srv:
        env = remote_env(srv)
        # Nothing pushed yet: entries not on the remote are counted, no failure.
        j, _ = verify_json(m1, '--remote', env=env)
        r = j['remote']
        assert j['ok'] and r['ok'] and r['entries'] == 3 and r['not_on_remote'] == 3, j
        assert r['skipped_no_source_hash'] == 1 and r['problems'] == [] and r['requests'] == 3

        ok('--shard', m1.shard, 'push', env=env)
        # A clean push verifies clean: every record and blob fetched, verified
        # and the same bytes as the local entry's.  --remote URL, --remote=URL
        # and $SCRIPTCACHE_REMOTE alike.
        for args, e in ((('--remote',), env), (('--remote', srv.url), {}),
                        (('--remote=' + srv.url,), {})):
            j, _ = verify_json(m1, *args, env=e)
            r = j['remote']
            assert r['ok'] and r['same'] == 3 and r['remote'] == srv.url, j
            assert r['differs'] == r['not_on_remote'] == r['blob_missing'] == 0, j
            assert r['integrity_failures'] == r['bad_records'] == r['failed'] == 0, j
            assert r['requests'] == 6 and r['bytes_down'] >= sum(
                len(compiled(d)) for d in SOURCES.values()), j
        out = ok('--shard', m1.shard, 'verify', '--remote', env=env)
        assert re.search(r'^remote http://127\.0\.0\.1:\d+: ok, 3 entries with a source hash: '
                         r'3 same, 0 differ, 0 not on the remote, 0 blob missing, '
                         r'0 integrity failures, 0 bad records, 0 failed$', out, re.M), out
        assert ': ok, ' in out.splitlines()[0], 'the local report comes first'

        # Machine 2 compiled util.lua into other bytes (same source, same
        # fingerprint): valid on both sides, reported, not a failure.  Its
        # extra source is not on the remote: counted only.
        blob = tmp_path / 'other-compile'
        blob.write_bytes(compiled(SOURCES['util.lua']) + b'\x00nondeterministic')
        assert m2.sc('put', '--tag', TAG, m2.path('util.lua'), blob)[0] == 0
        (m2.dir / 'extra.lua').write_bytes(b'print("only on machine 2")\n')
        assert m2.sc('put', '--tag', TAG, m2.path('extra.lua'), blob)[0] == 0
        j, _ = verify_json(m2, '--remote', env=env)
        r = j['remote']
        assert r['ok'] and r['same'] == 0 and r['differs'] == 1 and r['not_on_remote'] == 1, j
        assert [(p['key'], p['problem']) for p in r['problems']] == \
            [(m2.path('util.lua'), 'differs')], r
        assert 'not deterministic' in r['problems'][0]['message']

        # A blob deleted on the server (a prune): the record names a blob the
        # server lacks, reported with the entry, a miss for pull, no failure.
        deleted = hashlib.sha256(compiled(SOURCES['main.lua'])).hexdigest()
        os.unlink(os.path.join(srv.root, 'cas', deleted))
        rc, out, err, _ = m1.sc('verify', '--remote', env=env)
        assert rc == 0, out + err
        line = [l for l in out.splitlines() if 'blob-missing' in l]
        assert len(line) == 1 and m1.path('main.lua') in line[0] and deleted in line[0], out
        assert '2 same' in out and '1 blob missing' in out, out

        # A blob tampered with on the server: an integrity failure, exit 1
        # as for a corrupt local entry, the entry and the object named.
        tampered = hashlib.sha256(compiled(SOURCES['util.lua'])).hexdigest()
        p = os.path.join(srv.root, 'cas', tampered)
        data = bytearray(open(p, 'rb').read())
        data[7] ^= 0x01
        open(p, 'wb').write(bytes(data))
        rc, out, err, _ = m1.sc('verify', '--remote', env=env)
        assert rc == 1, (out, err)
        line = [l for l in out.splitlines() if ': integrity: ' in l]
        assert len(line) == 1 and m1.path('util.lua') in line[0], out
        assert 'SHA-256 mismatch' in line[0] and tampered in line[0], out
        assert 'DAMAGED' in out and '1 integrity failure,' in out, out
        j, _ = verify_json(m1, '--remote', env=env, want_rc=1)
        assert j['ok'] and not j['remote']['ok'], 'the local shard is fine, the remote is not'
        assert j['remote']['integrity_failures'] == 1 and j['remote']['blob_missing'] == 1, j
        assert j['remote']['same'] == 1
        # Nothing of what verify downloaded reached the shard.
        r = subprocess.run([CLI, '--shard', m1.shard, 'get', m1.path('util.lua')],
                           capture_output=True)
        assert r.returncode == 0 and r.stdout == compiled(SOURCES['util.lua'])

        # A record that is not a scriptcache record: exit 1 too.
        ac = [n for n in os.listdir(os.path.join(srv.root, 'ac'))]
        victim = None
        for n in ac:
            text = open(os.path.join(srv.root, 'ac', n)).read()
            if hashlib.sha256(compiled(SOURCES['lib/deep/json.lua'])).hexdigest() in text:
                victim = n
        assert victim
        with open(os.path.join(srv.root, 'ac', victim), 'w') as f:
            f.write('<html>cache error page</html>\n')
        j, _ = verify_json(m1, '--remote', env=env, want_rc=1)
        probs = {p['key']: p['problem'] for p in j['remote']['problems']}
        assert probs == {m1.path('main.lua'): 'blob-missing', m1.path('util.lua'): 'integrity',
                         m1.path('lib/deep/json.lua'): 'bad-record'}, probs
        assert j['remote']['bad_records'] == 1

        # For pull, the pruned blob is a miss, not an error nor a refusal.
        j, _ = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.path('main.lua'), env=env)
        assert j['not_on_remote'] == 1 and j['integrity_failures'] == 0 and j['errors'] == 0, j

        # The server killed: the run stops at the first failure, exit 2.
        srv.kill()
        rc, out, err, secs = m1.sc('verify', '--remote', env=env)
        assert rc == 2 and 'cannot connect' in out + err and 'stopped' in err, (out, err)
        assert 'INCOMPLETE' in out and secs < 5, (out, err, secs)


def test_verify_remote_modes(tmp_path):
    m1, _ = two_machines(tmp_path)
    fill(tmp_path, m1)
    with nginx(tmp_path) as srv:
        ok('--shard', m1.shard, 'push', env=remote_env(srv))
        snapshot, nlog = srv.files(), len(srv.log_lines())
        # Read-only: GET (and HEAD) only, the server unchanged.
        j, _ = verify_json(m1, '--remote', env=remote_env(srv, SCRIPTCACHE_REMOTE_MODE='ro'))
        assert j['remote']['mode'] == 'ro' and j['remote']['same'] == 3, j
        new = srv.log_lines()[nlog:]
        assert len(new) == 6, new
        assert all(re.search(r'"(GET|HEAD) /(ac|cas)/[0-9a-f]{64} HTTP', l) for l in new), new
        assert srv.files() == snapshot
        # rw too: verify never writes.
        nlog = len(srv.log_lines())
        verify_json(m1, '--remote', env=remote_env(srv))
        assert not [l for l in srv.log_lines()[nlog:] if '"GET ' not in l]

        # Off: said on stderr, the local check alone, exit 0.
        off = remote_env(srv, SCRIPTCACHE_REMOTE_MODE='off')
        nlog = len(srv.log_lines())
        rc, out, err, _ = m1.sc('verify', '--remote', env=off)
        assert rc == 0 and 'remote is off' in err and 'not checked' in err, err
        assert ': ok, ' in out and 'remote http' not in out, out
        j, _ = verify_json(m1, '--remote', env=off)
        assert j['ok'] and j['remote'] == {'remote': None, 'mode': 'off'}, j
        assert len(srv.log_lines()) == nlog

    # No remote configured, or a bad one: exit 2 before any check.
    rc, out, err, _ = m1.sc('verify', '--remote')
    assert rc == 2 and 'SCRIPTCACHE_REMOTE' in err and out == '', (out, err)
    rc, out, err, _ = m1.sc('verify', '--remote', 'ftp://127.0.0.1/x')
    assert rc == 2 and out == '', (out, err)
    # An option after --remote is not taken for its URL.
    rc, out, err, _ = m1.sc('verify', '--remote', '--json',
                            env={'SCRIPTCACHE_REMOTE_MODE': 'off'})
    assert rc == 0 and json.loads(out)['remote'] == {'remote': None, 'mode': 'off'}, (out, err)


# ---- TLS ----

def openssl(*args, cwd):
    r = subprocess.run(['openssl', *args], cwd=cwd, capture_output=True)
    assert r.returncode == 0, 'openssl %s: %s' % (' '.join(args), r.stderr.decode(errors='replace'))


def make_certs(d):
    """A private CA and, signed by it, a certificate for 127.0.0.1 and
    localhost and one for another host name: {name: path}."""
    d.mkdir()
    ec = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes')
    openssl('req', '-x509', *ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
            '-subj', '/CN=scriptcache test CA',
            '-addext', 'basicConstraints=critical,CA:TRUE',
            '-addext', 'keyUsage=critical,keyCertSign,cRLSign', cwd=d)
    out = {'ca': d / 'ca.pem'}
    for name, san in (('server', 'IP:127.0.0.1,DNS:localhost'),
                      ('elsewhere', 'DNS:cache.elsewhere.example')):
        (d / (name + '.ext')).write_text(
            'subjectAltName=%s\nbasicConstraints=CA:FALSE\n'
            'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' % san)
        openssl('req', '-new', *ec, '-keyout', name + '.key', '-out', name + '.csr',
                '-subj', '/CN=' + name, cwd=d)
        openssl('x509', '-req', '-in', name + '.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
                '-CAcreateserial', '-days', '2', '-extfile', name + '.ext',
                '-out', name + '.pem', cwd=d)
        out[name] = (d / (name + '.pem'), d / (name + '.key'))
    return out


def test_tls_with_a_private_ca(tmp_path):
    certs = make_certs(tmp_path / 'pki')
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with nginx(tmp_path, htpasswd=htpasswd_line('fleet', PASSWORD), tls=certs['server']) as srv:
        assert srv.url.startswith('https://127.0.0.1:')
        ca = {'SCRIPTCACHE_REMOTE_CA_FILE': str(certs['ca']),
              'SCRIPTCACHE_REMOTE_AUTH': 'fleet:' + PASSWORD}
        # Without the CA file, the system store does not know the private
        # CA: a TLS failure, exit 2, before any request reached nginx.
        rc, out, err, _ = m1.sc('push', env=remote_env(srv, SCRIPTCACHE_REMOTE_AUTH='fleet:x'))
        assert rc == 2 and 'TLS failure with the remote' in err and 'stopped' in err, err
        rc, out, err, _ = m2.sc('pull', '--tag', TAG, m2.dir, env=remote_env(srv))
        assert rc == 2 and 'TLS failure with the remote' in err, err
        assert srv.log_lines() == []

        # With it: push, pull and verify --remote, basic auth over TLS.
        j, _ = as_json('--shard', m1.shard, 'push', env=remote_env(srv, **ca))
        assert j['stored'] == 3 and j['blobs_uploaded'] == 3 and j['remote'] == srv.url, j
        j, _ = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=remote_env(srv, **ca))
        assert j['fetched'] == 3 and j['integrity_failures'] == 0, j
        j, _ = as_json('--shard', m1.shard, 'verify', '--remote', env=remote_env(srv, **ca))
        assert j['remote']['same'] == 3, j
        # localhost: the certificate's other name.
        local = 'https://localhost:%d' % srv.port
        j, _ = as_json('--shard', m1.shard, 'push', '--remote', local, env=remote_env(srv, **ca))
        assert j['stored'] == 3 and j['blobs_present'] == 3, j
        lines = srv.log_lines()
        assert lines and all('fleet' in l for l in lines), 'every request authenticated'
        assert all(PASSWORD not in l for l in lines)

    # A certificate of the same CA for another host name: refused.
    with nginx(tmp_path / 'other', tls=certs['elsewhere']) as srv:
        rc, out, err, _ = m1.sc('push', env=remote_env(srv, **ca))
        assert rc == 2 and 'TLS failure with the remote' in err, err
        rc, out, err, _ = m1.sc('verify', '--remote', env=remote_env(srv, **ca))
        assert rc == 2 and 'TLS failure with the remote' in out + err, (out, err)
        assert srv.log_lines() == []
        # A CA file that does not exist is a TLS failure too, never a fallback.
        rc, out, err, _ = m1.sc('push', env=remote_env(
            srv, SCRIPTCACHE_REMOTE_CA_FILE=str(tmp_path / 'nope.pem')))
        assert rc == 2 and 'TLS failure with the remote' in err, err
