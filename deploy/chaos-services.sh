#!/usr/bin/env bash
# Private PostgreSQL and RabbitMQ for deploy/chaos.sh, which stops and restarts them under
# load: data, sockets and logs under DIR, ports of their own, never the machine's shared
# servers (5432, 5672). Also the control command `bench chaos` acts on them through.
#
#   deploy/chaos-services.sh DIR up              # create and start both
#   deploy/chaos-services.sh DIR down            # stop both (the caller removes DIR)
#   deploy/chaos-services.sh DIR pg-stop | pg-start | broker-stop | broker-start
#   deploy/chaos-services.sh DIR unacked QUEUE   # QUEUE's deliveries not yet acked
#   deploy/chaos-services.sh DIR leader QUEUE    # cluster: node (1-3) leading QUEUE
#   deploy/chaos-services.sh DIR node-stop N | node-start N   # cluster: one node
#
# With CHAOS_CLUSTER=1 the broker is the three-node cluster of deploy/rabbitmq-cluster.sh
# (nodes callq1..3@localhost, AMQP 5701-5703, data and cookie under DIR/cluster) instead of one
# private node: broker-stop and broker-start then stop and start all three nodes.
#
# Tunables (environment): CHAOS_PG_PORT (55432), CHAOS_AMQP_PORT (55672), CHAOS_DIST_PORT
# (55673, Erlang distribution), CHAOS_NODE (callq-chaos@localhost), CALLQ_WAIT_SECS (60).
# As root, Postgres runs as the postgres user and RabbitMQ as rabbitmq (Debian's
# rabbitmq-server and rabbitmqctl switch to it themselves, with its Erlang cookie).
set -euo pipefail

: "${CHAOS_PG_PORT:=55432}"
: "${CHAOS_AMQP_PORT:=55672}"
: "${CHAOS_DIST_PORT:=55673}"
: "${CHAOS_NODE:=callq-chaos@localhost}"
: "${CALLQ_WAIT_SECS:=60}"
: "${CHAOS_CLUSTER:=}"

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 2
}

[ $# -ge 2 ] || usage
DIR=$1
VERB=$2
shift 2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOGS=$DIR/logs

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Runs a command as USER when this script runs as root (initdb refuses root).
as_user() {
    local user=$1
    shift
    if [ "$(id -u)" -eq 0 ] && id -u "$user" >/dev/null 2>&1; then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

own() {
    local user=$1
    shift
    if [ "$(id -u)" -eq 0 ] && id -u "$user" >/dev/null 2>&1; then
        chown -R "$user" "$@"
    fi
}

# ---------------------------------------------------------------------------- PostgreSQL

pg_bin() {
    if [ -n "${CHAOS_PG_BIN:-}" ]; then
        echo "$CHAOS_PG_BIN"
    elif command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
    else
        find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1
    fi
}

PGDATA=$DIR/pg/data

pg_up() {
    local bin
    bin=$(pg_bin)
    [ -x "$bin/initdb" ] || die "no initdb found (install PostgreSQL, or set CHAOS_PG_BIN)"
    mkdir -p "$DIR/pg" "$LOGS"
    own postgres "$DIR/pg" "$LOGS"
    log "initdb of a private PostgreSQL in $PGDATA (port $CHAOS_PG_PORT)"
    as_user postgres "$bin/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C \
        >"$LOGS/initdb.log" 2>&1 || {
        cat "$LOGS/initdb.log" >&2
        die "initdb failed"
    }
    cat >>"$PGDATA/postgresql.conf" <<EOF
# deploy/chaos-services.sh: a private server, never the shared one.
port = $CHAOS_PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR/pg'
max_connections = 200
EOF
    pg_start
}

pg_start() {
    as_user postgres "$(pg_bin)/pg_ctl" -D "$PGDATA" -l "$LOGS/postgres.log" \
        -w -t "$CALLQ_WAIT_SECS" start >/dev/null
}

pg_stop() {
    # Fast: open sessions are cut, as a failover or a node lost cuts them.
    as_user postgres "$(pg_bin)/pg_ctl" -D "$PGDATA" -m fast -w -t "$CALLQ_WAIT_SECS" stop \
        >/dev/null
}

pg_running() {
    [ -f "$PGDATA/postmaster.pid" ]
}

# ------------------------------------------------------------------------------ RabbitMQ

RABBIT=$DIR/rabbitmq

rabbit_env() {
    export RABBITMQ_NODENAME=$CHAOS_NODE
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$CHAOS_AMQP_PORT
    export RABBITMQ_DIST_PORT=$CHAOS_DIST_PORT
    export RABBITMQ_MNESIA_BASE=$RABBIT/mnesia
    export RABBITMQ_LOG_BASE=$LOGS/rabbitmq
    export RABBITMQ_PID_FILE=$RABBIT/pid
    export RABBITMQ_ENABLED_PLUGINS_FILE=$RABBIT/enabled_plugins
    export RABBITMQ_CONFIG_FILE=$RABBIT/rabbitmq.conf
    export RABBITMQ_ADVANCED_CONFIG_FILE=$RABBIT/advanced.config
    export RABBITMQ_CONF_ENV_FILE=$RABBIT/rabbitmq-env.conf
}

ctl() {
    rabbitmqctl -n "$CHAOS_NODE" "$@"
}

broker_up() {
    command -v rabbitmq-server >/dev/null 2>&1 || die "rabbitmq-server is not installed"
    mkdir -p "$RABBIT/mnesia" "$LOGS/rabbitmq"
    # No plugins: the management plugin would want the shared node's port 15672.
    echo '[].' >"$RABBIT/enabled_plugins"
    echo '# deploy/chaos-services.sh: a private node; ports come from the environment.' \
        >"$RABBIT/rabbitmq.conf"
    : >"$RABBIT/rabbitmq-env.conf"
    own rabbitmq "$RABBIT" "$LOGS/rabbitmq"
    log "starting a private RabbitMQ node $CHAOS_NODE (port $CHAOS_AMQP_PORT) in $RABBIT"
    broker_start
}

broker_start() {
    rabbit_env
    rabbitmq-server -detached >/dev/null 2>&1 || true
    # await_startup fails until the node has registered with epmd: retry it, each bounded.
    local deadline=$((SECONDS + CALLQ_WAIT_SECS))
    until timeout 20 rabbitmqctl -n "$CHAOS_NODE" -q await_startup >/dev/null 2>&1 &&
        port_open "$CHAOS_AMQP_PORT"; do
        [ "$SECONDS" -lt "$deadline" ] ||
            die "RabbitMQ $CHAOS_NODE did not start within ${CALLQ_WAIT_SECS}s (logs: $LOGS/rabbitmq)"
        sleep 1
    done
}

broker_stop() {
    # shutdown waits until the node's process has exited.
    ctl -q shutdown >/dev/null
}

port_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" >/dev/null 2>&1
}

