#!/usr/bin/env bash
# Start / stop a standalone seekdb server (the `seekdb` binary shipped inside the pylibseekdb wheel) on TCP,
# so the store tests can run in DSN mode against a real server:
#
#   dsn=$(bash scripts/seekdb-server.sh start /tmp/seekdb-ci)       # prints mysql://root@127.0.0.1:PORT/obembed_test
#   OBEMBED_TEST_DSN=$dsn .venv/bin/python -m pytest tests/store -q
#   bash scripts/seekdb-server.sh stop /tmp/seekdb-ci                # stops it and removes the folder
#
#   start DIR [PORT]   start in DIR (created; PORT default: a free one); waits at most $SEEKDB_WAIT s (120)
#                      until it answers SELECT 1, then prints the DSN; on timeout prints the log tail, stops it,
#                      exits 1
#   stop DIR [--keep]  SIGTERM, wait at most 30 s, then SIGKILL; removes DIR unless --keep
#   status DIR         prints the DSN and exits 0 if it answers, else exits 1
# Env: PYTHON (default .venv/bin/python), SEEKDB_WAIT (default 120), SEEKDB_MEMORY (default 1G).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WAIT=${SEEKDB_WAIT:-120}

usage() { sed -n '2,18p' "$0" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
cmd=$1 dir=$2

ping_dsn() {  # $1 port -> exit 0 if the server answers SELECT 1
    "$PYTHON" - "$1" <<'PY' 2>/dev/null
import sys, pymysql
c = pymysql.connect(host="127.0.0.1", port=int(sys.argv[1]), user="root", connect_timeout=3, read_timeout=5)
c.cursor().execute("SELECT 1")
c.close()
PY
}

stop_server() {
    local pid
    pid=$(cat "$dir/seekdb.pid" 2>/dev/null || true)
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 1; fi
    fi
}

case "$cmd" in
  start)
    port=${3:-$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    bin=$("$PYTHON" -c 'import os, pylibseekdb; print(os.path.join(os.path.dirname(pylibseekdb.__file__), "seekdb"))')
    [[ -x "$bin" ]] || { echo "seekdb-server: no seekdb binary at $bin (pip install pylibseekdb)" >&2; exit 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ -f "$dir/seekdb.pid" ]] && kill -0 "$(cat "$dir/seekdb.pid")" 2>/dev/null; then
        echo "seekdb-server: already running in $dir (pid $(cat "$dir/seekdb.pid")); stop it first" >&2; exit 1
    fi
    setsid "$bin" --base-dir="$dir" --nodaemon --port "$port" \
        --parameter memory_budget="${SEEKDB_MEMORY:-1G}" --parameter log_disk_size=2G \
        --parameter datafile_size=1G </dev/null >"$dir/seekdb.out" 2>&1 &
    echo $! >"$dir/seekdb.pid"
    echo "$port" >"$dir/seekdb.port"
    t0=$SECONDS
    while (( SECONDS - t0 < WAIT )); do
        if ! kill -0 "$(cat "$dir/seekdb.pid")" 2>/dev/null; then
            echo "seekdb-server: the server exited during start-up; log tail:" >&2
            tail -n 20 "$dir/seekdb.out" >&2; exit 1
        fi
        if ping_dsn "$port"; then
            echo "seekdb-server: up on 127.0.0.1:$port after $(( SECONDS - t0 )) s (pid $(cat "$dir/seekdb.pid"))" >&2
            echo "mysql://root@127.0.0.1:$port/obembed_test"
            exit 0
        fi
        sleep 1
    done
    echo "seekdb-server: no answer on port $port within $WAIT s; log tail:" >&2
    tail -n 20 "$dir/seekdb.out" >&2
    stop_server
    exit 1
    ;;
  stop)
    stop_server
    if [[ "${3:-}" != "--keep" && -f "$dir/seekdb.port" ]]; then rm -rf "$dir"; fi
    ;;
  status)
    port=$(cat "$dir/seekdb.port" 2>/dev/null || true)
    [[ -n "$port" ]] && ping_dsn "$port" && { echo "mysql://root@127.0.0.1:$port/obembed_test"; exit 0; }
    exit 1
    ;;
  *) usage ;;
esac
