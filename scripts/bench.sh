#!/bin/bash
# make bench: pgbapi-proxy against nginx and HAProxy (when installed), same
# machine, same run. The proxy under test is pinned to CPU 0; the load
# generator and the stand-in upstreams to CPU 1. The figure that counts is
# requests per CPU-second of the proxy (its utime+stime from /proc), since
# on 2 cores the load generator saturates first. Also peak RSS (VmHWM), and
# the latency pgbapi-proxy adds in front of a slow, one-at-a-time upstream.
#
# BENCH_QUICK=1 for a short run; BENCH_PROFILE=1 also saves a CPU profile
# of pgbapi-proxy per case. Results go to bench-results/, and the path is
# printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/pgbapi-proxy}
GEN=${GEN:-bin/pgbapi-bench}
UP=${UP:-bin/demo-upstream}
DUR=${BENCH_DURATION:-10s}
[ "${BENCH_QUICK:-}" = 1 ] && DUR=3s
CONNS=${BENCH_CONNECTIONS:-32}
HS_CONNS=${BENCH_HANDSHAKE_CONNECTIONS:-8}
# info: pgbapi-proxy writes its (batched) access log, as in production;
# BENCH_LOG_LEVEL=warn measures it without (nginx and HAProxy log nothing).
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
CPU_PROXY=${CPU_PROXY:-0}
CPU_LOAD=${CPU_LOAD:-1}
TICK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/pgbapi-bench.XXXXXX)
mkdir -p bench-results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench-results/bench-$STAMP.txt
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

log() { echo "$@" | tee -a "$OUT"; }

# free_ports N: N distinct free TCP ports on 127.0.0.1, one a line (bound
# to :0 by the kernel, then let go).
free_ports() { "$GEN" --free-ports "$1"; }

