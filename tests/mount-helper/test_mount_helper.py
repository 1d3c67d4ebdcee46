"""mount.scriptcachefs: mount(8)'s calling convention, real mounts, errors.

Behaviour under test: man/mount.scriptcachefs.8 and docs/INSTALL.md.
"""
import errno
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import (FS, HELPER, NOBODY, cli, helper, in_namespace,
                      mount_options, mount_type, sbin_links, umount_busy_retry,
                      unmount,
                      wait_mounted)


def would_run(r):
    """The daemon command line the helper printed under -f -v."""
    m = re.search(r'^mount\.scriptcachefs: would run[^:]*: (.*)$', r.stderr, re.M)
    assert m, r.stderr
    return m.group(1).split(' ')


# ---- help, version, translation (fake mounts: -f) -------------------------

def test_help_and_version():
    r = helper('--help', check=0)
    assert r.stdout.startswith('usage: mount.scriptcachefs SHARD DIR')
    r = helper('--version', check=0)
    assert re.fullmatch(r'mount\.scriptcachefs \d+\.\d+\.\d+\n', r.stdout)
    helper('-V', check=0)
    helper('-h', check=0)


@pytest.mark.parametrize('args, passed, dropped', [
    # fstab's and mount(8)'s own options vanish; the rest reaches the daemon
    (['-o', 'noauto,user,users,owner,group,nofail,_netdev,x-systemd.automount,'
            'x-gvfs-hide,defaults,rw,comment=x,relatime,ro,tag=lua,noexec'],
     'ro,tag=lua,noexec',
     'noauto,user,users,owner,group,nofail,_netdev,x-systemd.automount,'
     'x-gvfs-hide,defaults,rw,comment=x,relatime'),
    # mount(8)'s flag cluster: -s drops what FUSE cannot apply
    (['-sfnv', '-o', 'strictatime,lazytime,allow_other'], 'allow_other',
     'strictatime,lazytime'),
    # -o repeated, -r, helper options consumed
    (['-o', 'nonempty', '-r', '-o', 'nosync,setuid=root'], 'ro,nosync', None),
    # the type mount(8) passes to mount.fuse.scriptcachefs
    (['-t', 'fuse.scriptcachefs', '-oauto'], None, 'auto'),
])
def test_fake_translates(tmp, args, passed, dropped):
    d = tmp.dir('m')
    r = helper('default', d, '-f', '-v', *args, check=0,
               SCRIPTCACHE_PATH=tmp.path + '/s.shard')
    cmd = would_run(r)
    assert cmd[0] == FS
    assert cmd[1] == d                      # default shard: no shard argument
    assert cmd[2:] == (['-o', passed] if passed else [])
    if dropped:
        assert 'dropped options: ' + dropped + '\n' in r.stderr
    else:
        assert 'dropped options' not in r.stderr
    assert mount_type(d) is None            # -f mounts nothing
    assert not os.path.exists(tmp.path + '/s.shard')


def test_fake_shard_forms(tmp):
    d = tmp.dir('m')
    for shard in ('', 'default'):
        r = helper(shard, d, '-fv', check=0, SCRIPTCACHE_PATH=tmp.path + '/s')
        assert would_run(r) == [FS, d]
        assert 'default shard: %s/s\n' % tmp.path in r.stderr
    # a relative shard is made absolute (the daemon chdirs to /)
    r = subprocess.run([HELPER, 'rel.shard', 'm', '-f', '-v'], cwd=tmp.path,
                       capture_output=True, text=True,
                       env=dict(os.environ, SCRIPTCACHEFS=FS))
    assert r.returncode == 0, r.stderr
    assert would_run(r) == [FS, tmp.path + '/rel.shard', d]
    # without -v, -f prints nothing at all
    r = helper('default', d, '-f', '-n', check=0)
    assert r.stdout == '' and r.stderr == ''


