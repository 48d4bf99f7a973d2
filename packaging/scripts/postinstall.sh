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

# (Tells init that this script gives the service its keys right after.)
if ! PGBAPI_PROXY_MAINTAINER_SCRIPT=1 pgbapi-proxy init; then
	echo "pgbapi-proxy: 'pgbapi-proxy init' failed (see above); fix the cause, run it again, then 'systemctl restart pgbapi-proxy'" >&2
	exit 1
fi

# Who may write what (README, "Security model"). The service account
# reads the root, the CRL, the revocation record, the inventory, the
# settings of the PKI and its own keys; it writes only its own store,
# $STATE/server. Everything that decides trust is root's: the directories
# too, so that it can neither replace nor delete a file there.
#
# The service could plant a symbolic link in its store (and could in the
# directories older versions let it write): nothing here follows one
# (chown -h; a link is reported and left alone, never chmod-ed).
own() { # OWNER MODE PATH: set a real file's or directory's owner and mode
	if [ -L "$3" ]; then
		echo "pgbapi-proxy: $3 is a symbolic link; left alone (remove it, then reinstall)" >&2
		return 0
	fi
	[ -e "$3" ] || return 0
	chown -h "$1" "$3"
	[ -z "$2" ] || chmod "$2" "$3"
}
own "root:$USER_NAME" 0750 "$STATE"
own root:root 0700 "$STATE/ca"
for f in intermediate.crt inventory.json pki.json crl.pem revoked.json; do
	own root:root go-w "$STATE/$f"
done
own root:root 0600 "$STATE/inventory.lock"
# The intermediate's key: the service signs its own server certificates
# with it (name constraints keep them to this host's names).
own "$USER_NAME:$USER_NAME" 0600 "$STATE/intermediate.key"
# The service's own store (an older version's $STATE/certmagic is no
# longer used; it is left alone).
if [ ! -e "$STATE/server" ] && [ ! -L "$STATE/server" ]; then
	install -d -o "$USER_NAME" -g "$USER_NAME" -m 0700 "$STATE/server"
fi
own "$USER_NAME:$USER_NAME" 0700 "$STATE/server"
own "root:$USER_NAME" 0750 "$TPA"
for f in root.crt CA.crt crl.pem pg-backup-api.crt; do
	own root:root go-w "$TPA/$f"
done
# The server key the service serves (it reads it again on SIGHUP where
# there is no CA key): its own, in a directory of root's.
own "$USER_NAME:$USER_NAME" 0600 "$TPA/pg-backup-api.key"

# The unit may write only the directories the settings name: when they are
# not the defaults, a drop-in says so (ReadWritePaths), rewritten on every
# install and upgrade. After changing them: dpkg-reconfigure pgbapi-proxy
# (deb) or dnf reinstall pgbapi-proxy (rpm). PGBAPI_PROXY_DROPIN_DIR:
# for the tests only.
DROPIN_DIR=${PGBAPI_PROXY_DROPIN_DIR:-/etc/systemd/system/pgbapi-proxy.service.d}
PATH_DROPIN_DIR=${PGBAPI_PROXY_PATH_DROPIN_DIR:-/etc/systemd/system/pgbapi-proxy-server-cert.path.d}
if [ "$STATE" != /var/lib/pgbapi-proxy ]; then
	mkdir -p "$DROPIN_DIR" "$PATH_DROPIN_DIR"
	printf '%s\n' \
		"# Written by the pgbapi-proxy package from its settings file (the state" \
		"# directory); rewritten on every install and upgrade, removed on purge." \
		"[Service]" \
		"ReadWritePaths=" \
		"ReadWritePaths=-$STATE/server" >"$DROPIN_DIR/paths.conf"
	printf '%s\n' \
		"# Written by the pgbapi-proxy package from its settings file (the state" \
		"# directory); rewritten on every install and upgrade, removed on purge." \
		"[Path]" \
		"PathChanged=" \
		"PathChanged=$STATE/server/pg-backup-api.crt" >"$PATH_DROPIN_DIR/paths.conf"
	chmod 0644 "$DROPIN_DIR/paths.conf" "$PATH_DROPIN_DIR/paths.conf"
else
	rm -f "$DROPIN_DIR/paths.conf" "$PATH_DROPIN_DIR/paths.conf"
	rmdir "$DROPIN_DIR" "$PATH_DROPIN_DIR" 2>/dev/null || true
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
	systemctl enable --now pgbapi-proxy-server-cert.path || true
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
