#!/usr/bin/env bash
# Install the S3-compatible test server (s3rver, package.json) into DEST,
# exactly as package-lock.json pins it, unless it is there already.
# Needs node and npm (scripts/deps installs Debian's nodejs and npm).
# Usage: install.sh DEST
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: install.sh DEST}
stamp="$dest/.installed"
if [ -f "$stamp" ] && cmp -s "$stamp" "$here/package-lock.json"; then
	exit 0
fi
command -v node >/dev/null && command -v npm >/dev/null || {
	echo "install.sh: node and npm are needed (scripts/deps installs nodejs and npm)" >&2
	exit 1
}
mkdir -p "$dest"
cp "$here/package.json" "$here/package-lock.json" "$dest/"
# --ignore-scripts: nothing of the registry runs at install time.
args=(ci --prefix "$dest" --ignore-scripts --no-audit --no-fund --loglevel=error)
if ! npm "${args[@]}" 2>"$dest/npm.err"; then
	# npm ci checks every tarball against the sha512 "integrity" of the
	# committed lock file, so what lands is what was pinned whatever the
	# transport.  A build root without the site's CA certificates (behind
	# a TLS-intercepting proxy, say) cannot verify the registry's
	# certificate: then, and only when every package of the lock is
	# pinned so, install again without verifying TLS.
	if grep -qE 'SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE' "$dest/npm.err" &&
		node -e '
			const p = require(process.argv[1]).packages;
			const ok = Object.entries(p).every(([k, v]) => !k || /^sha512-/.test(v.integrity || ""));
			process.exit(ok ? 0 : 1);' "$dest/package-lock.json"; then
		echo "install.sh: the registry's TLS certificate is not trusted here; installing" \
			"without TLS verification, every package checked against the lock file's sha512" >&2
		# without the user's npmrc: no registry token goes over an
		# unverified connection
		npm_config_userconfig=/dev/null npm "${args[@]}" --strict-ssl=false >&2
	else
		cat "$dest/npm.err" >&2
		exit 1
	fi
fi
cp "$here/package-lock.json" "$stamp"
