#!/usr/bin/env bash
# install-test-deps.sh installs what the SDK end-to-end tests run besides Go: the AWS SDK for
# JavaScript v3 (from npm, into .cache/js, keyed by the lock file) and checks Python's boto3.
# Idempotent: a second run only compares a hash.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

js_src="$root/internal/e2e/testdata/js"
js_dst="$root/.cache/js"
if [ -f "$js_src/package-lock.json" ]; then
	key=$(cat "$js_src/package.json" "$js_src/package-lock.json" | sha256sum | cut -c1-16)
	if [ "$(cat "$js_dst/.key" 2>/dev/null)" = "$key" ] && [ -d "$js_dst/node_modules" ]; then
		echo "install-test-deps: JavaScript SDK ready in .cache/js"
	else
		echo "install-test-deps: installing the JavaScript SDK into .cache/js (npm ci)"
		mkdir -p "$js_dst"
		cp "$js_src/package.json" "$js_src/package-lock.json" "$js_dst/"
		(cd "$js_dst" && npm ci --no-audit --no-fund --loglevel=error)
		printf '%s\n' "$key" >"$js_dst/.key"
	fi
fi

if python3 -c 'import boto3, botocore' 2>/dev/null; then
	echo "install-test-deps: boto3 $(python3 -c 'import boto3; print(boto3.__version__)') ready"
else
	echo "install-test-deps: boto3 missing; installing Debian's python3-boto3"
	apt-get update -qq && apt-get install -y -qq python3-boto3
fi
