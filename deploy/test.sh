#!/usr/bin/env bash
# The whole test suite: unit tests of every crate and the black-box pipeline tests, which
# need a real PostgreSQL and RabbitMQ (started here, or installed, when they are not
# running). Each test makes its own database and queue names, so runs can overlap.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

# The Kubernetes manifests, rendered and validated offline (no cluster): seconds, so first.
deploy/k8s/check.sh

ensure_postgres
ensure_rabbitmq

# The alert rules' unit tests and the dashboard's queries (promtool); whether they name only
# exported metrics is a pipeline test (tests/tests/observability.rs).
deploy/observability/check.sh

# The pipeline tests run the worker and admin binaries as real processes.
cargo build --workspace --bins

# cargo prints one "test result" per test binary; the total goes last, so a reader (or CI)
# sees at a glance how many ran. The crates have no doc-tests.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\n%d passed, %d failed\n", p, f }' "$log"
exit "$status"
