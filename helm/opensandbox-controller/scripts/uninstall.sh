#!/usr/bin/env bash
# Uninstalls the opensandbox-controller release from the current kube context.
#
#   scripts/uninstall.sh [-n NAMESPACE] [-r RELEASE] [--purge-crds] [--yes]
#
# The CRDs (and every sandbox object) survive `helm uninstall` by design. --purge-crds deletes
# all BatchSandboxes, SandboxSnapshots and Pools first, while the manager still runs and can
# clear their finalizers, then uninstalls the release and deletes the CRDs. It asks first
# unless --yes is given.
set -euo pipefail

namespace="opensandbox-system"
release="opensandbox"
purge_crds=false
assume_yes=false
crds=(batchsandboxes.sandbox.opensandbox.io sandboxsnapshots.sandbox.opensandbox.io pools.sandbox.opensandbox.io)

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -n|--namespace) namespace="$2"; shift 2 ;;
    -r|--release) release="$2"; shift 2 ;;
    --purge-crds) purge_crds=true; shift ;;
    -y|--yes) assume_yes=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "uninstall.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

for tool in helm kubectl; do
  command -v "$tool" >/dev/null || { echo "uninstall.sh: $tool is required" >&2; exit 1; }
done

delete_sandbox_objects() {
  local kind
  # BatchSandboxes before Pools: a pooled sandbox returns its pods to the pool on deletion.
  for kind in batchsandboxes sandboxsnapshots pools; do
    if kubectl get crd "${kind}.sandbox.opensandbox.io" >/dev/null 2>&1; then
      echo "uninstall.sh: deleting all ${kind} in all namespaces"
      kubectl delete "${kind}.sandbox.opensandbox.io" --all --all-namespaces --wait=true --timeout=5m
    fi
  done
}

if [[ "$purge_crds" == true ]]; then
  context="$(kubectl config current-context)"
  if [[ "$assume_yes" != true ]]; then
    read -r -p "Delete EVERY Pool, BatchSandbox and SandboxSnapshot in context ${context}, then the CRDs? [y/N] " answer
    [[ "$answer" == y || "$answer" == Y ]] || { echo "uninstall.sh: aborted"; exit 1; }
  fi
  delete_sandbox_objects
fi

if helm status "$release" --namespace "$namespace" >/dev/null 2>&1; then
  helm uninstall "$release" --namespace "$namespace" --wait
else
  echo "uninstall.sh: release ${release} not found in namespace ${namespace}"
fi

if [[ "$purge_crds" == true ]]; then
  kubectl delete crd "${crds[@]}" --ignore-not-found
fi
echo "uninstall.sh: done"
