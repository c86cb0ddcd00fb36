#!/usr/bin/env bash
# Installs or upgrades the opensandbox-controller chart into the current kube context.
#
#   scripts/install.sh [-n NAMESPACE] [-r RELEASE] [-f VALUES.yaml]... [-- EXTRA HELM ARGS...]
#
# Defaults: namespace opensandbox-system, release opensandbox. Waits for the manager rollout.
set -euo pipefail

chart_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
namespace="opensandbox-system"
release="opensandbox"
timeout="5m"
values_args=()

usage() {
  sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -n|--namespace) namespace="$2"; shift 2 ;;
    -r|--release) release="$2"; shift 2 ;;
    -f|--values) values_args+=(-f "$2"); shift 2 ;;
    -t|--timeout) timeout="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

for tool in helm kubectl; do
  command -v "$tool" >/dev/null || { echo "install.sh: $tool is required" >&2; exit 1; }
done

context="$(kubectl config current-context)"
echo "install.sh: installing release ${release} into namespace ${namespace} (context ${context})"

helm upgrade --install "$release" "$chart_dir" \
  --namespace "$namespace" --create-namespace \
  --wait --timeout "$timeout" \
  "${values_args[@]}" "$@"

deployment="$(kubectl -n "$namespace" get deployment \
  -l "app.kubernetes.io/instance=${release},app.kubernetes.io/component=controller-manager" \
  -o jsonpath='{.items[0].metadata.name}')"
kubectl -n "$namespace" rollout status "deployment/${deployment}" --timeout "$timeout"
echo "install.sh: done; 'helm status ${release} -n ${namespace}' shows how to reach the SDK API"
