#!/usr/bin/env bash
# install-weed.sh puts SeaweedFS's `weed` (the local STS and S3 of the tests and the demo) at
# .cache/bin/weed, built once from the Go module proxy at the version pinned in
# tools/seaweedfs/go.mod. The build is kept outside the clone, keyed by that version, so a fresh
# clone on the same machine (as CI makes) finds it in seconds. Idempotent; safe to run every time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/tools/seaweedfs"
version=$(awk '$1 == "github.com/seaweedfs/seaweedfs" { print $2 }' "$tools/go.mod")
if [ -z "$version" ]; then
	echo "install-weed: no github.com/seaweedfs/seaweedfs version in $tools/go.mod" >&2
	exit 1
fi
# The key also covers go.sum, so a changed dependency graph is rebuilt, never mixed up.
key="$version-$(sha256sum "$tools/go.sum" | cut -c1-12)"
store="${CREDSIDECAR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/credsidecar}/weed-$key"
dest="$root/.cache/bin/weed"
stamp="$dest.key"

if [ -x "$dest" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
	echo "install-weed: weed $version ready at .cache/bin/weed"
	exit 0
fi

if [ ! -x "$store/weed" ]; then
	echo "install-weed: [1/3] building weed $version into $store"
	echo "install-weed:       first build takes about 15 min on 2 cores (about 2 min with a warm Go build cache)"
	mkdir -p "$store"
	start=$(date +%s)
	(
		# A line every minute, so a long first build is visibly alive.
		while sleep 60; do echo "install-weed:       still building ($(( ($(date +%s) - start) / 60 )) min)"; done
	) &
	ticker=$!
	trap 'kill $ticker 2>/dev/null || true' EXIT
	go build -C "$tools" -o "$store/weed.partial" github.com/seaweedfs/seaweedfs/weed
	kill $ticker 2>/dev/null || true
	mv "$store/weed.partial" "$store/weed"
	echo "install-weed: [2/3] built in $(( $(date +%s) - start )) s"
else
	echo "install-weed: [1/3] weed $version found in $store"
	echo "install-weed: [2/3] nothing to build"
fi

mkdir -p "$(dirname "$dest")"
ln -f "$store/weed" "$dest.partial" 2>/dev/null || cp "$store/weed" "$dest.partial"
mv -f "$dest.partial" "$dest"
printf '%s\n' "$key" >"$stamp"
echo "install-weed: [3/3] weed $version ready at .cache/bin/weed"
