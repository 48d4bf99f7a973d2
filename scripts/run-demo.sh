#!/bin/sh
# make run: a working proxy in front of a demo upstream that answers like
# pg-backup-api, with a PKI of its own in ./demo. Ctrl-C stops everything.
set -eu
BIN=${BIN:-bin/pgbapi-proxy}
UPSTREAM_BIN=${UPSTREAM_BIN:-bin/demo-upstream}
DEMO=${DEMO:-demo}
PORT=${PORT:-8443}
ADMIN=${ADMIN:-127.0.0.1:8481}
UPSTREAM=${UPSTREAM:-127.0.0.1:17480}
PKI="--tpa-dir $DEMO/tpa --state-dir $DEMO/state"

# init's own "Test it" line names the default port (443); the demo's
# command is printed below, once the proxy is ready.
$BIN init $PKI --cluster-name demo --hostname localhost --ip 127.0.0.1 --no-system-trust >/dev/null
[ -e "$DEMO/tpa/pem.crt" ] || $BIN issue-client $PKI --name pem >/dev/null

pids=""
# Never fails: it runs twice on Ctrl-C (the INT trap, then EXIT), and
# under set -e a kill of children already gone, or a wait for killed
# ones, would end make run with an error.
cleanup() {
	[ -z "$pids" ] || kill $pids 2>/dev/null || true
	wait 2>/dev/null || true
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

$UPSTREAM_BIN --listen "$UPSTREAM" & up_pid=$!
pids="$pids $up_pid"
$BIN serve $PKI --listen "127.0.0.1:$PORT" --admin-listen "$ADMIN" --upstream "http://$UPSTREAM" & proxy_pid=$!
pids="$pids $proxy_pid"

# Wait until this proxy says it is ready; if it or the demo upstream
# exited (a busy port, say), stop: the admin port may be another one's.
not_started() {
	echo "make run: $1 did not start (its error is above). The ports are PORT=$PORT, ADMIN=$ADMIN and UPSTREAM=$UPSTREAM; choose others with, e.g., PORT=9443 ADMIN=127.0.0.1:9481 UPSTREAM=127.0.0.1:19480 make run" >&2
	exit 1
}
i=0
until $BIN status --admin-listen "$ADMIN" --timeout 1s >/dev/null 2>&1; do
	kill -0 "$proxy_pid" 2>/dev/null || not_started pgbapi-proxy
	kill -0 "$up_pid" 2>/dev/null || not_started "the demo upstream"
	i=$((i + 1))
	if [ $i -gt 50 ]; then $BIN status --admin-listen "$ADMIN"; exit 1; fi
	sleep 0.2
done
sleep 0.3 # a proxy that lost a port race exits within milliseconds
kill -0 "$proxy_pid" 2>/dev/null || not_started pgbapi-proxy
kill -0 "$up_pid" 2>/dev/null || not_started "the demo upstream"

cat <<MSG

pgbapi-proxy is serving https://localhost:$PORT in front of a demo pg-backup-api.
Try it:

  curl --cacert $DEMO/tpa/root.crt --cert $DEMO/tpa/pg-backup-user.crt --key $DEMO/tpa/pg-backup-user.key https://localhost:$PORT/diagnose

Without --cert and --key the handshake is refused. Metrics: http://$ADMIN/metrics
Readiness: $BIN status --admin-listen $ADMIN
Press Ctrl-C to stop.
MSG
wait
