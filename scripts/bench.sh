#!/bin/bash
# make bench: pgbapi-proxy against nginx (when installed), same machine,
# same run. The proxy under test is pinned to CPU 0; the load generator and
# the stand-in upstream to CPU 1. The figure that counts is requests per
# CPU-second of the proxy (its utime+stime from /proc), since on 2 cores
# the load generator saturates first. Also peak RSS (VmHWM).
#
# BENCH_QUICK=1 for a short run. Results go to bench-results/, and the
# path is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/pgbapi-proxy}
GEN=${GEN:-bin/pgbapi-bench}
UP=${UP:-bin/demo-upstream}
DUR=${BENCH_DURATION:-10s}
[ "${BENCH_QUICK:-}" = 1 ] && DUR=3s
CONNS=${BENCH_CONNECTIONS:-32}
HS_CONNS=${BENCH_HANDSHAKE_CONNECTIONS:-8}
# warn: the proxy writes no access line, as nginx with access_log off.
# BENCH_LOG_LEVEL=info measures with its (batched) access log on.
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
CPU_PROXY=${CPU_PROXY:-0}
CPU_LOAD=${CPU_LOAD:-1}
TICK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/pgbapi-bench.XXXXXX)
mkdir -p bench-results
OUT=bench-results/bench-$(date -u +%Y%m%dT%H%M%SZ).txt
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

