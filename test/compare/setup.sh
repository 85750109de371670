#!/usr/bin/env bash
# Installs what make compare needs beside the tests' own packages: Ansible
# from Debian (ansible-core), OpenSSH's server and iproute2.
set -euo pipefail
need=(ansible-core openssh-server iproute2 procps)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "compare setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "compare setup: run as root to install ${missing[*]}" >&2
    exit 1
  fi
fi
