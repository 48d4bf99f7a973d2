#!/bin/sh
# pgbapi-proxy pre-install, for deb (install | upgrade ...) and rpm (%pre:
# 1 install, 2+ upgrade). Creates the service user and group before the
# files are unpacked, as rpm's packaging guidelines ask (%pre); postinstall
# then runs init and gives the user what it needs.
set -e
USER_NAME=pgbapi-proxy
if ! getent group "$USER_NAME" >/dev/null; then
	groupadd --system "$USER_NAME"
fi
if ! getent passwd "$USER_NAME" >/dev/null; then
	useradd --system --gid "$USER_NAME" --home-dir /var/lib/pgbapi-proxy --no-create-home \
		--shell /usr/sbin/nologin --comment "pgbapi-proxy service" "$USER_NAME"
fi
exit 0
