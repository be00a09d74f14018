#!/usr/bin/env bash
# The test command: vet, the race-enabled shuffled test suite (with the
# third-party client interop tests), then a short run of every fuzz target
# (FUZZTIME, default 10s each). SUBGATE_INTEROP=0 skips the interop set-up
# and tests (they need npm and, as root, apt-get).
set -euo pipefail
cd "$(dirname "$0")"
fuzztime=${FUZZTIME:-10s}
export SUBGATE_INTEROP=${SUBGATE_INTEROP:-1}
if [ "$SUBGATE_INTEROP" = 1 ]; then
  bash interop/setup.sh
fi
go vet ./...
go test -race -shuffle=on -count=1 ./...
# The gateway again with a reader goroutine per connection (the platforms
# without epoll), the first run having used the poller.
SUBGATE_TEST_POLLER=goroutines go test -race -shuffle=on -count=1 ./gateway/...
# The soak test (about a minute): hundreds of clients, some misbehaving.
SUBGATE_SOAK=1 go test -race -run '^TestSoak$' -count=1 -timeout 5m ./gateway/
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== fuzz $pkg $target ($fuzztime)"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
  done
done
