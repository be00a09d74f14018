#!/usr/bin/env bash
# The multi-process cluster scale run (issue 10): a nats-server with
# JetStream and NODES gateway processes joined through it, loaded by one
# `subgate bench -scenario broadcast` spread over the nodes, PER_NODE
# connections on each, a third in each encoding. It reports delivery
# latency and rate, the RSS of the gateways and of nats-server (read while
# every connection is up), and fails unless every broadcast reached every
# connection (errors and lost 0).
#
#   SUBGATE_SCALE=1 bench/cluster/run.sh   # the full run: 5 nodes x 19,000
#   bench/cluster/run.sh                   # the short version (.ci/run)
#
# Settings (environment): NODES, PER_NODE, DURATION (the measured window,
# in seconds: 60s), RATE (broadcasts per second, an open loop), SENDERS,
# DIAL_RATE (handshakes per second while ramping up), PER_PROC (most
# connections one client process holds), SOURCE_IPS, PROFILE (a file: the
# first node's CPU profile over the first 20 s of the window is written
# there), LOG_LEVEL of the nodes (warn), LOGS (a directory the logs are
# copied to at exit). Everything runs on 127.0.0.1; only the processes
# started here are stopped, on any exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ "${SUBGATE_SCALE:-}" == 1 ]]; then
	NODES=${NODES:-5} PER_NODE=${PER_NODE:-19000} DURATION=${DURATION:-60s} RATE=${RATE:-0.1}
else
	NODES=${NODES:-2} PER_NODE=${PER_NODE:-1000} DURATION=${DURATION:-3s} RATE=${RATE:-10}
fi
SENDERS=${SENDERS:-1}
DIAL_RATE=${DIAL_RATE:-2000}
PER_PROC=${PER_PROC:-19000} # below the 20,000 open files of one process
SUBS=$((NODES * PER_NODE))
PROCS=$(((SUBS + PER_PROC - 1) / PER_PROC))
# A connection from a chosen source address binds its port before
# connecting, so each address has the ephemeral range once for all nodes:
# 5,000 connections per address leave room for sockets still in TIME_WAIT.
SOURCE_IPS=${SOURCE_IPS:-$(((SUBS + 4999) / 5000))}
ulimit -n "$(ulimit -Hn)" # inherited by every process started here
FILES=$(ulimit -n)
if [[ $FILES != unlimited ]] && ((FILES < PER_NODE + 100 || FILES < PER_PROC + 100)); then
	echo "cluster run: $FILES open files per process is too few for $PER_NODE connections per node and $PER_PROC per client process (+100)" >&2
	exit 1
fi
read -r PORT_LO PORT_HI </proc/sys/net/ipv4/ip_local_port_range
if (((SUBS + SOURCE_IPS - 1) / SOURCE_IPS > PORT_HI - PORT_LO + 1)); then
	echo "cluster run: $SUBS connections from $SOURCE_IPS source addresses need more than the $((PORT_HI - PORT_LO + 1)) ephemeral ports of each" >&2
	exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cluster-scale-run.XXXXXX")
PIDS=() # every process started here, stopped in reverse order on exit

