#!/usr/bin/env bash
# Instructions per call of the gateway and the worker: the benchmark at one small size, with
# both services run under valgrind's callgrind.
#
# Why: this machine's speed moves by up to half within an hour, so the benchmark's rates
# cannot tell a change worth 3 % from noise. Instruction counts repeat to a fraction of a
# percent (four runs of the gateway at one commit: 198 766 to 199 151 a call), so they show
# whether a change to our own code made a call cheaper.
# What they miss: the kernel's work (sockets, wake-ups), cache misses and waiting; and
# valgrind hides some CPU features (SHA-NI, for one), so library code may take a slower
# path than it does for real. Confirm a win in the benchmark before believing it is one.
#
#   deploy/instructions.sh          # 3000 calls
#   deploy/instructions.sh 5000
#
# Prints a line per service kind: the gateway, the worker running both stages (storing and
# probing), the worker with only the calls stage (storing) and the worker with only the probe
# stage (the benchmark's last two phases); start-up is counted in. Callgrind's files are left
# in target/instructions/ for `callgrind_annotate --inclusive=yes FILE`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=deploy/lib.sh source-path=SCRIPTDIR/..
. deploy/lib.sh

calls="${1:-3000}"
command -v valgrind >/dev/null || { _callq_err "valgrind is not installed (apt-get install valgrind)"; exit 1; }
ensure_postgres
ensure_rabbitmq
cargo build --release --bins

target="${CARGO_TARGET_DIR:-target}"
out="$(cd "$target" && pwd)/instructions"
rm -rf "$out"
mkdir -p "$out/bin"
cp "$target/release/bench" "$out/bin/"
# The bench starts the services found beside it: these stand-ins run the real ones under
# callgrind, a worker with worker.stages set in files of its own (worker-calls, worker-probes).
for service in gateway worker; do
    cp "$target/release/$service" "$out/bin/$service.real"
    cat >"$out/bin/$service" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file="$out/$service\${APP_WORKER__STAGES:+-\$APP_WORKER__STAGES}.%p.callgrind" "$out/bin/$service.real" "\$@"
EOF
    chmod +x "$out/bin/$service"
done

_callq_log "benchmark at $calls calls under callgrind (log: $out/bench.log)"
"$out/bin/bench" --sizes "$calls" --out "$out/bench.json" >"$out/bench.log" 2>&1 \
    || { tail -20 "$out/bench.log" >&2; exit 1; }

# The gateway handles the size four times (alone, end to end, end to end with bad hosts, and
# the backlog of the storage-only drain); the worker with both stages three times (its drain,
# end to end, bad hosts: storing every call and probing all but the bad hosts' unanswered
# ones); the storage-only worker and the probe-only worker once each.
count() {
    local name="$1" handled="$2" total=0 file instructions
    for file in "$out/$name".*.callgrind; do
        instructions=$(callgrind_annotate "$file" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
        total=$((total + instructions))
    done
    printf '%s: %d instructions a call (%d calls handled)\n' "$name" $((total / handled)) "$handled"
}
count gateway $((4 * calls))
count worker $((3 * calls))
count worker-calls "$calls"
count worker-probes "$calls"
