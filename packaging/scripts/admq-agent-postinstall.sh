#!/bin/sh
# admq-agent package, after install or upgrade (deb postinst, rpm %post).
# A fresh install is neither enabled nor started: the agent needs the
# manager's address and a join token first. An upgrade restarts a running
# agent; the nodes it supervises keep running (KillMode=process).
set -e

# deb: configure [old version]; rpm: instances installed (1: install).
case "$1" in
configure) [ -n "$2" ] && upgrade=true || upgrade=false ;;
1) upgrade=false ;;
[0-9]*) upgrade=true ;;
*) exit 0 ;;
esac

install -d -m 0700 /var/lib/admq-agent

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ "$upgrade" = true ]; then
		systemctl try-restart admq-agent.service || true
	fi
fi
if [ "$upgrade" = false ]; then
	cat <<'MSG'
admq-agent is installed but not started. To connect this server:
  1. set ADMQ_MANAGER=HOST:12306 in /etc/default/admq-agent
  2. (umask 077; echo 'JOIN-TOKEN' > /var/lib/admq-agent/join-token)
  3. systemctl enable --now admq-agent
MSG
fi
exit 0
