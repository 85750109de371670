#!/bin/sh
# admq-agent package, before removal or upgrade (deb prerm, rpm %preun):
# on removal only, stop and disable the service.
set -e

# deb: remove | upgrade ...; rpm: instances left after (0: erase).
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now admq-agent.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
