#!/usr/bin/env bash
# Checks the alert rules (syntax, then their unit tests in alerts_test.yml) and the PromQL of
# every dashboard panel with promtool. That both use only metrics the services export is
# checked by the pipeline test tests/tests/observability.rs, which scrapes a running gateway
# and worker. Installs Debian's prometheus package for promtool when it is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=deploy/lib.sh
. ../lib.sh

ensure_promtool

promtool check rules alerts.yml
promtool test rules alerts_test.yml

# The dashboard's queries as recording rules, Grafana's interval variables given a value,
# so that promtool parses each one.
rules=$(mktemp --suffix=.yml)
trap 'rm -f "$rules"' EXIT
python3 - dashboard.json >"$rules" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
print("groups:\n  - name: dashboard\n    rules:")
for n, panel in enumerate(dashboard["panels"]):
    for target in panel.get("targets", []):
        expr = target["expr"].replace("$__rate_interval", "5m").replace("$__interval", "1m")
        print(f"      - record: dashboard:panel{n}:{target['refId']}")
        print(f"        expr: {json.dumps(expr)}")
PY
promtool check rules "$rules"
echo "observability: alert rules, their tests and the dashboard's queries are valid"
