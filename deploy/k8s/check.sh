#!/usr/bin/env bash
# Checks the Kubernetes packaging offline, without a cluster: renders every overlay with
# kustomize (kubectl's built-in one, or a kustomize binary) and validates each object against
# Kubernetes' JSON schemas (strict) for the oldest and newest versions we claim, KEDA's kinds
# against schemas/, then callq's own rules (rules.py). The schemas come with the PyPI package
# kubernetes-validate, installed once into a venv under ~/.cache; later runs need no network.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

# 1.27: the oldest with CronJob.spec.timeZone (retention-cronjob.yaml). 1.37: the newest the
# pinned kubernetes-validate bundles.
KUBERNETES_VERSIONS=(1.27.0 1.37.0)
VALIDATOR=kubernetes-validate==1.37.0

die() {
    printf 'deploy/k8s/check.sh: %s\n' "$*" >&2
    exit 1
}

render() {
    if command -v kubectl >/dev/null 2>&1; then
        kubectl kustomize "$1"
    elif command -v kustomize >/dev/null 2>&1; then
        kustomize build "$1"
    else
        die "needs kubectl (its built-in kustomize) or kustomize on PATH"
    fi
}

venv=${XDG_CACHE_HOME:-$HOME/.cache}/callq/k8s-check/${VALIDATOR//=/-}
if ! "$venv/bin/python" -c 'import kubernetes_validate' >/dev/null 2>&1; then
    command -v python3 >/dev/null 2>&1 || die "needs python3"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$VALIDATOR" \
        || die "cannot install $VALIDATOR from PyPI"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rendered=()
for overlay in overlays/*/; do
    name=$(basename "$overlay")
    render "$overlay" >"$out/$name.yaml" || die "kustomize could not render $overlay"
    rendered+=("$out/$name.yaml")
done
[ ${#rendered[@]} -gt 0 ] || die "no overlay under deploy/k8s/overlays"

versions=()
for v in "${KUBERNETES_VERSIONS[@]}"; do versions+=(--kubernetes "$v"); done
status=0
"$venv/bin/python" validate.py "${versions[@]}" "${rendered[@]}" secret.example.yaml || status=1
"$venv/bin/python" rules.py "${rendered[@]}" || status=1
[ "$status" -eq 0 ] && echo "deploy/k8s: ${#rendered[@]} overlay(s) valid"
exit "$status"
