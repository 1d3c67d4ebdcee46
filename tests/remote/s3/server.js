// The S3-compatible server of tests/remote/test_s3.py: s3rver (the
// maintained fork @20minutes/s3rver, which checks SigV4 signatures), on
// 127.0.0.1 with a port the kernel picks, one bucket, one key pair.
//
// Usage: node server.js DIRECTORY BUCKET
// Environment: S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY (never on the command
// line, where ps shows them); S3_TEST_DENY_MISSING=1 answers a missing key
// with 403 AccessDenied instead of 404 NoSuchKey, as AWS S3 does to a
// caller without s3:ListBucket (s3rver has no policies).
// Prints one line "port N" once it listens, then "request METHOD URL
// [expect VALUE]" for each request it receives (s3rver's own log does not
// name the method: the tests check that mode ro sends no PUT) and "denied
// METHOD PATH" for each 404 it turns into a 403; runs until killed.
//
// s3rver's own command line (lib/cli.js) needs commander 14 and so node 20;
// its library does not, so this script runs on Debian 12's node 18 too.
'use strict';

const S3rver = require('@20minutes/s3rver');
const AWSAccount = require('@20minutes/s3rver/lib/models/account');
const S3Error = require('@20minutes/s3rver/lib/models/error');

const [directory, bucket] = process.argv.slice(2);
const access = process.env.S3_TEST_ACCESS_KEY;
const secret = process.env.S3_TEST_SECRET_KEY;
if (!directory || !bucket || !access || !secret) {
  console.error('usage: S3_TEST_ACCESS_KEY=.. S3_TEST_SECRET_KEY=.. node server.js DIRECTORY BUCKET');
  process.exit(2);
}
// Only our key pair: the built-in S3RVER/S3RVER one is revoked, so that a
// request signed with anything else is refused.
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(access, secret);

const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory,
  silent: false,
  allowMismatchedSignatures: false, // the default, said: the tests rely on it
  vhostBuckets: false,
  configureBuckets: [{ name: bucket, configs: [] }],
});
if (process.env.S3_TEST_DENY_MISSING === '1') {
  // First in the chain, so that it sees what the routes throw; signature
  // errors pass unchanged (they come before any key is looked up).
  server.middleware.unshift(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (err.code === 'NoSuchKey') {
        console.log('denied ' + ctx.method + ' ' + ctx.path);
        throw new S3Error('AccessDenied', 'Access Denied');
      }
      throw err;
    }
  });
}
server.run().then(
  (addr) => {
    server.httpServer.on('request', (req) =>
      console.log('request ' + req.method + ' ' + req.url + (req.headers.expect ? ' expect ' + req.headers.expect : '')),
    );
    console.log('port ' + addr.port);
  },
  (err) => {
    console.error('s3rver did not start: ' + err);
    process.exit(1);
  },
);
