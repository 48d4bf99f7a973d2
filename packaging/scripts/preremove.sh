#!/bin/sh
# pgbapi-proxy pre-remove, for deb (remove | upgrade | deconfigure ...) and
# rpm (0: remove, 1+: upgrade). Stops and disables the service on removal
# only; an upgrade restarts it in post-install.
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now pgbapi-proxy.service pgbapi-proxy-server-cert.path || true
	fi
	;;
esac
exit 0
