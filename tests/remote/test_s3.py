"""scriptcache push / pull against an S3-compatible object store (docs/REMOTE.md,
"S3-compatible object stores").

The server is s3rver (npm @20minutes/s3rver, pinned by
tests/remote/s3/package-lock.json and installed by tests/remote/s3/install.sh
into the build directory on first use), a real S3 implementation that checks
every request's AWS Signature Version 4 against its key pair: a request
signed with another secret is refused, so these tests can fail.  Each test
starts its own server on 127.0.0.1 (a port the kernel picks, the data in a
temporary directory) and kills it in a finally block.  A machine without
node and npm fails these tests, never skips them: scripts/deps installs
Debian's nodejs and npm.
"""
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import test_remote as base
from test_remote import SOURCES, TAG, compiled, two_machines, fill, as_json

HERE = os.path.dirname(os.path.abspath(__file__))
S3DIR = os.path.join(HERE, 's3')
ACCESS = 'SCTESTAK7Q'
SECRET = 'S3-secret-4b1d-not-in-any-output'
BUCKET = 'scriptcache'
PREFIX = 'fleet/scripts'


@pytest.fixture(scope='session')
def s3rver_modules():
    """node_modules holding s3rver, installed once from the lock file."""
    dest = os.environ.get('S3RVER_DIR')
    if not dest:
        pytest.fail('S3RVER_DIR must name where tests/remote/s3/install.sh installs s3rver')
    for tool in ('node', 'npm'):
        if not shutil.which(tool):
            pytest.fail('%s not found: scripts/deps installs nodejs and npm; the S3 tests '
                        'need a real server and do not skip' % tool)
    r = subprocess.run(['bash', os.path.join(S3DIR, 'install.sh'), dest],
                       capture_output=True, timeout=600)
    if r.returncode != 0:
        pytest.fail('installing s3rver failed: %s' % r.stderr.decode(errors='replace')[-3000:])
    return os.path.join(dest, 'node_modules')


class S3Server:
    def __init__(self, proc, port, data, log):
        self.proc, self.port, self.data, self.log = proc, port, data, log
        self.endpoint = 'http://127.0.0.1:%d' % port
        self.url = '%s/%s/%s' % (self.endpoint, BUCKET, PREFIX)

    def objects(self):
        """{key below the prefix: sha256 of the stored bytes}."""
        out = {}
        root = os.path.join(self.data, BUCKET, PREFIX)
        for d, _, names in os.walk(root):
            for n in names:
                if n.endswith('._S3rver_object'):
                    p = os.path.join(d, n)
                    key = os.path.relpath(p, root)[:-len('._S3rver_object')]
                    with open(p, 'rb') as f:
                        out[key] = hashlib.sha256(f.read()).hexdigest()
        return out

    def object_path(self, key):
        return os.path.join(self.data, BUCKET, PREFIX, key + '._S3rver_object')

    def log_text(self):
        with open(self.log, encoding='utf-8', errors='replace') as f:
            return f.read()

    def requests(self):
        """[(method, path)] in the order the server received them."""
        return [tuple(l.split(' ')[1:3]) for l in self.log_text().splitlines()
                if l.startswith('request ')]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@contextlib.contextmanager
def s3rver(tmp_path, modules, deny_missing=False):
    """s3rver on 127.0.0.1 with one bucket and our key pair; killed on the way out."""
    data = tmp_path / 's3data'
    data.mkdir()
    log = tmp_path / 's3rver.log'
    env = dict(os.environ, NODE_PATH=modules, S3_TEST_ACCESS_KEY=ACCESS,
               S3_TEST_SECRET_KEY=SECRET, S3_TEST_DENY_MISSING='1' if deny_missing else '0')
    with open(log, 'wb') as out:
        proc = subprocess.Popen(['node', os.path.join(S3DIR, 'server.js'), str(data), BUCKET],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    srv = None
    try:
        deadline = time.monotonic() + 60  # node on a loaded machine
        port = None
        while time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r'^port (\d+)$', log.read_text(errors='replace'), re.M)
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.05)
        if port is None:
            pytest.fail('s3rver did not start: %s' % log.read_text(errors='replace')[-3000:])
        srv = S3Server(proc, port, str(data), str(log))
        yield srv
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # a test may have stopped it
            proc.kill()
        proc.wait()


