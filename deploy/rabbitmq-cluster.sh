#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, beside the machine's own RabbitMQ (which it
# never touches): to run callq against a cluster, and for the cluster tests and chaos runs.
#
#   deploy/rabbitmq-cluster.sh start         # start the three nodes (or those not running),
#                                            # 2 and 3 joining 1, print the broker list
#   deploy/rabbitmq-cluster.sh urls          # print the broker list again
#   deploy/rabbitmq-cluster.sh status        # cluster_status, then the queues, each with
#                                            # its leader and members
#   deploy/rabbitmq-cluster.sh stop-node N   # stop node N (1-3) gracefully; its data stays
#   deploy/rabbitmq-cluster.sh kill-node N   # SIGKILL node N, as a crash would
#   deploy/rabbitmq-cluster.sh start-node N  # start node N again; it rejoins the cluster
#   deploy/rabbitmq-cluster.sh leader QUEUE  # the node leading a quorum queue (e.g. 2)
#   deploy/rabbitmq-cluster.sh online QUEUE  # how many of a quorum queue's members run (0-3)
#   deploy/rabbitmq-cluster.sh connected NAME  # the node holding the connection named NAME
#   deploy/rabbitmq-cluster.sh stop          # stop all three and remove the directory
#
# Node N is ${CALLQ_CLUSTER_NAME}N@localhost, listens for AMQP on 127.0.0.1 at
# CALLQ_CLUSTER_AMQP_PORT + N - 1 and for Erlang distribution at CALLQ_CLUSTER_DIST_PORT + N - 1,
# and keeps its data and logs in CALLQ_CLUSTER_DIR/nodeN. The nodes share an Erlang cookie of
# their own in CALLQ_CLUSTER_DIR, so neither the machine's node nor its cookie is involved.
# Tests and chaos runs set all four to run a cluster of their own. No management plugin. The
# nodes register with the machine's epmd (port 4369), or start one on loopback if none runs,
# which then outlives the cluster as it does any Erlang node.
#
# Environment (defaults): CALLQ_CLUSTER_DIR (/tmp/callq-rabbitmq-cluster),
# CALLQ_CLUSTER_NAME (callq), CALLQ_CLUSTER_AMQP_PORT (5701), CALLQ_CLUSTER_DIST_PORT (25701),
# CALLQ_CLUSTER_WAIT_SECS (60: how long a node may take to boot or stop).
#
# Progress goes to stderr as "==> ..." lines; `start` and `urls` print one line on stdout:
#   export APP_BROKER__URLS=amqp://guest:guest@127.0.0.1:5701/%2f,...
# (guest may only connect from localhost, which is where the nodes listen.)
set -euo pipefail

DIR=${CALLQ_CLUSTER_DIR:-/tmp/callq-rabbitmq-cluster}
NAME=${CALLQ_CLUSTER_NAME:-callq}
AMQP_PORT=${CALLQ_CLUSTER_AMQP_PORT:-5701}
DIST_PORT=${CALLQ_CLUSTER_DIST_PORT:-25701}
WAIT_SECS=${CALLQ_CLUSTER_WAIT_SECS:-60}
NODES=(1 2 3)

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Debian's /usr/sbin wrappers switch to the rabbitmq user and its home (its cookie, its
# /var/lib/rabbitmq); the scripts behind them run as whoever calls them.
if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    BIN=/usr/lib/rabbitmq/bin
elif command -v rabbitmq-server >/dev/null 2>&1; then
    BIN=$(dirname "$(command -v rabbitmq-server)")
else
    die "rabbitmq-server is not installed (Debian/Ubuntu: apt-get install rabbitmq-server)"
fi

node_name() { printf '%s%s@localhost' "$NAME" "$1"; }
node_dir() { printf '%s/node%s' "$DIR" "$1"; }
amqp_port() { printf '%s' $((AMQP_PORT + $1 - 1)); }
dist_port() { printf '%s' $((DIST_PORT + $1 - 1)); }

check_node() {
    [[ ${1:-} =~ ^[123]$ ]] || die "node must be 1, 2 or 3, not '${1:-}'"
}

