#!/usr/bin/env bash
# The raw upsert rate at table sizes: the worker's own statement into calls with 0, 5 and
# 20 million calls already stored (docs/scale.md). Fills a database of its own with
# INSERT .. SELECT generate_series and drops it afterwards, whatever happens.
#
#   deploy/scale-bench.sh                                  # 0, 5 and 20 million rows
#   deploy/scale-bench.sh --rows 0,1000000 --calls 50000   # a quick check
#
# 20 million calls take about 12 GB while they last (calls, keys, indexes, WAL): the script
# refuses to start with less than FREE_GB (default 16) free where Postgres keeps its data.
# JSON: target/bench/upsert-scale.json (CARGO_TARGET_DIR is respected), or --out.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=deploy/lib.sh source-path=SCRIPTDIR/..
. deploy/lib.sh

ensure_postgres

data_dir=$(psql -h 127.0.0.1 -U postgres -Atc 'SHOW data_directory' 2>/dev/null || echo /)
free_gb=$(df -P -BG "$data_dir" 2>/dev/null | awk 'NR == 2 { sub("G", "", $4); print $4 }')
if [ -n "$free_gb" ] && [ "$free_gb" -lt "${FREE_GB:-16}" ]; then
  echo "scale-bench: only ${free_gb} GB free for $data_dir; FREE_GB=${FREE_GB:-16} wanted" >&2
  exit 1
fi

cargo build --release -p bench

exec "${CARGO_TARGET_DIR:-target}/release/bench" upsert-scale "$@"