def test_fake_lower_paths_are_made_absolute(tmp):
    """lower=PATH[:PATH...] reaches the daemon with each path absolute,
    resolved against the caller's directory (setuid= moves the daemon);
    nolowers passes as is."""
    d = tmp.dir('m')
    r = subprocess.run([HELPER, 'default', 'm', '-fv', '-o',
                        'lower=a.shard:/usr/lib/scriptcache:./b.shard,tag=t',
                        '-o', 'nolowers'],
                       cwd=tmp.path, capture_output=True, text=True,
                       env=dict(os.environ, SCRIPTCACHEFS=FS))
    assert r.returncode == 0, r.stderr
    assert would_run(r) == [FS, d, '-o', 'lower=%s/a.shard:/usr/lib/scriptcache:%s/b.shard,'
                            'tag=t,nolowers' % (tmp.path, tmp.path)]


def test_fake_remote_exe_made_absolute(tmp):
    """A relative remote_exe=PATH reaches the daemon absolute, resolved
    against the caller's directory as lower= is; an absolute one as
    written (the executable's name is what the daemon records)."""
    d = tmp.dir('m')
    os.mkdir(tmp.path + '/bin')
    tmp.file('bin/lua', b'#!/bin/sh\n', 0o755)
    os.symlink('/usr/bin/env', tmp.path + '/bin/env-link')

    def run_from(cwd, opts):
        r = subprocess.run([HELPER, 'default', d, '-fv', '-o', opts], cwd=cwd,
                           capture_output=True, text=True, env=dict(os.environ, SCRIPTCACHEFS=FS))
        assert r.returncode == 0, r.stderr
        return would_run(r)

    remote = 'remote=http://127.0.0.1:1/,remote_tag=t,'
    assert run_from(tmp.path, remote + 'remote_exe=bin/lua') == \
        [FS, d, '-o', remote + 'remote_exe=%s/bin/lua' % tmp.path]
    assert run_from(tmp.path + '/bin', remote + 'remote_exe=./lua,tag=x') == \
        [FS, d, '-o', remote + 'remote_exe=%s/bin/lua,tag=x' % tmp.path]
    # absolute: untouched, a symbolic link included
    assert run_from('/', remote + 'remote_exe=%s/bin/env-link' % tmp.path) == \
        [FS, d, '-o', remote + 'remote_exe=%s/bin/env-link' % tmp.path]
    # empty: the daemon's to refuse
    assert run_from('/', 'remote_exe=') == [FS, d, '-o', 'remote_exe=']


def test_setuid_uses_that_users_default_shard(tmp):
    d = tmp.dir('m')
    r = helper('default', d, '-fv', '-o', 'setuid=nobody', check=0,
               SCRIPTCACHE_PATH='/root/should-not-be-used',
               XDG_CACHE_HOME='/root/.cache')
    assert 'default shard: /nonexistent/.cache/scriptcache/scripts.shard' in r.stderr


@pytest.mark.parametrize('args, code, message', [
    (['default'], 1, 'expected SHARD and DIR'),
    (['default', 'a', 'b'], 1, "unexpected argument 'b'"),
    (['default', 'D', '-x'], 1, "unknown flag '-x'"),
    (['default', 'D', '-o'], 1, "option '-o' needs an argument"),
    (['default', 'D', '-t', 'ext4'], 1, "filesystem type 'ext4' is not scriptcachefs"),
    (['default', 'D', '-N', '1'], 1, '-N (mount in another namespace) is not supported'),
    (['default', 'D', '-o', 'strictatime'], 1,
     "option 'strictatime' is not supported by FUSE mounts (remove it, or mount with -s to drop it)"),
    (['~/x.shard', 'D'], 1, "~/x.shard: mount(8) does not expand '~'"),
    (['default', 'D', '-o', 'setuid='], 1, "option 'setuid=' needs a user name"),
    (['default', 'D', '-o', 'setuid=no-such-user-sc'], 1, 'setuid=no-such-user-sc: no such user'),
])
def test_usage_errors(tmp, args, code, message):
    args = [a.replace('D', tmp.path) for a in args]
    r = helper(*args)
    assert r.returncode == code, r.stderr
    assert r.stderr.count('\n') == 1, r.stderr       # one line
    assert r.stderr.startswith('mount.scriptcachefs: ') and message in r.stderr