# The environment every RabbitMQ script of node N runs in. HOME holds the cluster's own
# cookie; the machine's rabbitmq-env.conf (its node name, its port) is replaced by an empty
# one; distribution and a started epmd listen on loopback only.
node_env() {
    local n=$1 dir
    dir=$(node_dir "$n")
    shift
    env HOME="$DIR" \
        RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf" \
        RABBITMQ_NODENAME="$(node_name "$n")" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$(amqp_port "$n")" \
        RABBITMQ_DIST_PORT="$(dist_port "$n")" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$dir/pid" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        "$@"
}

# ctl N ARGS...: rabbitmqctl against node N, bounded (a node that hangs in boot or shutdown
# would keep it waiting for minutes).
ctl() {
    local n=$1
    shift
    node_env "$n" timeout "$WAIT_SECS" "$BIN/rabbitmqctl" -q -n "$(node_name "$n")" "$@"
}

# The pid of node N's Erlang VM, if it runs. Judged from its pid file (and that the process
# is a VM of this cluster: a pid may be reused) rather than asked of the node: rabbitmqctl
# boots a VM of its own each time, seconds on a busy machine.
node_pid() {
    local pid
    pid=$(cat "$(node_dir "$1")/pid" 2>/dev/null) || return 1
    ps -o args= -p "$pid" 2>/dev/null | grep -qF -- "-home $DIR " || return 1
    printf '%s' "$pid"
}

running() { node_pid "$1" >/dev/null; }

# The first node that runs, for cluster-wide questions.
any_running() {
    local n
    for n in "${NODES[@]}"; do
        if running "$n"; then
            printf '%s' "$n"
            return 0
        fi
    done
    return 1
}

port_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" >/dev/null 2>&1
}

# Nodes 2 and 3 find node 1 through peer discovery when they first boot and join it there
# and then: the same as stop_app, join_cluster, start_app, without the three rabbitmqctl
# runs per node that made a start take minutes on a loaded machine. Node 1 lists no peer, so
# it never waits for nodes that are not up yet; a restarted node rejoins from its own data.
prepare() {
    mkdir -p "$DIR"
    if [ ! -s "$DIR/.erlang.cookie" ]; then
        # Erlang refuses a cookie file others can read.
        (umask 077 && od -An -tx1 -N20 /dev/urandom | tr -d ' \n' >"$DIR/.erlang.cookie")
    fi
    chmod 400 "$DIR/.erlang.cookie"
    : >"$DIR/rabbitmq-env.conf"
    local n dir
    for n in "${NODES[@]}"; do
        dir=$(node_dir "$n")
        mkdir -p "$dir/mnesia" "$dir/log"
        echo '[].' >"$dir/enabled_plugins"
        {
            echo "listeners.tcp.1 = 127.0.0.1:$(amqp_port "$n")"
            if [ "$n" != 1 ]; then
                echo "cluster_formation.peer_discovery_backend = classic_config"
                echo "cluster_formation.classic_config.nodes.1 = $(node_name 1)"
            fi
        } >"$dir/rabbitmq.conf"
    done
}

# Boots node N in the background; `await_node` waits for it.
boot_node() {
    local n=$1
    if running "$n"; then
        return 0
    fi
    if port_open "$(amqp_port "$n")" || port_open "$(dist_port "$n")"; then
        die "port $(amqp_port "$n") or $(dist_port "$n") is taken by something other than node $(node_name "$n"); set CALLQ_CLUSTER_AMQP_PORT / CALLQ_CLUSTER_DIST_PORT"
    fi
    log "starting $(node_name "$n") (AMQP 127.0.0.1:$(amqp_port "$n"))"
    node_env "$n" "$BIN/rabbitmq-server" -detached >>"$(node_dir "$n")/log/startup.log" 2>&1 ||
        true
}

# A node opens its AMQP listener at the end of its boot, after joining its cluster.
await_node() {
    local n=$1 deadline=$((SECONDS + WAIT_SECS))
    until port_open "$(amqp_port "$n")"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$(node_dir "$n")/log/startup.log" >&2 2>/dev/null || true
            die "$(node_name "$n") did not boot within ${WAIT_SECS}s (logs: $(node_dir "$n")/log)"
        fi
        sleep 0.2
    done
}

urls() {
    local n list=()
    for n in "${NODES[@]}"; do
        list+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/%2f")
    done
    (
        IFS=,
        printf 'export APP_BROKER__URLS=%s\n' "${list[*]}"
    )
}

