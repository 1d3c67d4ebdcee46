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
npm ci --prefix "$dest" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
cp "$here/package-lock.json" "$stamp"