def test_scriptcachefs_options_pass_unchanged(tmp):
    """Every -o option of `scriptcachefs --help` reaches the daemon as is
    (the helper's table must not swallow an option fs/ adds later)."""
    d = tmp.dir('m')
    out = subprocess.run([FS, '--help'], capture_output=True, text=True).stdout
    names = set(re.findall(r'-o (\w+)', out))
    assert {'ro', 'allow_other', 'tag', 'nosync', 'no_dist_pyc'} <= names, out
    for name in sorted(names):
        opt = name + '=1' if name in ('tag', 'idle_commit_ms', 'max_threads',
                                     'max_idle_threads') else name
        r = helper('default', d, '-fv', '-o', opt, check=0)
        assert would_run(r) == [FS, d, '-o', opt], (opt, r.stderr)


# ---- real mounts ----------------------------------------------------------

def test_direct_call_as_mount8_does(tmp):
    """mount(8)'s exact argv for `mount -t scriptcachefs default DIR -o ...`."""
    d = tmp.dir('m')
    shard = tmp.path + '/s.shard'
    r = helper('default', d, '-o', 'rw,noexec,nosuid,nodev,nofail,_netdev',
               check=0, SCRIPTCACHE_PATH=shard)
    assert r.stderr == ''
    wait_mounted(d)
    assert {'noexec', 'nosuid', 'nodev'} <= set(mount_options(d))
    src = tmp.file('app.lua', b'print(1)', 0o644)
    cli('--shard', shard, 'put', src, src)
    names = os.listdir(d)
    # the CLI keys the entry by the canonical path, as interpreters do
    assert names == [os.path.realpath(src).replace('/', '%2F')], names
    with open(os.path.join(d, names[0], 'blob'), 'rb') as f:
        assert f.read() == open(src, 'rb').read()
    unmount(d)


def test_direct_call_with_a_lower_shard(tmp):
    """An fstab line's lower= option reaches the daemon: the lower shard's
    entry is listed, read-only."""
    d = tmp.dir('m')
    blob = tmp.file('b.in', b'from below', 0o644)
    scratch = tmp.path + '/scratch.in'
    cli('--shard', scratch, 'put', '--no-source', '--key', '/opt/x.pyc', blob)
    low = tmp.path + '/low.shard'
    cli('--shard', scratch, 'build', low)
    os.chmod(low, 0o644)
    r = helper(tmp.path + '/top.shard', d, '-o', 'nosync,lower=' + low, check=0)
    assert r.stderr == ''
    wait_mounted(d)
    try:
        assert os.listdir(d) == ['%2Fopt%2Fx.pyc']
        b = os.path.join(d, '%2Fopt%2Fx.pyc', 'blob')
        with open(b, 'rb') as f:
            assert f.read() == b'from below'
        assert os.stat(b).st_mode & 0o777 == 0o444
    finally:
        unmount(d)


def test_direct_call_read_only_shard(tmp):
    d = tmp.dir('m')
    shard = tmp.path + '/s.shard'
    src = tmp.file('a.lua', b'x', 0o644)
    cli('--shard', shard, 'put', src, src)
    helper(shard, d, '-n', '-o', 'ro,defaults', check=0)
    wait_mounted(d)
    assert 'ro' in mount_options(d)
    with pytest.raises(OSError):
        os.rmdir(os.path.join(d, os.listdir(d)[0]))
    unmount(d)


