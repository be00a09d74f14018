#!/bin/sh
# install.sh installs Centrifugo v6.9.1 (the peer of `subgate bench -target
# centrifugo`) from the Go module proxy into the bench cache and prints the
# binary's path on stdout. It does nothing when that version is already there.
#
#   BIN=$(bench/peers/centrifugo/install.sh) && "$BIN" --config bench/peers/centrifugo/config.json
#
# The binary goes to $SUBGATE_BENCH_BIN, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/subgate-bench/bin. Building it from source
# takes several minutes on a 2-core machine the first time.
set -eu
version=v6.9.1
bindir=${SUBGATE_BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/subgate-bench/bin}
bin=$bindir/centrifugo

installed() {
	[ -x "$bin" ] && go version -m "$bin" 2>/dev/null |
		grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/centrifugal/centrifugo/v6[[:space:]]+$version[[:space:]]"
}

if ! installed; then
	mkdir -p "$bindir"
	echo "installing centrifugo $version into $bindir (go install; minutes on first build)" >&2
	GOBIN=$bindir go install "github.com/centrifugal/centrifugo/v6@$version"
	installed || { echo "install.sh: $bin is not centrifugo $version after go install" >&2; exit 1; }
fi
echo "$bin"
