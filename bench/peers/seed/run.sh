#!/bin/sh
# run.sh [PORT] starts the seed FastAPI app on 127.0.0.1:PORT (default 8091)
# with Debian's uvicorn, in the foreground. Only /usr/bin/python3 sees
# Debian's python3-fastapi and python3-uvicorn:
#   apt-get install -y --no-install-recommends python3-fastapi python3-uvicorn python3-websockets
cd "$(dirname "$0")" || exit 1
exec /usr/bin/python3 -m uvicorn app:app --host 127.0.0.1 --port "${1:-8091}" --log-level warning