def test_mount_t_scriptcachefs(tmp):
    """The real thing: mount(8) finds /sbin/mount.scriptcachefs."""
    d = tmp.dir('m')
    shard = tmp.path + '/s.shard'
    with sbin_links():
        r = subprocess.run(['mount', '-t', 'scriptcachefs', shard, d,
                            '-o', 'noauto,x-foo=bar,tag=t1'],
                           capture_output=True, text=True, env=dict(os.environ, SCRIPTCACHEFS=FS))
        assert r.returncode == 0, r.stderr
        assert mount_type(d) == 'fuse.scriptcachefs'
        assert umount_busy_retry(['umount', d]).returncode == 0
        assert mount_type(d) is None
        # the fuse.TYPE spelling finds mount.fuse.scriptcachefs (the link)
        r = subprocess.run(['mount', '-v', '-t', 'fuse.scriptcachefs', shard, d,
                            '-o', 'ro'],
                           capture_output=True, text=True, env=dict(os.environ, SCRIPTCACHEFS=FS))
        assert r.returncode == 0, r.stderr
        assert 'running: %s %s %s -o ro' % (FS, shard, d) in r.stderr
        assert 'ro' in mount_options(d)
        assert umount_busy_retry(['umount', d]).returncode == 0
        # an fstab line (an fstab file of our own: /etc/fstab is the host's)
        fstab = tmp.file('fstab', ('%s %s scriptcachefs noauto,nofail,x-a=b,tag=f 0 0\n'
                                   % (shard, d)).encode(), 0o644)
        r = subprocess.run(['mount', '-T', fstab, d], capture_output=True,
                           text=True, env=dict(os.environ, SCRIPTCACHEFS=FS))
        assert r.returncode == 0, r.stderr
        assert mount_type(d) == 'fuse.scriptcachefs'
        assert '"tag": "f"' in open(os.path.join(d, '.stats')).read()
        assert umount_busy_retry(['umount', d]).returncode == 0


def test_user_mount_from_fstab_as_nobody(tmp):
    """fstab `user`: mount(8) runs the helper as the user, who mounts
    through fusermount3 and unmounts with umount(8)."""
    d = tmp.dir('m', owner=NOBODY)
    cache = tmp.dir('cache', owner=NOBODY)
    tmp._mounts.remove(cache)
    fstab = tmp.file('fstab', ('%s/s.shard %s scriptcachefs noauto,user,nofail 0 0\n'
                               % (cache, d)).encode(), 0o644)
    with sbin_links():
        r = in_namespace('''
runuser -u nobody -- mount -T "$FSTAB" "$DIR" || exit 10
grep -q " $DIR [^ ]* [^-]*- fuse.scriptcachefs " /proc/self/mountinfo || exit 11
runuser -u nobody -- ls -a "$DIR" >/dev/null || { umount "$DIR"; exit 12; }
umount_retry runuser -u nobody -- umount "$DIR" || { umount -l "$DIR"; exit 13; }
grep -q " $DIR " /proc/self/mountinfo && exit 14
exit 0
''', FSTAB=fstab, DIR=d)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert os.path.exists(cache + '/s.shard')
    assert os.stat(cache + '/s.shard').st_uid == NOBODY


def test_setuid_mounts_as_that_user(tmp):
    """Root (e.g. at boot, from /etc/fstab) runs the daemon as another user."""
    d = tmp.dir('m', owner=NOBODY)
    cache = tmp.dir('cache', owner=NOBODY)
    tmp._mounts.remove(cache)
    r = in_namespace('''
"$HELPER" "$SHARD" "$DIR" -o setuid=nobody,nofail || exit 10
grep " $DIR " /proc/self/mountinfo | grep -q "user_id=65534" || { umount "$DIR"; exit 11; }
umount_retry umount "$DIR" || exit 12
''', HELPER=HELPER, SHARD=cache + '/s.shard', DIR=d)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert os.stat(cache + '/s.shard').st_uid == NOBODY


