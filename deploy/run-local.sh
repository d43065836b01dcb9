#!/usr/bin/env bash
# Runs the whole pipeline on this machine: PostgreSQL + RabbitMQ (started or installed if
# needed), one gateway and one worker built from this checkout, plus a demo integration.
#
#   deploy/run-local.sh              # gateway on http://127.0.0.1:8080, worker metrics on :9090
#   PORT=8081 WORKER_PORT=9091 deploy/run-local.sh    # other ports
#   ADMIN_TOKEN=... deploy/run-local.sh   # keep a known admin token across runs
#
# Stays in the foreground; Ctrl-C stops gateway and worker. Logs: target/run-local/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=deploy/lib.sh source-path=SCRIPTDIR/..
. deploy/lib.sh

PORT=${PORT:-8080}
WORKER_PORT=${WORKER_PORT:-9090}
LOG_DIR=target/run-local
BIN=target/release

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# A gateway left over from an earlier run would answer /readyz below and make this run look
# healthy while serving old code, so refuse to start instead.
check_port_free() {
    local port=$1 what=$2 variable=$3
    if callq_port_open 127.0.0.1 "$port"; then
        printf 'error: 127.0.0.1:%s is already in use, probably by a %s from an earlier run-local.sh.\n' "$port" "$what" >&2
        if command -v ss >/dev/null 2>&1; then
            ss -Hltnp "sport = :$port" >&2 || true
        fi
        printf 'Stop that process, or pick another port: %s=%s deploy/run-local.sh\n' "$variable" "$((port + 1))" >&2
        exit 1
    fi
}

gateway_pid=
worker_pid=
cleaned_up=

# shellcheck disable=SC2317 # reached through the EXIT trap
stop_processes() {
    [ -n "$cleaned_up" ] && return 0
    cleaned_up=1
    local pids=() pid
    for pid in $gateway_pid $worker_pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
        fi
    done
    if [ "${#pids[@]}" -gt 0 ]; then
        echo "==> stopping gateway and worker..." >&2
        # The worker finishes its in-flight calls before exiting; allow that, but do not
        # hang the terminal on a stuck process.
        local i
        for ((i = 0; i < 150; i++)); do
            local alive=
            for pid in "${pids[@]}"; do
                kill -0 "$pid" 2>/dev/null && alive=1
            done
            [ -z "$alive" ] && break
            sleep 0.2
        done
        for pid in "${pids[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then
                echo "==> $pid did not stop within 30s, killing it" >&2
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
        wait "${pids[@]}" 2>/dev/null || true
    fi
    if [ -n "$CALLQ_STARTED" ]; then
        echo "==> left running (started by this script): $CALLQ_STARTED" >&2
    fi
}

