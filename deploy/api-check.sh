#!/usr/bin/env bash
# Checks the running gateway against its own OpenAPI document with schemathesis: no server
# error, and every answer (status, content type, headers, body) as the document says. A fresh
# database and queue prefix, a gateway and a worker built from this checkout, the demo
# integration; schemathesis (PyPI) is installed in a venv under the cache dir when missing.
#
#   deploy/api-check.sh                  # after `cargo build --workspace --bins`
#   API_CHECK_EXAMPLES=50 deploy/api-check.sh   # more cases per operation
#
# Tunables: API_CHECK_EXAMPLES (cases per operation and phase, 50), API_CHECK_CACHE (where
# the venv lives, ~/.cache/callq), SCHEMATHESIS_VERSION (4.32.5). Logs and the report:
# target/api-check/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=deploy/lib.sh source-path=SCRIPTDIR/..
. deploy/lib.sh

EXAMPLES=${API_CHECK_EXAMPLES:-50}
CACHE=${API_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/callq}
VERSION=${SCHEMATHESIS_VERSION:-4.32.5}
VENV=$CACHE/schemathesis-$VERSION
OUT=target/api-check
BIN=target/debug
RUN=api_check_$$
DATABASE=callq_$RUN

mkdir -p "$OUT"
if [ ! -x "$VENV/bin/st" ]; then
    echo "==> installing schemathesis $VERSION in $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi

ensure_postgres
ensure_rabbitmq
ensure_database "$DATABASE"
cargo build --bins -p gateway -p worker -p admin

gateway_pid=
worker_pid=
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
    set +e
    local pid
    for pid in $gateway_pid $worker_pid; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in $gateway_pid $worker_pid; do
        wait "$pid" 2>/dev/null
    done
    psql -X -q -h 127.0.0.1 -p "$CALLQ_PG_PORT" -U postgres -d postgres \
        -c "drop database if exists \"$DATABASE\" with (force)" >/dev/null 2>&1
    if command -v rabbitmqctl >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        rabbitmqctl -q list_queues name 2>/dev/null | grep "^$RUN" |
            while read -r queue; do
                # rabbitmqctl reads stdin: without </dev/null it would eat the list.
                rabbitmqctl -q delete_queue "$queue" </dev/null >/dev/null 2>&1
            done
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
export APP_DATABASE__URL=postgres://postgres@127.0.0.1:$CALLQ_PG_PORT/$DATABASE
export APP_BROKER__URL=amqp://guest:guest@127.0.0.1:$CALLQ_AMQP_PORT/%2f
export APP_BROKER__QUEUE_PREFIX=$RUN
export APP_HTTP__LISTEN=127.0.0.1:$PORT
export APP_HTTP__PUBLIC_BASE_URL=$BASE
export APP_WORKER__LISTEN=127.0.0.1:0
ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
export APP_ADMIN__TOKEN=$ADMIN_TOKEN

"$BIN/admin" migrate
"$BIN/gateway" >"$OUT/gateway.log" 2>&1 &
gateway_pid=$!
"$BIN/worker" >"$OUT/worker.log" 2>&1 &
worker_pid=$!
for ((i = 0; i < 60; i++)); do
    curl -fsS -o /dev/null --max-time 2 "$BASE/readyz" 2>/dev/null && break
    kill -0 "$gateway_pid" 2>/dev/null || break
    sleep 0.5
done
curl -fsS -o /dev/null --max-time 2 "$BASE/readyz" || {
    echo "error: the gateway is not ready on $BASE; its log:" >&2
    tail -n 30 "$OUT/gateway.log" >&2
    exit 1
}

demo=$("$BIN/admin" demo)
INTEGRATION_TOKEN=$(sed -n 's/^export AUTHORIZATION_TOKEN=//p' <<<"$demo")
INTEGRATION_ID=$(sed -n 's|^export INTEGRATION_URL=.*/integrations/\([^/]*\)/phone_calls$|\1|p' <<<"$demo")
# The admin operations change the integration they name (its settings, its bindings): they get
# one of their own, so that the demo integration keeps answering the generated calls and texts
# as `admin demo` made it (queueing an unknown operator's, operator@email.com bound) rather
# than refusing them all once a PATCH has made it Qolio-compatible.
organisation=$("$BIN/admin" create-organisation --name "api-check admin")
created=$("$BIN/admin" create-integration --organisation "$organisation" --name "api-check admin" 2>/dev/null)
ADMIN_INTEGRATION_ID=$(sed -n 's|^integration URL: *.*/integrations/\([^/]*\)/phone_calls$|\1|p' <<<"$created")
[ -n "$INTEGRATION_ID" ] && [ -n "$ADMIN_INTEGRATION_ID" ] || {
    echo "error: no integration id in the admin tool's output" >&2
    exit 1
}
export INTEGRATION_TOKEN INTEGRATION_ID ADMIN_TOKEN ADMIN_INTEGRATION_ID

# Each token for the operations whose scheme names it; the integration of the path is the demo
# one, so that a generated call reaches the parser rather than a 404.
cat >"$OUT/schemathesis.toml" <<'TOML'
[auth.openapi.integration_token]
api_key = "${INTEGRATION_TOKEN}"

[auth.openapi.admin_token]
api_key = "${ADMIN_TOKEN}"

# 413 is a refusal too: an array longer than its maxItems can be longer than the body limit.
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]

[parameters]
"path.integration_id" = "${INTEGRATION_ID}"

[[operations]]
include-path-regex = "^/api/v1/api_integrations/"
parameters = { "path.integration_id" = "${ADMIN_INTEGRATION_ID}" }
TOML

# Every check but positive_data_acceptance: whether a schema-valid custom field value is
# accepted depends on the type its key was first given (the organisation's definitions),
# which no schema of one request can say. The stateful phase needs links between operations,
# which the document does not declare.
echo "==> schemathesis against $BASE/openapi.json ($EXAMPLES cases per operation and phase)" >&2
# From the output dir: schemathesis keeps a cache (.schemathesis/) in its working directory.
cd "$OUT"
"$VENV/bin/st" --no-color --config-file schemathesis.toml run "$BASE/openapi.json" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --max-examples "$EXAMPLES" \
    --phases examples,coverage,fuzzing \
    --generation-database none \
    --request-timeout 10 \
    --report junit --report-junit-path junit.xml
