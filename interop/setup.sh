#!/usr/bin/env bash
# Installs what the interop tests (SUBGATE_INTEROP=1 go test ./interop/) need:
#   - the Node client's dependencies (npm ci from interop/node/package-lock.json)
#     and the browser tests' playwright-core (interop/browser), each only when
#     node_modules is missing or older than package-lock.json;
#   - Debian's chromium at /usr/bin/chromium, which the browser tests drive,
#     only when it is missing;
#   - Debian's python3-websockets, python3-msgpack and python3-pynvim (its
#     pynvim.msgpack_rpc, for the reply-loop test) for /usr/bin/python3,
#     only when they cannot be imported (apt-get needs root; otherwise the
#     command is printed and the script exits 1).
# Idempotent: a second run does nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# npm_ci DIR runs npm ci in DIR when its node_modules is missing or older
# than its package-lock.json.
npm_ci() {
  local dir="$1"
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    echo "== interop/setup.sh: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund)
    touch "$dir/node_modules"
  else
    echo "== interop/setup.sh: $dir/node_modules is up to date"
  fi
}

npm_ci "$here/node"
npm_ci "$here/browser"

# apt_install WHAT ARG... installs Debian packages as root, or prints the
# command and exits 1 (WHAT says what is missing).
apt_install() {
  local what="$1"
  shift
  local cmd="apt-get update && apt-get install -y $*"
  if [ "$(id -u)" -ne 0 ]; then
    echo "interop/setup.sh: $what; run as root: $cmd" >&2
    exit 1
  fi
  echo "== interop/setup.sh: $cmd"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

if [ -x /usr/bin/chromium ]; then
  echo "== interop/setup.sh: /usr/bin/chromium is installed"
else
  apt_install "/usr/bin/chromium is missing (the browser tests drive it)" --no-install-recommends chromium
fi

imports='import websockets, msgpack, pynvim.msgpack_rpc'
if /usr/bin/python3 -c "$imports" 2>/dev/null; then
  echo "== interop/setup.sh: python3-websockets, python3-msgpack and python3-pynvim are installed"
else
  apt_install "/usr/bin/python3 lacks websockets/msgpack/pynvim" python3-websockets python3-msgpack python3-pynvim
  /usr/bin/python3 -c "$imports"
fi