def auth_file(tmp_path, secret=SECRET, name='s3auth'):
    p = tmp_path / name
    p.write_text('%s:%s\n' % (ACCESS, secret))
    p.chmod(0o600)
    return str(p)


def s3_env(srv, auth, **extra):
    e = {'SCRIPTCACHE_REMOTE': srv.url, 'SCRIPTCACHE_REMOTE_S3': 'us-east-1',
         'SCRIPTCACHE_REMOTE_AUTH_FILE': auth, 'SCRIPTCACHE_REMOTE_TIMEOUT_MS': '10000'}
    e.update(extra)
    return e


def test_s3_push_then_pull_on_another_machine(tmp_path, s3rver_modules):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with s3rver(tmp_path, s3rver_modules) as srv:
        env = s3_env(srv, auth_file(tmp_path))
        j, err = as_json('--shard', m1.shard, 'push', env=env)
        assert j['entries'] == 3 and j['stored'] == 3, (j, err)
        assert j['blobs_uploaded'] == 3 and j['records_uploaded'] == 3 and j['errors'] == 0
        assert j['remote'] == srv.url and j['mode'] == 'rw'

        # The bucket holds the Bazel layout below the prefix.
        objs = srv.objects()
        want = {hashlib.sha256(compiled(d)).hexdigest() for d in SOURCES.values()}
        cas = {k[4:] for k in objs if k.startswith('cas/')}
        assert cas == want and all(objs['cas/' + h] == h for h in cas), objs
        acs = [k for k in objs if k.startswith('ac/')]
        assert len(acs) == 3
        for k in acs:
            text = open(srv.object_path(k)).read()
            assert re.fullmatch(r'scriptcache-record 1\nkey %s\nblob-sha256 [0-9a-f]{64}\n'
                                r'blob-size \d+\n' % k[3:], text), text
        # Path style: /BUCKET/PREFIX/ac|cas/...
        reqs = srv.requests()
        assert reqs and all(p.startswith('/%s/%s/' % (BUCKET, PREFIX)) for _, p in reqs), reqs
        assert sorted({m for m, _ in reqs}) == ['GET', 'HEAD', 'PUT'], reqs

        # A second push uploads nothing: HEAD and GET only.
        n = len(srv.requests())
        j, _ = as_json('--shard', m1.shard, 'push', env=env)
        assert j['blobs_present'] == 3 and j['records_present'] == 3 and j['errors'] == 0
        assert {m for m, _ in srv.requests()[n:]} == {'HEAD', 'GET'}

        # Machine 2, sources in another directory: pull, then hits locally.
        assert m2.sc('get', m2.path('main.lua'))[0] == 1
        j, err = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=env)
        assert j['files'] == 3 and j['fetched'] == 3 and j['hits'] == 3, (j, err)
        assert j['errors'] == 0 and j['integrity_failures'] == 0
        srv.kill()
        for rel, data in SOURCES.items():
            r = subprocess.run([base.CLI, '--shard', m2.shard, 'get', m2.path(rel)],
                               capture_output=True)
            assert r.returncode == 0 and r.stdout == compiled(data), r.stderr


def test_s3_missing_key_404_and_403(tmp_path, s3rver_modules):
    """A missing key is 404 NoSuchKey, or 403 AccessDenied for a caller
    without ListBucket (AWS): both are misses; a push still uploads."""
    for deny in (False, True):
        d = tmp_path / ('deny' if deny else 'plain')
        d.mkdir()
        m1, m2 = two_machines(d)
        fill(d, m1)
        with s3rver(d, s3rver_modules, deny_missing=deny) as srv:
            env = s3_env(srv, auth_file(tmp_path))
            j, err = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=env)
            assert j['not_on_remote'] == 3 and j['misses'] == 3 and j['errors'] == 0, (deny, j, err)
            assert not j['stopped']
            # HEAD /cas/ answered 403 when denied: uploaded all the same.
            j, err = as_json('--shard', m1.shard, 'push', env=env)
            assert j['stored'] == 3 and j['blobs_uploaded'] == 3 and j['errors'] == 0, (deny, j, err)
            denied = [l for l in srv.log_text().splitlines() if l.startswith('denied ')]
            if deny:  # GET /ac/ on the first pull, HEAD /cas/ and GET /ac/ on the push
                assert len(denied) == 9 and {l.split()[1] for l in denied} == {'GET', 'HEAD'}, denied
            else:
                assert denied == []
            j, err = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=env)
            assert j['fetched'] == 3 and j['errors'] == 0, (deny, j, err)