cleanup() {
	local rc=$? pid i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]}
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 1 150); do # 15 s
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if ((rc != 0)); then
		echo "cluster run failed (exit $rc); logs:" >&2
		for f in "$WORK"/*.log "$WORK"/bench.err; do
			[[ -f $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
		done
	fi
	[[ -z ${LOGS:-} ]] || { mkdir -p "$LOGS" && cp "$WORK"/*.log "$WORK"/bench.* "$LOGS"/ 2>/dev/null || true; }
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "cluster run: $*" >&2
	exit 1
}

# free_port prints a loopback port nothing listens on, below the ephemeral
# range (so that no client socket of the run can hold it).
USED_PORTS=" "
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 12000))
		[[ $USED_PORTS == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			USED_PORTS+="$p "
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# await_ok waits (at most 30 s) until URL answers 200.
await_ok() {
	for _ in $(seq 1 300); do
		curl -fs -o /dev/null --max-time 1 "$1" && return
		sleep 0.1
	done
	die "$1 did not answer 200 within 30 s"
}

# cpu_ticks prints the CPU time (user and system, in clock ticks) of the
# processes given, or "?" when one has ended.
cpu_ticks() {
	local pid sum=0 n
	for pid in "$@"; do
		n=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || { echo "?"; return; }
		sum=$((sum + n))
	done
	echo "$sum"
}

# marks counts the bench's lines "$1" so far.
marks() {
	local n
	[[ -f $WORK/bench.err ]] || { ls -la "$WORK" >&2; die "$WORK/bench.err is gone (removed by someone else?)"; }
	n=$(grep -c "$1" "$WORK/bench.err" || true)
	echo "${n:-0}"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# descendants prints the PIDs of every process below $1.
descendants() {
	local c
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		echo "$c"
		descendants "$c"
	done
}

# metric prints the sum of a metric's series on the node at port $1; a
# loaded node may be slow to answer: three tries of 20 s.
metric() {
	local out
	for _ in 1 2 3; do
		if out=$(curl -fs --max-time 20 "http://127.0.0.1:$1/metrics"); then
			awk -v m="$2" '$1 ~ "^" m "({|$)" { s += $2 } END { printf "%d", s }' <<<"$out"
			return
		fi
	done
	return 1
}

# metric_sum prints the sum of a metric's series over every node, or "?"
# when a node does not answer.
metric_sum() {
	local port sum=0 n
	for port in "${PORTS[@]}"; do
		n=$(metric "$port" "$1") || { echo "?"; return; }
		sum=$((sum + n))
	done
	echo "$sum"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

# field prints a number of the bench's JSON line.
field() { grep -o "\"$1\":[0-9.e+-]*" "$WORK/bench.json" | head -n1 | cut -d: -f2; }

BIN=$WORK/bin
echo "== building subgate and nats-server (the version go.mod pins)"
go build -o "$BIN/subgate" ./cmd/subgate
go build -o "$BIN/nats-server" github.com/nats-io/nats-server/v2
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

NATS_PORT=$(free_port)
NATS_MON=$(free_port)
"$BIN/nats-server" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON" -js -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
PIDS+=("$NATS_PID")
await_ok "http://127.0.0.1:$NATS_MON/healthz"

PORTS=() NODE_PIDS=() URLS=""
PPROF_ADDR=""
[[ -z ${PROFILE:-} ]] || PPROF_ADDR=127.0.0.1:$(free_port)
for i in $(seq 0 $((NODES - 1))); do
	port=$(free_port)
	PPROF=()
	[[ $i != 0 || -z $PPROF_ADDR ]] || PPROF=(-pprof-addr "$PPROF_ADDR")
	"$BIN/subgate" serve "${PPROF[@]}" -addr "127.0.0.1:$port" -nats "nats://127.0.0.1:$NATS_PORT" \
		-max-conns $((PER_NODE + 64)) -max-conns-per-ip $((PER_NODE + 64)) -rate inf \
		-log-level "${LOG_LEVEL:-warn}" >"$WORK/node$i.log" 2>&1 &
	PIDS+=("$!")
	NODE_PIDS+=("$!")
	PORTS+=("$port")
	URLS+="${URLS:+,}ws://127.0.0.1:$port"
done
for port in "${PORTS[@]}"; do
	await_ok "http://127.0.0.1:$port/readyz"
done
echo "== $NODES nodes ready on ports ${PORTS[*]}, nats-server on $NATS_PORT"

BENCH_ARGS=(-url "$URLS" -scenario broadcast -proto all -subs "$SUBS" -senders "$SENDERS"
	-rate "$RATE" -duration "$DURATION" -procs "$PROCS" -source-ips "$SOURCE_IPS" -dial-rate "$DIAL_RATE")
RAMP=$((SUBS / DIAL_RATE + 60))
timeout --kill-after=10s $((RAMP + ${DURATION%s} + 240)) "$BIN/subgate" bench "${BENCH_ARGS[@]}" -json -marks \
	>"$WORK/bench.json" 2>"$WORK/bench.err" &
BENCH_PID=$!
PIDS+=("$BENCH_PID")
echo "== subgate bench ${BENCH_ARGS[*]}"

# Every client process prints "window start" once its share is up and all
# the others are too; the sample is taken a little into the window.
for ((t = 0; ; t++)); do
	(($(marks "window start") >= PROCS)) && break
	kill -0 "$BENCH_PID" 2>/dev/null || die "the bench ended before its window"
	((t < RAMP * 10)) || die "connections not up within ${RAMP}s"
	sleep 0.1
done
if [[ -n ${PROFILE:-} ]]; then
	curl -fs --max-time 60 -o "$PROFILE" "http://$PPROF_ADDR/debug/pprof/profile?seconds=20" &
	PIDS+=("$!")
fi
T0=$(date +%s.%N)
CLIENT_PIDS=$(descendants "$BENCH_PID")
# shellcheck disable=SC2086 # a list of PIDs
CPU0=("$(cpu_ticks "${NODE_PIDS[@]}")" "$(cpu_ticks $CLIENT_PIDS)" "$(cpu_ticks "$NATS_PID")")
sleep 1
GW_RSS=0 PER_NODE_RSS=()
for pid in "${NODE_PIDS[@]}"; do
	k=$(rss_kib "$pid")
	GW_RSS=$((GW_RSS + k))
	PER_NODE_RSS+=("$(mib "$k")")
done
NATS_RSS=$(rss_kib "$NATS_PID")
CLIENT_RSS=0
for pid in $CLIENT_PIDS; do
	CLIENT_RSS=$((CLIENT_RSS + $(rss_kib "$pid" 2>/dev/null || echo 0)))
done
UP=$(metric_sum subgate_connections) # after the RSS: the nodes may be slow to answer
for ((t = 0; ; t++)); do # the CPU time of the window: until every process ends it
	(($(marks "window end") >= PROCS)) && break
	kill -0 "$BENCH_PID" 2>/dev/null || break
	((t < (${DURATION%s} + 60) * 10)) || die "the window did not end within ${DURATION%s} s + 60 s"
	sleep 0.1
done
# shellcheck disable=SC2086
CPU1=("$(cpu_ticks "${NODE_PIDS[@]}")" "$(cpu_ticks $CLIENT_PIDS)" "$(cpu_ticks "$NATS_PID")")
WALL=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
HZ=$(getconf CLK_TCK)
cpu_s() { awk -v a="$1" -v b="$2" -v hz="$HZ" 'BEGIN { if (a == "?" || b == "?") print "?"; else printf "%.1f", (b - a) / hz }'; }
CPU_LINE="gateways $(cpu_s "${CPU0[0]}" "${CPU1[0]}") s, clients $(cpu_s "${CPU0[1]}" "${CPU1[1]}") s, nats-server $(cpu_s "${CPU0[2]}" "${CPU1[2]}") s in $WALL s of the window ($(nproc) cores)"

BENCH_RC=0
wait "$BENCH_PID" || BENCH_RC=$?
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
[[ -s $WORK/bench.json ]] || die "the bench printed no result (exit $BENCH_RC)"
PUSHED=$(metric_sum subgate_pushes_sent_total)
DROPPED=$(metric_sum subgate_pushes_dropped_total)
SLOW_CLOSED=$(metric_sum subgate_slow_consumer_disconnects_total)
SLOW=$(curl -fs --max-time 20 "http://127.0.0.1:$NATS_MON/varz" | grep -o '"slow_consumers": *[0-9]*' | grep -o '[0-9]*$' || echo "?")
HUB_WARNINGS=$(cat "$WORK"/node*.log | grep -c 'level=\(WARN\|ERROR\)' || true)

CONNS=$(field conns) SENT=$(field sent) EXPECTED=$(field expected) OPS=$(field ops) LOST=$(field lost) ERRORS=$(field errors)
ms() { awk -v u="$(field "$1")" 'BEGIN { printf "%.1f", u / 1000 }'; }
cat <<EOF

== Cluster: $SUBS connections over $NODES nodes ($(date -u '+%Y-%m-%d %H:%M UTC'))
machine:      $(nproc) cores, $(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $(go env GOVERSION); load average $LOAD_BEFORE before, $LOAD_AFTER after
command:      SUBGATE_SCALE=${SUBGATE_SCALE:-0} bench/cluster/run.sh
bench:        subgate bench -scenario broadcast -proto all -subs $SUBS -senders $SENDERS -rate $RATE -duration $DURATION -procs $PROCS -source-ips $SOURCE_IPS -dial-rate $DIAL_RATE -url <$NODES nodes>
connections:  $CONNS dialed, $UP open on the nodes at the sample (subgate_connections summed, read after the RSS)
broadcasts:   $SENT sent; deliveries expected $EXPECTED, received $OPS, lost $LOST; errors $ERRORS
deliveries/s: $(field ops_per_s | cut -d. -f1)
latency:      p50 $(ms p50_us) ms, p99 $(ms p99_us) ms, max $(ms max_us) ms (send to delivery)
CPU:          $CPU_LINE
RSS gateways: $(mib "$GW_RSS") MiB in all ($(awk -v k="$GW_RSS" -v n="$UP" 'BEGIN { printf "%.1f", (n ? k / n : 0) }') KiB per connection); per node: ${PER_NODE_RSS[*]} MiB
nodes:        $PUSHED pushes queued to connections (warmup included), $DROPPED dropped, $SLOW_CLOSED slow consumers closed
RSS nats:     $(mib "$NATS_RSS") MiB (slow consumers: $SLOW)
node log:     $HUB_WARNINGS warnings and errors$( ((HUB_WARNINGS == 0)) || { echo ", the first ones:"; cat "$WORK"/node*.log | grep 'level=\(WARN\|ERROR\)' | head -n 5 | cut -c1-200; })
RSS clients:  $(mib "$CLIENT_RSS") MiB ($PROCS bench processes)
EOF
if ((BENCH_RC != 0)) || [[ $ERRORS != 0 || $LOST != 0 || $CONNS != "$SUBS" || $UP != "$SUBS" || $SENT == 0 ]]; then
	echo "result:       FAIL: not every broadcast reached every connection (bench exit $BENCH_RC; first error: $(grep -o '"first_error":"[^"]*"' "$WORK/bench.json" || echo none))"
	exit 1
fi
echo "result:       PASS: every one of $SENT broadcasts reached all $SUBS connections"