# A queue's column from list_queues, asked of the first node that answers.
queue_column() {
    local queue=$1 column=$2 node out
    for node in $(nodes); do
        if out=$(rabbitmqctl_for "$node" -q list_queues --no-table-headers name "$column" 2>/dev/null); then
            awk -v q="$queue" '$1 == q { print $2 }' <<<"$out"
            return 0
        fi
    done
    die "no RabbitMQ node answered list_queues"
}

# rabbitmqctl NODE ARGS: the cluster's nodes share a cookie of their own in the cluster's
# directory (deploy/rabbitmq-cluster.sh), so the CLI runs with that directory as its home.
rabbitmqctl_for() {
    local node=$1
    shift
    if [ -n "$CHAOS_CLUSTER" ]; then
        local bin=/usr/lib/rabbitmq/bin
        [ -x "$bin/rabbitmqctl" ] || bin=$(dirname "$(command -v rabbitmqctl)")
        HOME=$DIR/cluster RABBITMQ_CONF_ENV_FILE=$DIR/cluster/rabbitmq-env.conf \
            timeout "$CALLQ_WAIT_SECS" "$bin/rabbitmqctl" -n "$node" "$@"
    else
        rabbitmqctl -n "$node" "$@"
    fi
}

nodes() {
    if [ -n "$CHAOS_CLUSTER" ]; then
        echo callq1@localhost callq2@localhost callq3@localhost
    else
        echo "$CHAOS_NODE"
    fi
}

# ------------------------------------------------------------------------------- cluster

cluster() {
    [ -x "$HERE/rabbitmq-cluster.sh" ] || die "deploy/rabbitmq-cluster.sh is missing"
    CALLQ_CLUSTER_DIR=$DIR/cluster "$HERE/rabbitmq-cluster.sh" "$@"
}

need_cluster() {
    [ -n "$CHAOS_CLUSTER" ] || die "$VERB needs CHAOS_CLUSTER=1 (a three-node cluster)"
}

# --------------------------------------------------------------------------------- verbs

case $VERB in
up)
    # The services' own users must reach their directories inside DIR.
    chmod 755 "$DIR"
    pg_up
    # The cluster prints its broker list, which `rabbitmq-cluster.sh urls` gives again.
    if [ -n "$CHAOS_CLUSTER" ]; then cluster start >/dev/null; else broker_up; fi
    ;;
down)
    if [ -n "$CHAOS_CLUSTER" ]; then
        cluster stop || true
    elif [ -d "$RABBIT" ]; then
        rabbit_env
        broker_stop 2>/dev/null || true
    fi
    if pg_running; then pg_stop || true; fi
    ;;
pg-stop) pg_stop ;;
pg-start) pg_start ;;
broker-stop)
    if [ -n "$CHAOS_CLUSTER" ]; then
        for n in 3 2 1; do cluster stop-node "$n"; done
    else
        broker_stop
    fi
    ;;
broker-start)
    if [ -n "$CHAOS_CLUSTER" ]; then
        # Together: a clustered node that boots alone may wait for its peers.
        pids=()
        for n in 1 2 3; do
            cluster start-node "$n" &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid"; done
    else
        broker_start
    fi
    ;;
unacked)
    [ $# -eq 1 ] || usage
    queue_column "$1" messages_unacknowledged
    ;;
leader)
    need_cluster
    [ $# -eq 1 ] || usage
    cluster leader "$1"
    ;;
node-stop | node-start)
    need_cluster
    [ $# -eq 1 ] || usage
    cluster "${VERB#node-}-node" "$1"
    ;;
*) usage ;;
esac