def test_through_mount_fuse3(tmp):
    """The generic FUSE form: mount.fuse3 runs `scriptcachefs SHARD DIR -o
    OPTS` (found in $PATH) with its own additions (dev, suid)."""
    d = tmp.dir('m')
    shard = tmp.path + '/s.shard'
    e = dict(os.environ, PATH=os.path.dirname(FS) + ':' + os.environ['PATH'],
             SCRIPTCACHE_PATH=tmp.path + '/default.shard')
    for argv in (['mount.fuse3', shard, d, '-t', 'fuse.scriptcachefs',
                  '-o', 'ro,noauto,_netdev,nofail,noatime'],
                 ['mount.fuse3', 'scriptcachefs#' + shard, d, '-o', 'nosuid'],
                 ['mount.fuse3', '', d, '-t', 'fuse.scriptcachefs']):
        if 'ro' in argv[-1]:
            subprocess.run([FS, shard, d], check=True)   # create it
            unmount(d)
        r = subprocess.run(argv, capture_output=True, text=True, env=e)
        assert r.returncode == 0, (argv, r.stderr)
        wait_mounted(d)
        unmount(d)
    assert os.path.exists(tmp.path + '/default.shard')   # '' = default shard


# ---- one-line errors ------------------------------------------------------

def one_line_error(r, message, code=32):
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.count('\n') == 1, r.stderr
    assert r.stderr.startswith('mount.scriptcachefs: '), r.stderr
    assert message in r.stderr, r.stderr


def test_error_mount_point_missing(tmp):
    r = helper('default', tmp.path + '/nope', SCRIPTCACHE_PATH=tmp.path + '/s')
    one_line_error(r, '/nope: mount point does not exist (create it: mkdir -p ')


def test_error_mount_point_not_a_directory(tmp):
    f = tmp.file('f')
    one_line_error(helper('default', f), 'mount point is not a directory')


def test_error_mount_point_not_empty(tmp):
    d = tmp.dir('m')
    open(d + '/x', 'w').close()
    r = helper('default', d, SCRIPTCACHE_PATH=tmp.path + '/s')
    one_line_error(r, 'mount point is not empty (its files would be hidden; '
                      '-o nonempty mounts anyway)')
    helper('default', d, '-o', 'nonempty', check=0, SCRIPTCACHE_PATH=tmp.path + '/s')
    wait_mounted(d)
    assert os.listdir(d) == []
    unmount(d)
    assert os.listdir(d) == ['x']


def test_error_already_mounted(tmp):
    d = tmp.dir('m')
    helper('default', d, check=0, SCRIPTCACHE_PATH=tmp.path + '/s')
    wait_mounted(d)
    r = helper('default', d, '-o', 'nonempty', SCRIPTCACHE_PATH=tmp.path + '/s')
    one_line_error(r, 'already mounted (fuse.scriptcachefs); unmount first: '
                      'fusermount3 -u ' + d)
    unmount(d)


def test_crashed_daemon_is_recovered(tmp):
    """A killed daemon leaves ENOTCONN; the next mount unmounts it first."""
    d = tmp.dir('m')
    shard = tmp.path + '/s.shard'
    proc = subprocess.Popen([FS, '-f', shard, d])
    try:
        wait_mounted(d)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with pytest.raises(OSError) as e:
            os.listdir(d)
        # ENOTCONN; ECONNABORTED if the request was queued while the
        # kernel tore the connection down (seen under load)
        assert e.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
        r = helper(shard, d)
        assert r.returncode == 0, r.stderr
        assert r.stderr == ('mount.scriptcachefs: %s: unmounted the dead mount of a '
                            'crashed scriptcachefs (Transport endpoint is not '
                            'connected)\n' % d)
        wait_mounted(d)
        assert os.listdir(d) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        unmount(d)


