#!/usr/bin/python3
"""remote_s3_bench.py - what SigV4 signing costs the CLI's push and pull.

usage: /usr/bin/python3 bench/remote_s3_bench.py [BUILD_DIR] [ENTRIES] [ROUNDS]

Needs nginx (nginx-light), node and npm (s3rver is installed as the tests
install it, into BUILD_DIR/tests/remote/s3rver).  Machine 1 puts ENTRIES
sources (default 200, 4 KiB compiled blobs) and pushes them; machine 2 pulls
them.  Three servers on 127.0.0.1, each started anew for every round:

  nginx            plain HTTP (the WebDAV server of tests/remote/test_remote.py)
  nginx + SigV4    the same nginx, the client in S3 mode: every request
                   signed (nginx ignores the signature), so the difference
                   with the row above is the client's signing alone
  s3rver + SigV4   the S3 server of tests/remote/test_s3.py, which verifies
                   every signature (node.js: its own cost dominates)

Prints the median over ROUNDS (default 5) of the whole run (elapsed_ms of
--json) and of the time per request (request_ms / requests), for push
(HEAD, PUT, GET, PUT per entry) and pull (GET, GET per entry).
"""
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, '..', 'build'))
ENTRIES = int(sys.argv[2]) if len(sys.argv) > 2 else 200
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
os.environ['SCRIPTCACHE_CLI'] = os.path.join(BUILD, 'cli', 'scriptcache')
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'remote'))

import test_remote as tr  # noqa: E402
import test_s3 as ts  # noqa: E402

TAG = 'bench 1'


def install_s3rver():
    dest = os.path.join(BUILD, 'tests', 'remote', 's3rver')
    subprocess.run(['bash', os.path.join(ts.S3DIR, 'install.sh'), dest], check=True)
    return os.path.join(dest, 'node_modules')


def machine(tmp, name):
    d = tmp / name / 'src'
    d.mkdir(parents=True)
    return d, tmp / name / 'shard'


def fill(tmp, src, shard):
    blob = tmp / 'blob'
    for i in range(ENTRIES):
        p = src / ('m%04d.lua' % i)
        p.write_bytes(b'return %d\n' % i)
        blob.write_bytes(os.urandom(4096))
        rc, _, err, _ = tr.run('--shard', shard, 'put', '--tag', TAG, p, blob)
        assert rc == 0, err


def one_round(tmp, kind, modules):
    src1, shard1 = machine(tmp, 'm1')
    src2, shard2 = machine(tmp, 'm2')
    fill(tmp, src1, shard1)
    for p in src1.iterdir():
        (src2 / p.name).write_bytes(p.read_bytes())
    if kind == 's3rver':
        cm = ts.s3rver(tmp, modules)
    else:
        cm = tr.nginx(tmp)
    with cm as srv:
        if kind == 'nginx':
            env = {'SCRIPTCACHE_REMOTE': srv.url}
        else:
            url = srv.url if kind == 's3rver' else srv.url + '/bucket/prefix'
            env = {'SCRIPTCACHE_REMOTE': url, 'SCRIPTCACHE_REMOTE_S3': 'us-east-1',
                   'SCRIPTCACHE_REMOTE_AUTH': '%s:%s' % (ts.ACCESS, ts.SECRET)}
        env['SCRIPTCACHE_REMOTE_TIMEOUT_MS'] = '10000'
        push, _ = tr.as_json('--shard', shard1, 'push', env=env)
        assert push['stored'] == ENTRIES and push['errors'] == 0, push
        pull, _ = tr.as_json('--shard', shard2, 'pull', '--tag', TAG, src2, env=env)
        assert pull['fetched'] == ENTRIES and pull['errors'] == 0, pull
    return push, pull


def main():
    modules = install_s3rver()
    rows = []
    for kind, label in (('nginx', 'nginx'), ('nginx-sigv4', 'nginx + SigV4'),
                        ('s3rver', 's3rver + SigV4')):
        res = {'push': [], 'pull': [], 'push_req': [], 'pull_req': []}
        for _ in range(ROUNDS):
            with tempfile.TemporaryDirectory(prefix='sc-s3bench.') as t:
                push, pull = one_round(pathlib.Path(t), kind, modules)
            res['push'].append(push['elapsed_ms'])
            res['pull'].append(pull['elapsed_ms'])
            res['push_req'].append(push['request_ms'] / push['requests'])
            res['pull_req'].append(pull['request_ms'] / pull['requests'])
        rows.append((label, *(statistics.median(res[k])
                              for k in ('push', 'push_req', 'pull', 'pull_req'))))
    print('%d entries of 4 KiB, median of %d rounds' % (ENTRIES, ROUNDS))
    print('| server | push [ms] | per request [ms] | pull [ms] | per request [ms] |')
    print('|---|---:|---:|---:|---:|')
    for label, a, b, c, d in rows:
        print('| %s | %.0f | %.3f | %.0f | %.3f |' % (label, a, b, c, d))


if __name__ == '__main__':
    main()
