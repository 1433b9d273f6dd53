#!/usr/bin/env bash
# Checks the deployment files under gateway/deploy/ (not run by .ci/run):
#   - systemd units: `systemd-analyze verify` and `systemd-analyze security --offline=true`
#     exposure scores (fails above MAX_EXPOSURE, default 2.0);
#   - Kubernetes: `kubectl kustomize` of each folder, validated with kubernetes-validate
#     (--strict, Kubernetes K8S_VERSION, default 1.35.0), installed into target/deploy-venv
#     on first use.
# systemd-analyze verify needs ExecStart's binary to exist: the units are verified from a
# temporary copy whose ExecStart is target/{release,debug}/sluice if built, else /bin/true.
# Exits non-zero on the first failure; a missing systemd-analyze or kubectl fails too.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
deploy="$root/gateway/deploy"
max_exposure=${MAX_EXPOSURE:-2.0}
k8s_version=${K8S_VERSION:-1.35.0}
venv="$root/target/deploy-venv"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

need() { command -v "$1" >/dev/null || { echo "check.sh: $1 not found" >&2; exit 1; }; }
need systemd-analyze
need kubectl
need python3

bin=/bin/true
for b in "$root/target/release/sluice" "$root/target/debug/sluice"; do
  if [ -x "$b" ]; then bin=$b; break; fi
done
echo "== systemd (ExecStart checked with $bin)"
for unit in "$deploy"/systemd/*.service; do
  name=$(basename "$unit")
  sed "s#^ExecStart=/usr/local/bin/sluice#ExecStart=$bin#" "$unit" > "$tmp/$name"
  if [ "$bin" = /bin/true ]; then
    sed -i "s#^ExecStart=/bin/true .*#ExecStart=/bin/true#" "$tmp/$name"
  fi
  timeout 60 systemd-analyze verify "$tmp/$name"
  score=$(timeout 60 systemd-analyze security --offline=true "$tmp/$name" \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  [ -n "$score" ] || { echo "$name: no exposure score" >&2; exit 1; }
  echo "$name: verify ok, exposure $score"
  awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s + 0 <= m + 0) }' \
    || { echo "$name: exposure $score above $max_exposure" >&2; exit 1; }
done

echo "== kubernetes (kubernetes-validate --strict, Kubernetes $k8s_version)"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  timeout 300 "$venv/bin/pip" install --quiet kubernetes-validate
fi
for dir in "$deploy"/kubernetes/*/; do
  name=$(basename "$dir")
  timeout 60 kubectl kustomize "$dir" > "$tmp/$name.yaml"
  timeout 120 "$venv/bin/kubernetes-validate" --strict --quiet \
    --kubernetes-version "$k8s_version" "$tmp/$name.yaml"
  echo "$name: $(grep -c '^kind:' "$tmp/$name.yaml") resources valid"
done
echo "deploy checks passed"
