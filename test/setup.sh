#!/usr/bin/env bash
# Installs what the tests need: Go modules always; Debian packages when run
# as root (CI and developer machines here are Debian and root).
set -euo pipefail
cd "$(dirname "$0")/.."

go mod download
(cd packaging/dist && go mod download)

need=(protobuf-compiler iproute2 nftables openssh-server sudo systemd rpm zookeeper nats-server libslf4j-java liblog4j1.2-java default-jdk-headless chromium fonts-wqy-microhei)
# test/e2e boots systemd machines (systemd-nspawn) from a Debian root file
# system it makes once with debootstrap, from the mirror apt uses here, and
# caches in /var/cache/admq-test; test/chaos shapes links with iproute2's tc.
need+=(debootstrap systemd-container zstd debian-archive-keyring)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "test setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test setup: not root; tests that need ${missing[*]} will skip"
  fi
fi