def test_error_shard_unreadable(tmp):
    cache = tmp.dir('c', owner=NOBODY)
    tmp._mounts.remove(cache)
    d = tmp.dir('m', owner=NOBODY)
    shard = cache + '/s.shard'
    open(shard, 'w').close()
    os.chown(shard, NOBODY, NOBODY)
    os.chmod(shard, 0)
    r = in_namespace('exec "$HELPER" "$SHARD" "$DIR" -o setuid=nobody',
                     HELPER=HELPER, SHARD=shard, DIR=d)
    one_line_error(r, shard + ': cannot read the shard: Permission denied')
    os.chmod(shard, 0o400)
    r = in_namespace('exec "$HELPER" "$SHARD" "$DIR" -o setuid=nobody',
                     HELPER=HELPER, SHARD=shard, DIR=d)
    one_line_error(r, shard + ': shard is not writable (Permission denied); '
                          'mount it with -o ro')


def test_error_shard_missing(tmp):
    d = tmp.dir('m')
    one_line_error(helper(tmp.path + '/none', d, '-o', 'ro'),
                   '/none: no such shard (-o ro does not create one)')
    one_line_error(helper(tmp.path + '/no/dir/s', d),
                   '/no/dir/s: no such shard, and its directory ')
    one_line_error(helper(tmp.path, d), ': is a directory, not a shard file')


def test_error_no_dev_fuse(tmp):
    d = tmp.dir('m')
    r = in_namespace('mount -t tmpfs none /dev && exec "$HELPER" default "$DIR"',
                     HELPER=HELPER, DIR=d, SCRIPTCACHE_PATH=tmp.path + '/s')
    one_line_error(r, '/dev/fuse does not exist: load the module (modprobe fuse), '
                      'or in a container pass the device (--device /dev/fuse)')


def test_error_dev_fuse_not_accessible(tmp):
    d = tmp.dir('m', owner=NOBODY)
    r = in_namespace('exec "$HELPER" "$SHARD" "$DIR" -o setuid=nobody', fuse_mode='600',
                     HELPER=HELPER, SHARD=tmp.path + '/c/s', DIR=d)
    one_line_error(r, '/dev/fuse: Permission denied: libfuse opens it as the '
                      'mounting user, who needs read-write access')


def test_error_fusermount3_missing(tmp):
    d = tmp.dir('m', owner=NOBODY)
    fake = tmp.file('not-fusermount', b'', 0o644)
    r = in_namespace('''
mount --bind "$FAKE" /usr/bin/fusermount3
exec "$HELPER" "$SHARD" "$DIR" -o setuid=nobody
''', HELPER=HELPER, FAKE=fake, SHARD=tmp.path + '/s', DIR=d,
                     PATH='/usr/bin:/bin:/usr/sbin:/sbin')
    one_line_error(r, 'fusermount3 not found (in /usr/bin/fusermount3 or $PATH): '
                      'a user who is not root needs it to mount; install the fuse3 package')


def test_error_setuid_needs_root(tmp):
    d = tmp.dir('m', owner=NOBODY)
    r = subprocess.run(['runuser', '-u', 'nobody', '--', HELPER, 'default', d,
                        '-o', 'setuid=root'], capture_output=True, text=True,
                       env=dict(os.environ, SCRIPTCACHEFS=FS))
    one_line_error(r, 'setuid=root: only root may run the daemon as another user', 1)


def test_error_daemon_missing(tmp):
    d = tmp.dir('m')
    r = helper('default', d, SCRIPTCACHEFS=tmp.path + '/nope')
    one_line_error(r, 'SCRIPTCACHEFS=%s/nope: not an executable file' % tmp.path)


def test_unknown_option_fails_in_the_daemon(tmp):
    """Options the helper does not know go to the daemon, which refuses."""
    d = tmp.dir('m')
    r = helper('default', d, '-o', 'no_such_option', SCRIPTCACHE_PATH=tmp.path + '/s')
    assert r.returncode != 0
    assert 'no_such_option' in r.stderr
    assert mount_type(d) is None