# shellcheck disable=SC2317 # reached through the EXIT trap
on_exit() {
    local rc=$?
    # Cleanup must run to the end even if one of its steps fails.
    set +e
    stop_processes
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_logs() {
    local f
    for f in "$LOG_DIR/gateway.log" "$LOG_DIR/worker.log"; do
        [ -s "$f" ] || continue
        printf -- '----- last lines of %s -----\n' "$f" >&2
        tail -n 30 "$f" >&2
    done
}

# Checked before the (long) build so that a busy port fails fast, and again after it.
check_port_free "$PORT" gateway PORT
check_port_free "$WORKER_PORT" worker WORKER_PORT

ensure_postgres
ensure_rabbitmq
ensure_database callq

command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust from https://rustup.rs"
echo "==> cargo build --release --bins" >&2
cargo build --release --bins

if [ -z "${ADMIN_TOKEN:-}" ]; then
    if command -v openssl >/dev/null 2>&1; then
        ADMIN_TOKEN=$(openssl rand -hex 24)
    else
        ADMIN_TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
    fi
fi

export APP_DATABASE__URL=postgres://postgres@127.0.0.1:5432/callq
export APP_ADMIN__TOKEN=$ADMIN_TOKEN
export APP_HTTP__LISTEN=127.0.0.1:$PORT
export APP_HTTP__PUBLIC_BASE_URL=http://127.0.0.1:$PORT
export APP_WORKER__LISTEN=127.0.0.1:$WORKER_PORT

echo "==> applying migrations" >&2
"$BIN/admin" migrate

check_port_free "$PORT" gateway PORT
check_port_free "$WORKER_PORT" worker WORKER_PORT
mkdir -p "$LOG_DIR"
echo "==> starting gateway (127.0.0.1:$PORT) and worker; logs in $LOG_DIR/" >&2
"$BIN/gateway" >"$LOG_DIR/gateway.log" 2>&1 &
gateway_pid=$!
"$BIN/worker" >"$LOG_DIR/worker.log" 2>&1 &
worker_pid=$!

ready=
for ((i = 0; i < 60; i++)); do
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    kill -0 "$gateway_pid" 2>/dev/null || break
    sleep 0.5
done
if [ -z "$ready" ]; then
    if kill -0 "$gateway_pid" 2>/dev/null; then
        printf 'error: gateway not ready on http://127.0.0.1:%s/readyz after 30s\n' "$PORT" >&2
    else
        printf 'error: gateway exited during startup\n' >&2
    fi
    show_logs
    exit 1
fi
if ! kill -0 "$worker_pid" 2>/dev/null; then
    printf 'error: worker exited during startup\n' >&2
    show_logs
    exit 1
fi

# admin demo prints the two export lines on stdout; anything else it says goes to its log.
demo_out=$("$BIN/admin" demo 2>"$LOG_DIR/admin-demo.log") || {
    printf 'error: admin demo failed\n' >&2
    cat "$LOG_DIR/admin-demo.log" >&2
    exit 1
}
exports=$(grep -E '^export (INTEGRATION_URL|AUTHORIZATION_TOKEN)=' <<<"$demo_out" || true)
if [ "$(grep -c . <<<"$exports")" -ne 2 ]; then
    printf 'error: admin demo did not print the INTEGRATION_URL and AUTHORIZATION_TOKEN exports; it printed:\n%s\n' "$demo_out" >&2
    exit 1
fi

cat <<EOF

callq is running: gateway http://127.0.0.1:$PORT, one worker storing calls and probing
their recordings (logs: $LOG_DIR/).

$exports
export ADMIN_TOKEN=$(printf '%q' "$ADMIN_TOKEN")

Try it: paste the export lines into another shell, then send the Qolio page's own example
and fetch the stored call back:

  curl --header "Content-Type: application/json" --request POST \\
       --header "Authorization: \$AUTHORIZATION_TOKEN" \\
       --data '{"operator_id": "operator@email.com", "started_at": "2020-06-21T09:51:13.588Z+03",
                "direction": "incoming", "duration": 410.1, "client_phone_number": "+375332222453",
                "media_url": "https://file-examples.com/wp-content/uploads/2017/11/file_example_WAV_1MG.wav",
                "uid": "7b2331ca-adcb-4f15-811b-6b6cfddb2baf",
                "client": {"id": "client@email.com", "company_name": "Test Company",
                           "first_name": "John", "last_name": "Doe"},
                "custom_fields": {"opened_at": "2020-06-21T09:51:13.588Z", "reopen_count": 5,
                                  "topic": "Поддержка", "sub-topic": "Возобновление доступа"}}' \\
       "\$INTEGRATION_URL"
  curl -H "Authorization: \$AUTHORIZATION_TOKEN" "\$INTEGRATION_URL/7b2331ca-adcb-4f15-811b-6b6cfddb2baf"

Dead letters (calls set aside, with the reason) and metrics:

  curl -H "Authorization: \$ADMIN_TOKEN" http://127.0.0.1:$PORT/api/v1/dead_letters
  $BIN/admin dead-letters list
  curl http://127.0.0.1:$PORT/metrics http://127.0.0.1:$WORKER_PORT/metrics

Press Ctrl-C to stop gateway and worker (PostgreSQL and RabbitMQ keep running).
EOF

# Returns when either process exits on its own; Ctrl-C interrupts it through the traps.
status=0
exited=
wait -n -p exited "$gateway_pid" "$worker_pid" || status=$?
if [ "$exited" = "$gateway_pid" ]; then name=gateway; else name=worker; fi
printf 'error: %s exited unexpectedly (status %s)\n' "$name" "$status" >&2
show_logs
exit 1
