#!/bin/sh
# admq-manager package, after install or upgrade (deb postinst, rpm %post):
# create the admq user and data dir; restart a running manager on upgrade.
set -e

# deb: configure [old version]; rpm: instances installed (1: install).
case "$1" in
configure) [ -n "$2" ] && upgrade=true || upgrade=false ;;
1) upgrade=false ;;
[0-9]*) upgrade=true ;;
*) exit 0 ;;
esac

if ! getent group admq >/dev/null; then
	groupadd --system admq
fi
if ! getent passwd admq >/dev/null; then
	useradd --system --gid admq --home-dir /var/lib/admq-manager --no-create-home \
		--shell /usr/sbin/nologin --comment "admq-manager" admq
fi
install -d -o admq -g admq -m 0700 /var/lib/admq-manager

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ "$upgrade" = true ]; then
		systemctl try-restart admq-manager.service || true
	fi
fi
if [ "$upgrade" = false ]; then
	cat <<'MSG'
admq-manager is installed but not started. Review /etc/default/admq-manager
(ADMQ_TLS_HOSTS: the names agents dial), then:
  systemctl enable --now admq-manager
  journalctl -u admq-manager    # the admin password, printed once
MSG
fi
exit 0
