#!/usr/bin/env bash
# install-tool.sh NAME MODULE-DIR PACKAGE puts the binary NAME at .cache/bin/NAME, built once from
# the Go module proxy at the version pinned in MODULE-DIR's go.mod (a tools module under tools/).
# The build is kept outside the clone, keyed by the package's module version and the tools
# module's go.sum, so a fresh clone on the same machine (as CI makes) finds it in seconds.
# Idempotent; safe to run every time.
#   scripts/install-tool.sh weed tools/seaweedfs github.com/seaweedfs/seaweedfs/weed
#   scripts/install-tool.sh staticcheck tools/lint honnef.co/go/tools/cmd/staticcheck
set -euo pipefail

if [ $# -ne 3 ]; then
	echo "usage: install-tool.sh NAME MODULE-DIR PACKAGE" >&2
	exit 2
fi
name=$1
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/$2"
pkg=$3
version=$(go list -C "$tools" -m -f '{{.Version}}' "$(go list -C "$tools" -f '{{.Module.Path}}' "$pkg")")
if [ -z "$version" ]; then
	echo "install-$name: no version of $pkg pinned in $tools/go.mod" >&2
	exit 1
fi
# The key also covers go.sum, so a changed dependency graph is rebuilt, never mixed up.
key="$version-$(sha256sum "$tools/go.sum" | cut -c1-12)"
store="${CREDSIDECAR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/credsidecar}/$name-$key"
dest="$root/.cache/bin/$name"
stamp="$dest.key"

if [ -x "$dest" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
	echo "install-$name: $name $version ready at .cache/bin/$name"
	exit 0
fi

if [ ! -x "$store/$name" ]; then
	echo "install-$name: [1/3] building $name $version into $store"
	echo "install-$name:       a first build can take minutes on 2 cores; a line a minute shows it is alive"
	mkdir -p "$store"
	start=$(date +%s)
	(
		while sleep 60; do echo "install-$name:       still building ($(( ($(date +%s) - start) / 60 )) min)"; done
	) &
	ticker=$!
	trap 'kill $ticker 2>/dev/null || true' EXIT
	go build -C "$tools" -o "$store/$name.partial" "$pkg"
	kill $ticker 2>/dev/null || true
	mv "$store/$name.partial" "$store/$name"
	echo "install-$name: [2/3] built in $(( $(date +%s) - start )) s"
else
	echo "install-$name: [1/3] $name $version found in $store"
	echo "install-$name: [2/3] nothing to build"
fi

mkdir -p "$(dirname "$dest")"
ln -f "$store/$name" "$dest.partial" 2>/dev/null || cp "$store/$name" "$dest.partial"
mv -f "$dest.partial" "$dest"
printf '%s\n' "$key" >"$stamp"
echo "install-$name: [3/3] $name $version ready at .cache/bin/$name"
