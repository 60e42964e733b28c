#!/usr/bin/env bash
# install-test-deps.sh installs what the tests run besides Go: the AWS SDK for JavaScript v3
# (from npm, into .cache/js, keyed by the lock file), Python's boto3 and the AWS CLI (`aws`, run by
# the credential_process and credentials-file tests), the last two from Debian's packages.
# Idempotent: a second run only compares a hash and looks the tools up; apt-get runs (after one
# `apt-get update`) only when something is missing, and the run fails if it is still missing.
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

# Debian's packages for what is missing, one apt-get for all of them.
missing=()
if python3 -c 'import boto3, botocore' 2>/dev/null; then
	echo "install-test-deps: boto3 $(python3 -c 'import boto3; print(boto3.__version__)') ready"
else
	missing+=(python3-boto3)
fi
if command -v aws >/dev/null 2>&1; then
	echo "install-test-deps: AWS CLI ready: $(aws --version 2>&1 | head -n1)"
else
	missing+=(awscli)
fi
if [ "${#missing[@]}" -gt 0 ]; then
	echo "install-test-deps: installing Debian's ${missing[*]}"
	as_root=()
	if [ "$(id -u)" -ne 0 ]; then
		as_root=(sudo)
	fi
	"${as_root[@]}" apt-get update -qq
	"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
	python3 -c 'import boto3, botocore' || {
		echo "install-test-deps: python3 still has no boto3 (a python3 other than Debian's on PATH?)" >&2
		exit 1
	}
	command -v aws >/dev/null || {
		echo "install-test-deps: aws still not on PATH" >&2
		exit 1
	}
fi