def test_s3_wrong_secret_is_refused(tmp_path, s3rver_modules):
    """s3rver verifies the signature: a wrong secret or key stops the run."""
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with s3rver(tmp_path, s3rver_modules) as srv:
        bad = s3_env(srv, auth_file(tmp_path, secret=SECRET + 'x', name='bad'))
        j, err = as_json('--shard', m1.shard, 'push', env=bad, want_rc=2)
        assert j['stopped'] and j['errors'] == 1 and j['stored'] == 0, (j, err)
        assert 'HTTP 403 SignatureDoesNotMatch' in err and 'refused the credentials' in err, err
        assert srv.objects() == {}, 'nothing stored with a wrong signature'
        # HEAD (no body to tell) counts as absent, the PUT is refused: 2 requests.
        assert j['requests'] == 2 and [m for m, _ in srv.requests()] == ['HEAD', 'PUT']

        ok_env = s3_env(srv, auth_file(tmp_path))
        base.ok('--shard', m1.shard, 'push', env=ok_env)
        j, err = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=bad, want_rc=2)
        assert j['stopped'] and j['requests'] == 1 and j['errors'] == 1 and j['fetched'] == 0, j
        assert 'SignatureDoesNotMatch' in err
        # An unknown access key: another code, refused just the same.
        other = s3_env(srv, '', SCRIPTCACHE_REMOTE_AUTH='NOSUCHKEY:' + SECRET)
        del other['SCRIPTCACHE_REMOTE_AUTH_FILE']
        j, err = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=other, want_rc=2)
        assert j['stopped'] and 'InvalidAccessKeyId' in err, err
        assert m2.sc('get', m2.path('util.lua'))[0] == 1
        # The AWS variables, with a session token (signed with the rest).
        aws = s3_env(srv, '', AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET,
                     AWS_SESSION_TOKEN='IQoJb3JpZ2luX2VjEXAMPLE')
        del aws['SCRIPTCACHE_REMOTE_AUTH_FILE']
        j, err = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=aws)
        assert j['fetched'] == 3, (j, err)
        # No credentials at all: refused before any request.
        n = len(srv.requests())
        none = s3_env(srv, '')
        del none['SCRIPTCACHE_REMOTE_AUTH_FILE']
        rc, out, err, _ = m1.sc('push', env=none)
        assert rc == 2 and 'AWS_ACCESS_KEY_ID' in err and len(srv.requests()) == n


def test_s3_tampered_blob_is_refused(tmp_path, s3rver_modules):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with s3rver(tmp_path, s3rver_modules) as srv:
        env = s3_env(srv, auth_file(tmp_path))
        base.ok('--shard', m1.shard, 'push', env=env)
        target = hashlib.sha256(compiled(SOURCES['util.lua'])).hexdigest()
        p = srv.object_path('cas/' + target)
        data = bytearray(open(p, 'rb').read())
        data[10] ^= 0xff
        open(p, 'wb').write(bytes(data))
        j, err = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=env, want_rc=1)
        assert j['integrity_failures'] == 1 and j['fetched'] == 2, (j, err)
        assert 'SHA-256 mismatch' in err and target in err, err
        assert m2.sc('get', m2.path('util.lua'))[0] == 1
        assert m2.sc('get', m2.path('main.lua'))[0] == 0