# cpu_ticks PID...: "UTIME STIME" of the processes, in clock ticks.
cpu_ticks() {
	local usr=0 sys=0 p
	for p in "$@"; do
		# fields 14 and 15 of /proc/PID/stat, after the ")" of the name
		set -- $(sed 's/^.*) //' "/proc/$p/stat")
		usr=$((usr + ${12})) sys=$((sys + ${13}))
	done
	echo "$usr $sys"
}
hwm_kb() { local sum=0 p; for p in "$@"; do sum=$((sum + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done; echo $sum; }

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }

json_field() { echo "$1" | sed "s/.*\"$2\":\([0-9.]*\).*/\1/"; }

# bench_json URL MODE CONNS PKI LABEL: run the load generator, print its
# JSON line. MODE handshake-rsa-only is a handshake per request from a
# client that offers only TLS 1.2 ECDHE-RSA suites; handshake-classical
# from a client that offers no post-quantum hybrid key exchange.
bench_json() {
	local url=$1 mode=$2 conns=$3 pki=$4 label=$5 extra=
	[ "$mode" = handshake-rsa-only ] && mode=handshake extra=--rsa-only
	[ "$mode" = handshake-classical ] && mode=handshake extra=--classical-kex
	taskset -c "$CPU_LOAD" "$GEN" --url "$url" --mode "$mode" $extra --connections "$conns" --duration "$DUR" \
		--cert "$pki/tpa/pg-backup-user.crt" --key "$pki/tpa/pg-backup-user.key" --cacert "$pki/tpa/root.crt" \
		--server-name localhost --label "$label" | tail -n 1
}

# measure NAME PIDS URL MODE CONNS PKI [PPROF_ADDR]: one case, one line of
# results; prints requests per CPU-second of PIDS.
measure() {
	local name=$1 pids_m=$2 url=$3 mode=$4 conns=$5 pki=$6 pprof=${7:-}
	local before after json rps req cpu per errs p99 prof_pid=
	if [ -n "$pprof" ] && [ "${BENCH_PROFILE:-}" = 1 ]; then
		curl -s -o "bench-results/profile-$STAMP-${name//[^a-zA-Z0-9-]/_}.pb.gz" \
			"http://$pprof/debug/pprof/profile?seconds=$(( ${DUR%s} > 3 ? ${DUR%s} - 2 : 1 ))" & prof_pid=$!
	fi
	before=$(cpu_ticks $pids_m)
	json=$(bench_json "$url" "$mode" "$conns" "$pki" "$name")
	after=$(cpu_ticks $pids_m)
	[ -n "$prof_pid" ] && wait "$prof_pid"
	req=$(json_field "$json" requests)
	rps=$(json_field "$json" rps)
	errs=$(json_field "$json" errors)
	p99=$(json_field "$json" p99_ms)
	set -- $before $after
	cpu=$(awk -v a="$(($3 + $4))" -v b="$(($1 + $2))" -v t="$TICK" 'BEGIN { printf "%.2f", (a - b) / t }')
	per=$(awk -v r="$req" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", r / c; else print 0 }')
	# CPU per request in microseconds, user space and kernel (system calls,
	# including the loopback TCP work done inside them).
	us=$(awk -v r="$req" -v u="$(($3 - $1))" -v s="$(($4 - $2))" -v t="$TICK" 'BEGIN { if (r > 0) printf "%5.1f usr %5.1f sys us/req", u / t / r * 1e6, s / t / r * 1e6; else print "-" }')
	printf "%-46s %9.0f req/s %8s errors  p99 %7s ms  %6s CPU-s  %8s req/CPU-s  %s\n" "$name" "$rps" "$errs" "$p99" "$cpu" "$per" "$us" | tee -a "$OUT" >&2
	echo "$per"
}

"$UP" --help >/dev/null 2>&1 || true
for kt in ecdsa-p256 rsa-2048; do
	"$BIN" init --tpa-dir "$WORK/$kt/tpa" --state-dir "$WORK/$kt/state" --cluster-name bench --hostname localhost --ip 127.0.0.1 \
		--key-type "$kt" --no-system-trust >/dev/null
done

mapfile -t PORTS < <(free_ports 8)
UP_KA=${PORTS[0]} UP_CLOSE=${PORTS[1]} UP_SLOW=${PORTS[2]} P_TLS=${PORTS[3]} P_ADMIN=${PORTS[4]} N_TLS=${PORTS[5]} H_TLS=${PORTS[6]}

# Stand-in upstreams on CPU 1: keep-alive (fast), Connection: close (as
# pg-backup-api), and slow, one request at a time, closing (as
# pg-backup-api under gunicorn's single worker running a Barman command).
taskset -c "$CPU_LOAD" "$UP" --listen 127.0.0.1:$UP_KA --keepalive --diagnose-bytes 40960 2>/dev/null & pids+=($!)
taskset -c "$CPU_LOAD" "$UP" --listen 127.0.0.1:$UP_CLOSE --diagnose-bytes 40960 2>/dev/null & pids+=($!)
taskset -c "$CPU_LOAD" "$UP" --listen 127.0.0.1:$UP_SLOW --delay 300ms --delay-path /diagnose --one-at-a-time 2>/dev/null & pids+=($!)
wait_port $UP_KA; wait_port $UP_CLOSE; wait_port $UP_SLOW

NGINX=$(command -v nginx || true)
HAPROXY=$(command -v haproxy || true)
NGINX_VERSION="not installed"; HAPROXY_VERSION="not installed"
[ -n "$NGINX" ] && NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*: //')
[ -n "$HAPROXY" ] && HAPROXY_VERSION=$("$HAPROXY" -v 2>&1 | head -n1 | awk '{print $3}')
log "# pgbapi-proxy bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
log "# $("$BIN" version); nginx: $NGINX_VERSION; HAProxy: $HAPROXY_VERSION; duration $DUR per case; proxy on CPU $CPU_PROXY, load and upstream on CPU $CPU_LOAD"
log "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
log ""

# start_pgbapi PKI UPSTREAM_PORT LOG [FLAGS...]: serve at $LOG_LEVEL (info:
# access log on, batched, to LOG), no rules file; sets ppid.
start_pgbapi() {
	local pki=$1 upport=$2 logf=$3
	shift 3
	taskset -c "$CPU_PROXY" "$BIN" serve --tpa-dir "$pki/tpa" --state-dir "$pki/state" --listen 127.0.0.1:$P_TLS \
		--admin-listen 127.0.0.1:$P_ADMIN --upstream http://127.0.0.1:$upport --access-file= --log-level "$LOG_LEVEL" --admin-pprof "$@" 2>>"$logf" & ppid=$!
	pids+=($ppid)
	wait_port $P_TLS
}

declare -A RES
CASES="ka big close hs"
for kt in ecdsa-p256 rsa-2048; do
	pki="$WORK/$kt"
	# pgbapi-proxy, without the in-flight limit (nginx and HAProxy have none).
	start_pgbapi "$pki" $UP_KA "$WORK/proxy-$kt.log" --upstream-max-inflight 0
	RES[p,ka,$kt]=$(measure "pgbapi-proxy $kt keep-alive /status" "$ppid" https://localhost:$P_TLS/status keepalive "$CONNS" "$pki" 127.0.0.1:$P_ADMIN)
	RES[p,big,$kt]=$(measure "pgbapi-proxy $kt keep-alive 40KB /diagnose" "$ppid" https://localhost:$P_TLS/diagnose keepalive "$CONNS" "$pki" 127.0.0.1:$P_ADMIN)
	RES[p,hs,$kt]=$(measure "pgbapi-proxy $kt handshake" "$ppid" https://localhost:$P_TLS/status handshake "$HS_CONNS" "$pki" 127.0.0.1:$P_ADMIN)
	[ "$kt" = rsa-2048 ] && RES[p,hsrsa,$kt]=$(measure "pgbapi-proxy $kt handshake, RSA-only client" "$ppid" https://localhost:$P_TLS/status handshake-rsa-only "$HS_CONNS" "$pki" 127.0.0.1:$P_ADMIN)
	[ "$kt" = ecdsa-p256 ] && RES[p,hsclassic,$kt]=$(measure "pgbapi-proxy $kt handshake, classical key exchange" "$ppid" https://localhost:$P_TLS/status handshake-classical "$HS_CONNS" "$pki" 127.0.0.1:$P_ADMIN)
	hwm1=$(hwm_kb $ppid)
	kill $ppid; wait $ppid 2>/dev/null || true
	start_pgbapi "$pki" $UP_CLOSE "$WORK/proxy-$kt.log" --upstream-max-inflight 0
	RES[p,close,$kt]=$(measure "pgbapi-proxy $kt keep-alive, upstream closes" "$ppid" https://localhost:$P_TLS/status keepalive "$CONNS" "$pki" 127.0.0.1:$P_ADMIN)
	hwm2=$(hwm_kb $ppid)
	RES[p,hwm,$kt]=$((hwm1 > hwm2 ? hwm1 : hwm2))
	kill $ppid; wait $ppid 2>/dev/null || true
	RES[p,loglines,$kt]=$(grep -c 'msg=request' "$WORK/proxy-$kt.log" || true)

	if [ -n "$NGINX" ]; then
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
		RES[n,ka,$kt]=$(measure "nginx $kt keep-alive /status" "$npid $worker" https://localhost:$N_TLS/status keepalive "$CONNS" "$pki")
		RES[n,big,$kt]=$(measure "nginx $kt keep-alive 40KB /diagnose" "$npid $worker" https://localhost:$N_TLS/diagnose keepalive "$CONNS" "$pki")
		RES[n,close,$kt]=$(measure "nginx $kt keep-alive, upstream closes" "$npid $worker" https://localhost:$N_TLS/close/status keepalive "$CONNS" "$pki")
		RES[n,hs,$kt]=$(measure "nginx $kt handshake" "$npid $worker" https://localhost:$N_TLS/status handshake "$HS_CONNS" "$pki")
		[ "$kt" = rsa-2048 ] && RES[n,hsrsa,$kt]=$(measure "nginx $kt handshake, RSA-only client" "$npid $worker" https://localhost:$N_TLS/status handshake-rsa-only "$HS_CONNS" "$pki")
		[ "$kt" = ecdsa-p256 ] && RES[n,hsclassic,$kt]=$(measure "nginx $kt handshake, classical key exchange" "$npid $worker" https://localhost:$N_TLS/status handshake-classical "$HS_CONNS" "$pki")
		RES[n,hwm,$kt]=$(hwm_kb $npid $worker)
		kill $npid; wait $npid 2>/dev/null || true
	fi

	if [ -n "$HAPROXY" ]; then
		hd="$WORK/haproxy-$kt"
		mkdir -p "$hd"
		cat "$pki/tpa/pg-backup-api.crt" "$pki/tpa/pg-backup-api.key" >"$hd/server.pem"
		cat >"$hd/haproxy.cfg" <<CONF
global
	nbthread 1
	maxconn 4096
	ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 120s
	http-reuse always
frontend tls
	bind 127.0.0.1:$H_TLS ssl crt $hd/server.pem ca-file $pki/tpa/root.crt verify required
	use_backend api_close if { path_beg /close/ }
	default_backend api_keepalive
backend api_keepalive
	server up 127.0.0.1:$UP_KA
backend api_close
	http-request set-path %[path,regsub(^/close/,/)]
	server up 127.0.0.1:$UP_CLOSE
CONF
		taskset -c "$CPU_PROXY" "$HAPROXY" -db -f "$hd/haproxy.cfg" >"$hd/log" 2>&1 & hpid=$!
		pids+=($hpid)
		wait_port $H_TLS
		RES[h,ka,$kt]=$(measure "HAProxy $kt keep-alive /status" "$hpid" https://localhost:$H_TLS/status keepalive "$CONNS" "$pki")
		RES[h,big,$kt]=$(measure "HAProxy $kt keep-alive 40KB /diagnose" "$hpid" https://localhost:$H_TLS/diagnose keepalive "$CONNS" "$pki")
		RES[h,close,$kt]=$(measure "HAProxy $kt keep-alive, upstream closes" "$hpid" https://localhost:$H_TLS/close/status keepalive "$CONNS" "$pki")
		RES[h,hs,$kt]=$(measure "HAProxy $kt handshake" "$hpid" https://localhost:$H_TLS/status handshake "$HS_CONNS" "$pki")
		[ "$kt" = rsa-2048 ] && RES[h,hsrsa,$kt]=$(measure "HAProxy $kt handshake, RSA-only client" "$hpid" https://localhost:$H_TLS/status handshake-rsa-only "$HS_CONNS" "$pki")
		[ "$kt" = ecdsa-p256 ] && RES[h,hsclassic,$kt]=$(measure "HAProxy $kt handshake, classical key exchange" "$hpid" https://localhost:$H_TLS/status handshake-classical "$HS_CONNS" "$pki")
		RES[h,hwm,$kt]=$(hwm_kb $hpid)
		kill $hpid; wait $hpid 2>/dev/null || true
	fi
done

# Added latency: one client, one request at a time, against the slow
# upstream (300 ms per /diagnose, one at a time), directly and through
# pgbapi-proxy in its default configuration (--upstream-max-inflight 1).
pki="$WORK/ecdsa-p256"
direct=$(taskset -c "$CPU_LOAD" "$GEN" --url http://127.0.0.1:$UP_SLOW/diagnose --mode keepalive --connections 1 --duration "$DUR" --label direct | tail -n 1)
start_pgbapi "$pki" $UP_SLOW "$WORK/proxy-latency.log"
proxied=$(bench_json https://localhost:$P_TLS/diagnose keepalive 1 "$pki" proxied)
kill $ppid; wait $ppid 2>/dev/null || true

ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }'; }
log ""
log "requests per CPU-second of the proxy (higher is better); ratios relative to nginx in this run"
log "$(printf '%-38s %12s %10s %10s %9s %9s' case pgbapi-proxy HAProxy nginx pgbapi/ng HAP/ng)"
for kt in ecdsa-p256 rsa-2048; do
	for c in ka:keep-alive\ GET\ /status big:keep-alive\ GET\ 40KB\ JSON close:keep-alive,\ upstream\ closes hs:new\ handshake\ per\ request hsclassic:handshake,\ classical\ KEX\ client hsrsa:handshake,\ RSA-only\ client; do
		k=${c%%:*}; name="${c#*:} ($kt)"
		[ "$k" = hsrsa ] && [ "$kt" != rsa-2048 ] && continue
		[ "$k" = hsclassic ] && [ "$kt" != ecdsa-p256 ] && continue
		p=${RES[p,$k,$kt]:-}; h=${RES[h,$k,$kt]:-}; n=${RES[n,$k,$kt]:-}
		log "$(printf '%-38s %12s %10s %10s %9s %9s' "$name" "$p" "${h:--}" "${n:--}" "$(ratio "$p" "$n")" "$(ratio "$h" "$n")")"
	done
	p=${RES[p,hwm,$kt]:-}; h=${RES[h,hwm,$kt]:-}; n=${RES[n,hwm,$kt]:-}
	log "$(printf '%-38s %9s kB %7s kB %7s kB %9s %9s' "peak RSS (VmHWM), $kt run" "$p" "${h:--}" "${n:--}" "$(ratio "$p" "$n")" "$(ratio "$h" "$n")")"
done
log "(rsa-2048 run: pgbapi-proxy also holds an ECDSA P-256 companion certificate and serves it to clients that support ECDSA, as the load generator does; nginx and HAProxy serve the RSA certificate only. The RSA-only client offers TLS 1.2 ECDHE-RSA suites only, so every proxy signs with RSA. The classical-KEX client offers X25519 and P-256 only: Go's default client and server agree on the X25519MLKEM768 hybrid, which nginx 1.22 and HAProxy 2.6 with OpenSSL 3.0 cannot, so among the ECDSA handshake rows only that one compares like with like)"
log "(pgbapi-proxy: --upstream-max-inflight 0, --log-level $LOG_LEVEL: ${RES[p,loglines,ecdsa-p256]:-0} + ${RES[p,loglines,rsa-2048]:-0} access log lines written; nginx and HAProxy: no access log)"
log ""
log "added latency, one client, /diagnose from an upstream taking 300 ms, one request at a time (pgbapi-proxy defaults: --upstream-max-inflight 1)"
dp50=$(json_field "$direct" p50_ms); dp99=$(json_field "$direct" p99_ms); pp50=$(json_field "$proxied" p50_ms); pp99=$(json_field "$proxied" p99_ms)
log "$(printf '%-14s %10s %10s %10s' '' 'p50 ms' 'p99 ms' requests)"
log "$(printf '%-14s %10s %10s %10s' direct "$dp50" "$dp99" "$(json_field "$direct" requests)")"
log "$(printf '%-14s %10s %10s %10s' pgbapi-proxy "$pp50" "$pp99" "$(json_field "$proxied" requests)")"
log "$(printf '%-14s %10s %10s' added "$(awk -v a="$pp50" -v b="$dp50" 'BEGIN{printf "%.2f", a-b}')" "$(awk -v a="$pp99" -v b="$dp99" 'BEGIN{printf "%.2f", a-b}')")"
log "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "results: $OUT"