start() {
    # Nodes that all stopped without `stop` (a killed test, a reboot) would each wait minutes
    # at boot for the others, node 1 first and alone: such a cluster starts afresh.
    if ! any_running >/dev/null && [ -f "$DIR/rabbitmq-env.conf" ]; then
        log "no node of the cluster in $DIR runs: starting it afresh"
        rm -rf "$DIR/node1" "$DIR/node2" "$DIR/node3"
    fi
    prepare
    boot_node 1
    await_node 1
    # Booted together: each takes a few seconds, most of it waiting.
    boot_node 2
    boot_node 3
    await_node 2
    await_node 3
    log "cluster of $(node_name 1), $(node_name 2), $(node_name 3) running; data and logs in $DIR"
    urls
}

start_node() {
    local n=$1
    [ -d "$(node_dir "$n")/mnesia" ] || die "no cluster in $DIR: run start first"
    boot_node "$n"
    await_node "$n"
}

# Graceful: on SIGTERM the node closes its connections (clients see connection.close) and
# stops its queues' replicas before it goes, as `rabbitmqctl stop` would, without a CLI run.
stop_node() {
    local n=$1 pid deadline=$((SECONDS + WAIT_SECS))
    pid=$(node_pid "$n") || return 0
    log "stopping $(node_name "$n")"
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill_node "$n"
            return 0
        fi
        sleep 0.1
    done
}

kill_node() {
    local n=$1 pid
    pid=$(node_pid "$n") || return 0
    log "killing $(node_name "$n") (pid $pid)"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

stop() {
    local n
    for n in "${NODES[@]}"; do
        stop_node "$n" &
    done
    wait
    # Only a directory this script made (CALLQ_CLUSTER_DIR could name any).
    if [ -f "$DIR/rabbitmq-env.conf" ] && [ -d "$DIR/node1" ]; then
        rm -rf "$DIR"
        log "cluster stopped; $DIR removed"
    elif [ -e "$DIR" ]; then
        log "cluster stopped; $DIR left in place: not a directory this script made"
    fi
}

status() {
    local n
    n=$(any_running) || die "no node of the cluster in $DIR is running"
    ctl "$n" cluster_status
    echo
    ctl "$n" list_queues name type leader members online
}

# leader QUEUE: the number (1-3) of the node leading the quorum queue QUEUE; fails while it
# has none (an election under way).
leader() {
    local queue=${1:?usage: leader QUEUE} n node
    n=$(any_running) || die "no node of the cluster in $DIR is running"
    node=$(ctl "$n" list_queues --no-table-headers name leader | awk -v q="$queue" '$1 == q { print $2 }')
    [ -n "$node" ] || die "no queue $queue in the cluster"
    node_number "$node"
}

# online QUEUE: how many of the quorum queue QUEUE's members are running. A queue survives
# the loss of a node only while the other two members run.
online() {
    local queue=${1:?usage: online QUEUE} n count
    n=$(any_running) || die "no node of the cluster in $DIR is running"
    count=$(ctl "$n" list_queues --no-table-headers name online |
        awk -v q="$queue" '$1 == q { print gsub(/@/, "@") }')
    [ -n "$count" ] || die "no queue $queue in the cluster"
    printf '%s\n' "$count"
}

# connected NAME: the numbers (1-3) of the nodes holding a client connection named NAME (the
# connection_name a client gives, e.g. "gateway"), one a line.
connected() {
    local name=${1:?usage: connected NAME} n
    n=$(any_running) || die "no node of the cluster in $DIR is running"
    ctl "$n" list_connections --no-table-headers client_properties port |
        awk -v want="{\"connection_name\",\"$name\"}" 'index($0, want) { print $NF }' |
        while read -r port; do
            printf '%s\n' $((port - AMQP_PORT + 1))
        done | sort -u
}

node_number() {
    local node=$1 n
    for n in "${NODES[@]}"; do
        if [ "$node" = "$(node_name "$n")" ]; then
            printf '%s\n' "$n"
            return 0
        fi
    done
    die "$node is not a node of this cluster"
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
urls) urls ;;
start-node)
    check_node "${2:-}"
    start_node "$2"
    ;;
stop-node)
    check_node "${2:-}"
    stop_node "$2"
    ;;
kill-node)
    check_node "${2:-}"
    kill_node "$2"
    ;;
leader) leader "${2:-}" ;;
online) online "${2:-}" ;;
connected) connected "${2:-}" ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