def test_s3_read_only_sends_no_put(tmp_path, s3rver_modules):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    with s3rver(tmp_path, s3rver_modules) as srv:
        auth = auth_file(tmp_path)
        ro = s3_env(srv, auth, SCRIPTCACHE_REMOTE_MODE='ro')
        rc, out, err, _ = m1.sc('push', env=ro)
        assert rc == 2 and 'read-only' in err and srv.requests() == []
        base.ok('--shard', m1.shard, 'push', env=s3_env(srv, auth))
        snapshot, n = srv.objects(), len(srv.requests())
        j, _ = as_json('--shard', m2.shard, 'pull', '--tag', TAG, m2.dir, env=ro)
        assert j['mode'] == 'ro' and j['fetched'] == 3
        new = srv.requests()[n:]
        assert new and all(m == 'GET' for m, _ in new), new
        assert srv.objects() == snapshot


def test_s3_secret_never_shown(tmp_path, s3rver_modules):
    m1, m2 = two_machines(tmp_path)
    fill(tmp_path, m1)
    outputs = []
    with s3rver(tmp_path, s3rver_modules) as srv:
        auth = auth_file(tmp_path)
        for args in (('push',), ('push', '--json'), ('pull', '--tag', TAG, m2.dir),
                     ('pull', '--json', '--tag', TAG, m2.dir)):
            for env in (s3_env(srv, auth),
                        s3_env(srv, auth_file(tmp_path, SECRET + 'x', 'bad'))):
                rc, out, err, _ = base.run('--shard', m2.shard if 'pull' in args else m1.shard,
                                           *args, env=env)
                outputs.append(out + err)
        # While a pull waits on the stopped server, no command line holds the secret.
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            env = {'PATH': os.environ.get('PATH', '')}
            env.update(s3_env(srv, auth, SCRIPTCACHE_REMOTE_TIMEOUT_MS='1500'))
            p = subprocess.Popen([base.CLI, '--shard', tmp_path / 'm3.shard', 'pull', '--tag',
                                  TAG, m1.dir], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            time.sleep(0.3)
            seen = 0
            for pid in os.listdir('/proc'):
                if pid.isdigit():
                    try:
                        with open('/proc/%s/cmdline' % pid, 'rb') as f:
                            cmd = f.read()
                    except OSError:
                        continue
                    seen += base.CLI.encode() in cmd
                    assert SECRET.encode() not in cmd, 'secret in argv of %s' % pid
            assert seen >= 1, 'the CLI was running while argv was read'
            out, err = p.communicate(timeout=30)
            outputs.append((out + err).decode(errors='replace'))
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        assert any('SignatureDoesNotMatch' in o for o in outputs)
        for text in outputs + [srv.log_text()]:
            assert SECRET not in text, text
        for shard in (m1.shard, m2.shard):
            assert SECRET.encode() not in open(shard, 'rb').read()


def test_s3_large_blob_expect_continue(tmp_path, s3rver_modules):
    """A body above 1 MiB: libcurl sends Expect: 100-continue, which S3 mode
    cannot remove (libcurl 7.88 would sign the empty header); the upload and
    its x-amz-content-sha256 still verify."""
    src = tmp_path / 'big' / 'big.lua'
    src.parent.mkdir()
    src.write_bytes(b'return "big"\n')
    blob = tmp_path / 'big.blob'
    blob.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    shard1, shard2 = tmp_path / 'b1.shard', tmp_path / 'b2.shard'
    rc, _, err, _ = base.run('--shard', shard1, 'put', '--tag', TAG, src, blob)
    assert rc == 0, err
    with s3rver(tmp_path, s3rver_modules) as srv:
        env = s3_env(srv, auth_file(tmp_path))
        j, err = as_json('--shard', shard1, 'push', env=env)
        assert j['blobs_uploaded'] == 1 and j['bytes_up'] > 3 * 1024 * 1024, (j, err)
        want = hashlib.sha256(blob.read_bytes()).hexdigest()
        assert srv.objects()['cas/' + want] == want
        puts = [l for l in srv.log_text().splitlines() if l.startswith('request PUT ')]
        assert any(l.endswith('/cas/%s expect 100-continue' % want) for l in puts), puts
        j, err = as_json('--shard', shard2, 'pull', '--tag', TAG, src, env=env)
        assert j['fetched'] == 1 and j['integrity_failures'] == 0, (j, err)
        r = subprocess.run([base.CLI, '--shard', shard2, 'get', src], capture_output=True)
        assert r.returncode == 0 and r.stdout == blob.read_bytes()
