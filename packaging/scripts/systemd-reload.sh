#!/bin/sh
# admq-manager and admq-agent packages, after removal or upgrade (deb
# postrm, rpm %postun): have systemd forget or reread the unit. Data and
# state dirs, and the admq user, stay.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
