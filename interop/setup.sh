#!/usr/bin/env bash
# Installs what the interop tests (SUBGATE_INTEROP=1 go test ./interop/) need:
#   - the Node client's dependencies (npm ci from interop/node/package-lock.json),
#     only when node_modules is missing or older than package-lock.json;
#   - Debian's python3-websockets, python3-msgpack and python3-pynvim (its
#     pynvim.msgpack_rpc, for the reply-loop test) for /usr/bin/python3,
#     only when they cannot be imported (apt-get needs root; otherwise the
#     command is printed and the script exits 1).
# Idempotent: a second run does nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

node_dir="$here/node"
if [ ! -d "$node_dir/node_modules" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules" ]; then
  echo "== interop/setup.sh: npm ci in $node_dir"
  (cd "$node_dir" && npm ci --no-audit --no-fund)
  touch "$node_dir/node_modules"
else
  echo "== interop/setup.sh: $node_dir/node_modules is up to date"
fi

imports='import websockets, msgpack, pynvim.msgpack_rpc'
if /usr/bin/python3 -c "$imports" 2>/dev/null; then
  echo "== interop/setup.sh: python3-websockets, python3-msgpack and python3-pynvim are installed"
else
  cmd="apt-get update && apt-get install -y python3-websockets python3-msgpack python3-pynvim"
  if [ "$(id -u)" -ne 0 ]; then
    echo "interop/setup.sh: /usr/bin/python3 lacks websockets/msgpack/pynvim; run as root: $cmd" >&2
    exit 1
  fi
  echo "== interop/setup.sh: $cmd"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y python3-websockets python3-msgpack python3-pynvim
  /usr/bin/python3 -c "$imports"
fi
