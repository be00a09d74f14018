#!/bin/sh
# smoke.sh [naive] [seed] [centrifugo] starts each benchmark peer named (all
# three by default) on a free loopback port, checks with smoke.py that it
# answers as `subgate bench` expects, and stops it. It exits non-zero, with a
# FAIL line and the server's log, when a peer fails. It kills only the
# processes it started.
#
# Needs Go, /usr/bin/python3 with Debian's python3-fastapi, python3-uvicorn
# and python3-websockets, and Centrifugo (centrifugo/install.sh builds it on
# first use: minutes).
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
tmp=$(mktemp -d)
pid=

stop() {
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	# Bounded wait for a graceful exit (uvicorn takes about a second), then KILL.
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=
}
trap 'stop; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

freeport() {
	$py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# check NAME PORT [ARGS...] runs smoke.py against the peer started last.
check() {
	name=$1
	if ! timeout 90 $py "$here/smoke.py" "$@"; then
		echo "--- $name log (last 40 lines):" >&2
		tail -n 40 "$tmp/$name.log" >&2
		failed="$failed $name"
	fi
	stop
}

smoke_naive() {
	port=$(freeport)
	if ! (cd "$here" && go build -o "$tmp/naive" ./naive); then
		echo "FAIL naive: go build" >&2
		failed="$failed naive"
		return
	fi
	"$tmp/naive" -addr "127.0.0.1:$port" >"$tmp/naive.log" 2>&1 &
	pid=$!
	check naive "$port"
}

smoke_seed() {
	port=$(freeport)
	"$here/seed/run.sh" "$port" >"$tmp/seed.log" 2>&1 &
	pid=$!
	check seed "$port"
}

smoke_centrifugo() {
	if ! bin=$("$here/centrifugo/install.sh"); then
		echo "FAIL centrifugo: install.sh" >&2
		failed="$failed centrifugo"
		return
	fi
	port=$(freeport)
	# The config's own port and keepalive, overridden: a free port, and a
	# 1 s ping so that the check sees the app-level ping/pong.
	CENTRIFUGO_HTTP_SERVER_PORT=$port CENTRIFUGO_CLIENT_PING_INTERVAL=1s CENTRIFUGO_CLIENT_PONG_TIMEOUT=500ms \
		"$bin" --config "$here/centrifugo/config.json" >"$tmp/centrifugo.log" 2>&1 &
	pid=$!
	check centrifugo "$port" 1
}

failed=
for peer in ${@:-naive seed centrifugo}; do
	case $peer in
	naive | seed | centrifugo) "smoke_$peer" ;;
	*)
		echo "smoke.sh: unknown peer $peer (known: naive seed centrifugo)" >&2
		exit 2
		;;
	esac
done
if [ -n "$failed" ]; then
	echo "smoke.sh: FAILED:$failed" >&2
	exit 1
fi
echo "smoke.sh: all passed"
