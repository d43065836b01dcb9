#!/usr/bin/env bash
# The benchmark: raw limits of RabbitMQ and Postgres, the gateway, the worker and the whole
# pipeline, on this machine, at each size. Starts (or installs) PostgreSQL and RabbitMQ when
# they are not running, builds the release binaries, then runs target/release/bench, which
# makes and removes its own databases and queues.
#
#   deploy/bench.sh                          # sizes 20000 and 200000
#   deploy/bench.sh --sizes 2000             # a quick check
#   deploy/bench.sh --concurrency 32 --out /tmp/bench.json
#   APP_WORKER__PREFETCH=128 deploy/bench.sh # APP_* variables reach gateway and worker
#
# JSON: target/bench/latest.json and a timestamped copy (CARGO_TARGET_DIR is respected).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=deploy/lib.sh source-path=SCRIPTDIR/..
. deploy/lib.sh

ensure_postgres
ensure_rabbitmq

# The whole workspace, so the gateway and worker measured are those of this checkout.
cargo build --release --bins

exec "${CARGO_TARGET_DIR:-target}/release/bench" "$@"
