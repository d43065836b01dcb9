#!/usr/bin/env bash
# The chaos run (README, "Operations"): the pipeline under steady load from the bench's load
# generator while RabbitMQ is restarted, the worker SIGKILLed mid-batch, a gateway SIGTERMed
# and Postgres stopped for a while; then the pipeline is drained and one table says what was
# accepted, stored, dead-lettered, lost and duplicated, and how long each fault took to pass.
# Exits non-zero when a call answered 2xx was lost or stored twice.
#
#   deploy/chaos.sh                          # one private RabbitMQ node
#   deploy/chaos.sh --cluster                # a three-node cluster (deploy/rabbitmq-cluster.sh);
#                                            # also stops the work queue's leader, then a follower
#   deploy/chaos.sh --pg-outage-secs 60 --rate 2000 --connections 32   # see: bench chaos --help
#   CHAOS_PROFILE=debug deploy/chaos.sh      # a debug build: quicker to build, slower to run
#
# Postgres and RabbitMQ are private instances it starts in a temporary directory on ports of
# their own (deploy/chaos-services.sh) and removes on exit; the machine's shared servers are
# never touched. APP_* variables reach the gateways and the worker, as with deploy/bench.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cluster=
for arg in "$@"; do
    case $arg in
    --cluster) cluster=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    esac
done

if [ -n "$cluster" ] && [ ! -x deploy/rabbitmq-cluster.sh ]; then
    echo "error: --cluster needs deploy/rabbitmq-cluster.sh, which this checkout does not have" >&2
    exit 2
fi

: "${CHAOS_PG_PORT:=55432}"
: "${CHAOS_AMQP_PORT:=55672}"
: "${CHAOS_DIST_PORT:=55673}"
export CHAOS_PG_PORT CHAOS_AMQP_PORT CHAOS_DIST_PORT

port_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" >/dev/null 2>&1
}

# Whatever answers on these ports is someone else's: the run would stop it.
ports=("$CHAOS_PG_PORT")
if [ -n "$cluster" ]; then ports+=(5701 5702 5703 25701 25702 25703); else ports+=("$CHAOS_AMQP_PORT" "$CHAOS_DIST_PORT"); fi
for port in "${ports[@]}"; do
    if port_open "$port"; then
        echo "error: 127.0.0.1:$port is in use (an earlier chaos run, or a cluster someone else started); stop it first" >&2
        exit 1
    fi
done

case ${CHAOS_PROFILE:-release} in
release) profile=release dir=release ;;
debug | dev) profile=dev dir=debug ;;
*)
    echo "error: CHAOS_PROFILE is release or debug" >&2
    exit 2
    ;;
esac
echo "==> cargo build --profile $profile --bins" >&2
cargo build --profile "$profile" --bins
target=${CARGO_TARGET_DIR:-target}

work=$(mktemp -d "${TMPDIR:-/tmp}/callq-chaos.XXXXXX")
services=(deploy/chaos-services.sh "$work")
if [ -n "$cluster" ]; then export CHAOS_CLUSTER=1; fi

# shellcheck disable=SC2317 # reached through the EXIT trap
on_exit() {
    local rc=$?
    set +e
    "${services[@]}" down
    # The services' logs outlive their directory, beside the bench's own.
    mkdir -p "$target/chaos"
    rm -rf "$target/chaos/services-logs"
    cp -r "$work/logs" "$target/chaos/services-logs" 2>/dev/null
    rm -rf "$work"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${services[@]}" up

if [ -n "$cluster" ]; then
    # Every node (broker.urls), for gateways and workers that move to another when theirs
    # dies; the bench's own connections take the first.
    eval "$(CALLQ_CLUSTER_DIR=$work/cluster deploy/rabbitmq-cluster.sh urls)"
    export APP_BROKER__URLS
    amqp=${APP_BROKER__URLS%%,*}
else
    amqp=amqp://guest:guest@127.0.0.1:$CHAOS_AMQP_PORT/%2f
fi

status=0
"$target/$dir/bench" chaos \
    --pg-admin-url "postgres://postgres@127.0.0.1:$CHAOS_PG_PORT/postgres" \
    --amqp-url "$amqp" \
    --control "$(printf '%q ' "${services[@]}")" \
    "$@" || status=$?
exit "$status"
