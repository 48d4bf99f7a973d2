#!/bin/sh
# pgbapi-proxy post-remove, for deb (remove | purge | upgrade ...) and rpm
# (0: remove, 1+: upgrade). The cluster CA, the intermediate and every key
# and certificate are kept, even on purge: deleting the CA is an explicit
# operator step (see the README).
set -e
case "$1" in
remove | purge | 0)
	# The apt pin postinstall wrote (deb): without pgbapi-proxy nothing
	# should hold pg-backup-api back.
	rm -f /etc/apt/preferences.d/pgbapi-proxy.pref
	if [ "$1" != remove ]; then
		# The drop-in the package wrote (the settings' directories).
		rm -f /etc/systemd/system/pgbapi-proxy.service.d/paths.conf /etc/systemd/system/pgbapi-proxy-server-cert.path.d/paths.conf
		rmdir /etc/systemd/system/pgbapi-proxy.service.d /etc/systemd/system/pgbapi-proxy-server-cert.path.d 2>/dev/null || true
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
	if [ -d /var/lib/pgbapi-proxy ] || [ -d /etc/tpa/pg-backup-api ]; then
		echo "pgbapi-proxy: the cluster CA and keys were kept in /var/lib/pgbapi-proxy and /etc/tpa/pg-backup-api;" >&2
		echo "pgbapi-proxy: to delete them for good: rm -rf /var/lib/pgbapi-proxy (the CA key) and the pg-backup-api files in /etc/tpa/pg-backup-api" >&2
	fi
	;;
esac
exit 0
