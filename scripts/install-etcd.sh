#!/usr/bin/env bash
# install-etcd.sh makes sure etcd (Debian's etcd-server, 3.4) is on the PATH: the kube-apiserver
# of the webhook and issuer tests stores its objects there. Idempotent: when etcd is present it
# only prints its version.
set -euo pipefail
if command -v etcd >/dev/null 2>&1; then
	echo "install-etcd: $(etcd --version 2>/dev/null | head -n1) ready"
	exit 0
fi
echo "install-etcd: installing Debian's etcd-server"
if [ "$(id -u)" -ne 0 ]; then
	echo "install-etcd: needs root for apt-get (or put etcd on the PATH, or set CREDSIDECAR_ETCD)" >&2
	exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
# The package starts a system etcd on the default ports; the tests run their own on free ports.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
echo "install-etcd: $(etcd --version | head -n1) ready"
