#!/bin/sh
# pgbapi-proxy post-install, for deb (configure [OLD-VERSION]) and rpm
# (1: install, 2+: upgrade). Runs `pgbapi-proxy init` (which keeps every
# existing key and certificate), gives the service user (made by
# preinstall) what it needs, and (re)starts the service where
# systemd runs.
set -e

case "$1" in
configure) [ -z "$2" ] && first=yes || first=no ;;
1) first=yes ;;
[2-9] | [1-9][0-9]) first=no ;;
*) exit 0 ;; # deb abort-upgrade, abort-remove, ...: nothing to do
esac

# The service user was created by preinstall.
USER_NAME=pgbapi-proxy

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
#
# Both directories are writable by the service user, which could plant a
# symbolic link there pointing at a file of root's: nothing here follows
# one (chown -h; a link is reported and left alone, never chmod-ed).
own() { # OWNER MODE PATH: set a real file's or directory's owner and mode
	if [ -L "$3" ]; then
		echo "pgbapi-proxy: $3 is a symbolic link; left alone (remove it, then reinstall)" >&2
		return 0
	fi
	[ -e "$3" ] || return 0
	chown -h "$1" "$3"
	[ -z "$2" ] || chmod "$2" "$3"
}
own "$USER_NAME:$USER_NAME" 0700 "$STATE"
own root:root 0700 "$STATE/ca"
for f in intermediate.crt intermediate.key inventory.json inventory.lock pki.json; do
	own "$USER_NAME:$USER_NAME" "" "$STATE/$f"
done
# -R -P -h: into the directory, never through a link in it.
if [ -d "$STATE/certmagic" ] && [ ! -L "$STATE/certmagic" ]; then chown -R -P -h "$USER_NAME:$USER_NAME" "$STATE/certmagic"; fi
own "root:$USER_NAME" 0770 "$TPA"
for f in pg-backup-api.crt pg-backup-api.key; do
	own "$USER_NAME:$USER_NAME" "" "$TPA/$f"
done

# The unit may write only the directories the settings name: when they are
# not the defaults, a drop-in says so (ReadWritePaths), rewritten on every
# install and upgrade. After changing them: dpkg-reconfigure pgbapi-proxy
# (deb) or dnf reinstall pgbapi-proxy (rpm). PGBAPI_PROXY_DROPIN_DIR:
# for the tests only.
DROPIN_DIR=${PGBAPI_PROXY_DROPIN_DIR:-/etc/systemd/system/pgbapi-proxy.service.d}
if [ "$TPA" != /etc/tpa/pg-backup-api ] || [ "$STATE" != /var/lib/pgbapi-proxy ]; then
	mkdir -p "$DROPIN_DIR"
	printf '%s\n' \
		"# Written by the pgbapi-proxy package from its settings file (TPA and" \
		"# state directories); rewritten on every install and upgrade, removed" \
		"# on purge." \
		"[Service]" \
		"ReadWritePaths=" \
		"ReadWritePaths=-$STATE -$TPA" >"$DROPIN_DIR/paths.conf"
	chmod 0644 "$DROPIN_DIR/paths.conf"
else
	rm -f "$DROPIN_DIR/paths.conf"
	rmdir "$DROPIN_DIR" 2>/dev/null || true
fi

# deb: the apt pin of the pg-backup-api this package was built for (a
# package built without a pin ships none). Written here, not shipped as a
# conffile, so that an upgrade brings its own pin and `apt remove` takes it
# away (postremove).
PREF=/etc/apt/preferences.d/pgbapi-proxy.pref
if [ -d /etc/apt/preferences.d ]; then
	if [ -f /usr/share/pgbapi-proxy/apt-preferences ]; then
		install -m 0644 /usr/share/pgbapi-proxy/apt-preferences "$PREF"
	else
		rm -f "$PREF"
	fi
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ "$first" = yes ]; then
		systemctl enable pgbapi-proxy.service || true
		action=start
	else
		action=try-restart
	fi
	# Type=notify: systemctl returns once serve is ready, or fails when it
	# cannot start; then say why (the package stays installed).
	if ! systemctl "$action" pgbapi-proxy.service; then
		echo "pgbapi-proxy: the service did not start; the reason, from 'journalctl -u pgbapi-proxy':" >&2
		journalctl -u pgbapi-proxy.service -n 5 --no-pager -o cat >&2 || true
		echo "pgbapi-proxy: fix it (e.g. PGBAPI_PROXY_LISTEN in the settings file), then: systemctl restart pgbapi-proxy" >&2
	fi
fi
exit 0