log() { echo "$@" | tee -a "$OUT"; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on now, from the
# kernel (bind to port 0), so that make bench runs next to anything else.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
UP_KA=$(free_port) UP_CLOSE=$(free_port) P_TLS=$(free_port) P_ADMIN=$(free_port) N_TLS=$(free_port)

# cpu_ticks PID...: utime+stime of the processes, in clock ticks.
cpu_ticks() {
	local sum=0 p
	for p in "$@"; do
		# fields 14 and 15 of /proc/PID/stat, after the ")" of the name
		set -- $(sed 's/^.*) //' "/proc/$p/stat")
		sum=$((sum + ${12} + ${13}))
	done
	echo $sum
}
hwm_kb() { local sum=0 p; for p in "$@"; do sum=$((sum + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done; echo $sum; }

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }

# measure NAME PIDS URL MODE CONNS PKI: one case, one line of results.
measure() {
	local name=$1 pids_m=$2 url=$3 mode=$4 conns=$5 pki=$6
	local before after json rps req cpu per
	before=$(cpu_ticks $pids_m)
	json=$(taskset -c "$CPU_LOAD" "$GEN" --url "$url" --mode "$mode" --connections "$conns" --duration "$DUR" \
		--cert "$pki/tpa/pg-backup-user.crt" --key "$pki/tpa/pg-backup-user.key" --cacert "$pki/tpa/root.crt" \
		--server-name localhost --label "$name" | tail -n 1)
	after=$(cpu_ticks $pids_m)
	req=$(echo "$json" | sed 's/.*"requests":\([0-9]*\).*/\1/')
	rps=$(echo "$json" | sed 's/.*"rps":\([0-9.]*\).*/\1/')
	errs=$(echo "$json" | sed 's/.*"errors":\([0-9]*\).*/\1/')
	p99=$(echo "$json" | sed 's/.*"p99_ms":\([0-9.]*\).*/\1/')
	cpu=$(awk -v a="$after" -v b="$before" -v t="$TICK" 'BEGIN { printf "%.2f", (a - b) / t }')
	per=$(awk -v r="$req" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", r / c; else print 0 }')
	printf "%-44s %9.0f req/s %8s errors  p99 %7s ms  %6s CPU-s  %8s req/CPU-s\n" "$name" "$rps" "$errs" "$p99" "$cpu" "$per" | tee -a "$OUT" >&2
	echo "$per"
}

"$UP" --help >/dev/null 2>&1 || true
for kt in ecdsa-p256 rsa-2048; do
	"$BIN" init --tpa-dir "$WORK/$kt/tpa" --state-dir "$WORK/$kt/state" --cluster-name bench --hostname localhost --ip 127.0.0.1 --key-type "$kt" --no-system-trust >/dev/null
done

# Stand-in upstreams on CPU 1: keep-alive (fast) and Connection: close (as pg-backup-api).
taskset -c "$CPU_LOAD" "$UP" --listen 127.0.0.1:$UP_KA --keepalive --diagnose-bytes 40960 2>/dev/null & pids+=($!)
taskset -c "$CPU_LOAD" "$UP" --listen 127.0.0.1:$UP_CLOSE --diagnose-bytes 40960 2>/dev/null & pids+=($!)
wait_port $UP_KA; wait_port $UP_CLOSE

NGINX=$(command -v nginx || true)
log "# pgbapi-proxy bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
NGINX_VERSION="not installed"
[ -n "$NGINX" ] && NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*: //')
log "# $("$BIN" version); nginx: $NGINX_VERSION; duration $DUR per case; pgbapi-proxy --log-level $LOG_LEVEL, nginx access_log off; proxy on CPU $CPU_PROXY, load and upstream on CPU $CPU_LOAD"
log ""

declare -A RES
for kt in ecdsa-p256 rsa-2048; do
	pki="$WORK/$kt"
	# pgbapi-proxy
	taskset -c "$CPU_PROXY" "$BIN" serve --tpa-dir "$pki/tpa" --state-dir "$pki/state" --listen 127.0.0.1:$P_TLS \
		--admin-listen 127.0.0.1:$P_ADMIN --upstream http://127.0.0.1:$UP_KA --access-file= --log-level "$LOG_LEVEL" 2>"$WORK/proxy-$kt.log" & ppid=$!
	pids+=($ppid)
	wait_port $P_TLS
	if [ "$kt" = ecdsa-p256 ]; then
		RES[p,ka]=$(measure "pgbapi-proxy keep-alive /status" "$ppid" https://localhost:$P_TLS/status keepalive "$CONNS" "$pki")
		RES[p,big]=$(measure "pgbapi-proxy keep-alive 40KB /diagnose" "$ppid" https://localhost:$P_TLS/diagnose keepalive "$CONNS" "$pki")
	fi
	RES[p,hs,$kt]=$(measure "pgbapi-proxy handshake $kt" "$ppid" https://localhost:$P_TLS/status handshake "$HS_CONNS" "$pki")
	RES[p,hwm,$kt]=$(hwm_kb $ppid)
	kill $ppid; wait $ppid 2>/dev/null || true
	if [ "$kt" = ecdsa-p256 ]; then
		taskset -c "$CPU_PROXY" "$BIN" serve --tpa-dir "$pki/tpa" --state-dir "$pki/state" --listen 127.0.0.1:$P_TLS \
			--admin-listen 127.0.0.1:$P_ADMIN --upstream http://127.0.0.1:$UP_CLOSE --access-file= --log-level "$LOG_LEVEL" 2>>"$WORK/proxy-$kt.log" & ppid=$!
		pids+=($ppid)
		wait_port $P_TLS
		RES[p,close]=$(measure "pgbapi-proxy keep-alive, upstream closes" "$ppid" https://localhost:$P_TLS/status keepalive "$CONNS" "$pki")
		kill $ppid; wait $ppid 2>/dev/null || true
	fi

	[ -n "$NGINX" ] || continue
	nd="$WORK/nginx-$kt"
	mkdir -p "$nd/logs"
	cat >"$nd/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $nd/nginx.pid;
error_log $nd/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $nd/body; proxy_temp_path $nd/proxy; fastcgi_temp_path $nd/fastcgi;
	uwsgi_temp_path $nd/uwsgi; scgi_temp_path $nd/scgi;
	upstream api_keepalive { server 127.0.0.1:$UP_KA; keepalive 64; }
	upstream api_close { server 127.0.0.1:$UP_CLOSE; keepalive 64; }
	server {
		listen 127.0.0.1:$N_TLS ssl;
		ssl_certificate $pki/tpa/pg-backup-api.crt;
		ssl_certificate_key $pki/tpa/pg-backup-api.key;
		ssl_client_certificate $pki/tpa/root.crt;
		ssl_verify_client on;
		ssl_protocols TLSv1.2 TLSv1.3;
		location /close/ { proxy_pass http://api_close/; proxy_http_version 1.1; proxy_set_header Connection ""; }
		location / { proxy_pass http://api_keepalive; proxy_http_version 1.1; proxy_set_header Connection ""; }
	}
}
CONF
	taskset -c "$CPU_PROXY" "$NGINX" -p "$nd" -c "$nd/nginx.conf" 2>>"$nd/logs/error.log" & npid=$!
	pids+=($npid)
	wait_port $N_TLS
	worker=$(pgrep -P $npid | head -n1)
	if [ "$kt" = ecdsa-p256 ]; then
		RES[n,ka]=$(measure "nginx keep-alive /status" "$npid $worker" https://localhost:$N_TLS/status keepalive "$CONNS" "$pki")
		RES[n,big]=$(measure "nginx keep-alive 40KB /diagnose" "$npid $worker" https://localhost:$N_TLS/diagnose keepalive "$CONNS" "$pki")
		RES[n,close]=$(measure "nginx keep-alive, upstream closes" "$npid $worker" https://localhost:$N_TLS/close/status keepalive "$CONNS" "$pki")
	fi
	RES[n,hs,$kt]=$(measure "nginx handshake $kt" "$npid $worker" https://localhost:$N_TLS/status handshake "$HS_CONNS" "$pki")
	RES[n,hwm,$kt]=$(hwm_kb $npid $worker)
	kill $npid; wait $npid 2>/dev/null || true
done

ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
log ""
log "requests per CPU-second of the proxy (higher is better); ratio = pgbapi-proxy / nginx"
log "$(printf '%-34s %14s %14s %8s' case pgbapi-proxy nginx ratio)"
for c in ka:keep-alive\ GET\ /status big:keep-alive\ GET\ 40KB\ JSON close:keep-alive,\ upstream\ closes hs,ecdsa-p256:handshake\ ECDSA\ P-256 hs,rsa-2048:handshake\ RSA\ 2048; do
	k=${c%%:*}; name=${c#*:}
	log "$(printf '%-34s %14s %14s %8s' "$name" "${RES[p,$k]:-}" "${RES[n,$k]:--}" "$(ratio "${RES[p,$k]:-}" "${RES[n,$k]:-}")")"
done
log "$(printf '%-34s %11s kB %11s kB %8s' 'peak RSS (VmHWM), ECDSA run' "${RES[p,hwm,ecdsa-p256]}" "${RES[n,hwm,ecdsa-p256]:--}" "$(ratio "${RES[p,hwm,ecdsa-p256]}" "${RES[n,hwm,ecdsa-p256]:-}")")"
log "$(printf '%-34s %11s kB %11s kB %8s' 'peak RSS (VmHWM), RSA run' "${RES[p,hwm,rsa-2048]}" "${RES[n,hwm,rsa-2048]:--}" "$(ratio "${RES[p,hwm,rsa-2048]}" "${RES[n,hwm,rsa-2048]:-}")")"
echo
echo "results: $OUT"
