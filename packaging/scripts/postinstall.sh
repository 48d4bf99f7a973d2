#!/bin/sh
# pgbapi-proxy post-install, for deb (configure [OLD-VERSION]) and rpm
# (1: install, 2+: upgrade). Creates the service user, runs
# `pgbapi-proxy init` (which keeps every existing key and certificate),
# gives the service user what it needs, and (re)starts the service where
# systemd runs.
set -e

case "$1" in
configure) [ -z "$2" ] && first=yes || first=no ;;
1) first=yes ;;
[2-9] | [1-9][0-9]) first=no ;;
*) exit 0 ;; # deb abort-upgrade, abort-remove, ...: nothing to do
esac

USER_NAME=pgbapi-proxy
if ! getent group "$USER_NAME" >/dev/null; then
	groupadd --system "$USER_NAME"
fi
if ! getent passwd "$USER_NAME" >/dev/null; then
	useradd --system --gid "$USER_NAME" --home-dir /var/lib/pgbapi-proxy --no-create-home \
		--shell /usr/sbin/nologin --comment "pgbapi-proxy service" "$USER_NAME"
fi

# The operator's settings (cluster name, host names, directories).
for defaults in /etc/default/pgbapi-proxy /etc/sysconfig/pgbapi-proxy; do
	if [ -r "$defaults" ]; then
		set -a
		. "$defaults"
		set +a
	fi
done
TPA=${PGBAPI_PROXY_TPA_DIR:-/etc/tpa/pg-backup-api}
STATE=${PGBAPI_PROXY_STATE_DIR:-/var/lib/pgbapi-proxy}

if ! pgbapi-proxy init; then
	echo "pgbapi-proxy: 'pgbapi-proxy init' failed (see above); fix the cause, run it again, then 'systemctl restart pgbapi-proxy'" >&2
	exit 1
fi

# The service reads the server key and the root certificate, renews the
# server certificate from the intermediate, and records it. It never
# reads the cluster CA key (state/ca stays root's) nor other clients' keys.
chown "$USER_NAME:$USER_NAME" "$STATE"
chmod 0700 "$STATE"
chown root:root "$STATE/ca"
chmod 0700 "$STATE/ca"
for f in intermediate.crt intermediate.key inventory.json inventory.lock pki.json; do
	if [ -e "$STATE/$f" ]; then chown "$USER_NAME:$USER_NAME" "$STATE/$f"; fi
done
if [ -d "$STATE/certmagic" ]; then chown -R "$USER_NAME:$USER_NAME" "$STATE/certmagic"; fi
chown "root:$USER_NAME" "$TPA"
chmod 0770 "$TPA"
for f in pg-backup-api.crt pg-backup-api.key; do
	if [ -e "$TPA/$f" ]; then chown "$USER_NAME:$USER_NAME" "$TPA/$f"; fi
done

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ "$first" = yes ]; then
		systemctl enable --now pgbapi-proxy.service || echo "pgbapi-proxy: the service did not start; see 'journalctl -u pgbapi-proxy'" >&2
	else
		systemctl try-restart pgbapi-proxy.service || echo "pgbapi-proxy: the service did not restart; see 'journalctl -u pgbapi-proxy'" >&2
	fi
fi
exit 0
