#!/usr/bin/env bash
# End-to-end test of the chart against the CURRENT kube context (a real cluster that can pull
# the images). It installs the chart into a scratch namespace, creates a Pool and a pooled
# BatchSandbox, waits for both to be ready, drives the SDK lifecycle API over
# `kubectl port-forward` (pooled and non-pooled create, get, list, delete), and removes
# everything it created, also on failure.
#
# Environment (all optional):
#   MANAGER_IMAGE    repository:tag of the manager image   (default: chart default)
#   EXECUTOR_IMAGE   repository:tag of the executor image  (default: chart default)
#   SANDBOX_IMAGE    image of the sandboxes                 (default: python:3.11-slim)
#   E2E_NAMESPACE    scratch namespace                      (default: osb-e2e-<random>)
#   E2E_RELEASE      release name                           (default: osb-e2e)
#   E2E_TIMEOUT      wait timeout                           (default: 300s)
#   E2E_KEEP=1       leave everything in place for debugging
# Needs: helm, kubectl, curl, python3.
set -euo pipefail

chart_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
namespace="${E2E_NAMESPACE:-osb-e2e-$(LC_ALL=C tr -dc 'a-z0-9' </dev/urandom | head -c 6)}"
release="${E2E_RELEASE:-osb-e2e}"
timeout="${E2E_TIMEOUT:-300s}"
sandbox_image="${SANDBOX_IMAGE:-python:3.11-slim}"
api_key="$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 40)"
local_port="${E2E_LOCAL_PORT:-18080}"
pf_pid=""
created_crds=false
crds=(pools.sandbox.opensandbox.io batchsandboxes.sandbox.opensandbox.io sandboxsnapshots.sandbox.opensandbox.io)

log() { printf '\n=== %s\n' "$*"; }
fail() { printf 'e2e-test: FAIL: %s\n' "$*" >&2; exit 1; }

for tool in helm kubectl curl python3; do
  command -v "$tool" >/dev/null || fail "$tool is required"
done

# "repo:tag" -> helm --set arguments for <prefix>.repository / <prefix>.tag.
image_args() {
  local prefix="$1" image="$2"
  [[ -n "$image" ]] || return 0
  printf -- '--set\n%s.repository=%s\n--set\n%s.tag=%s\n' "$prefix" "${image%:*}" "$prefix" "${image##*:}"
}

# json_field KEY: prints the top-level string field KEY of the JSON document on stdin.
json_field() {
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

api() {
  # api METHOD PATH [BODY] -> prints "<status>\n<body>"
  local method="$1" path="$2" body="${3:-}" out
  out="$(mktemp)"
  local args=(-sS -o "$out" -w '%{http_code}' -X "$method" -H "OPEN-SANDBOX-API-KEY: ${api_key}"
              --max-time 180 "http://127.0.0.1:${local_port}${path}")
  if [[ -n "$body" ]]; then
    args+=(-H 'Content-Type: application/json' -d "$body")
  fi
  local status
  status="$(curl "${args[@]}")"
  printf '%s\n' "$status"
  cat "$out"
  rm -f "$out"
}

cleanup() {
  local rc=$?
  if [[ -n "$pf_pid" ]]; then
    kill "$pf_pid" 2>/dev/null || true
  fi
  if [[ "${E2E_KEEP:-}" == 1 ]]; then
    echo "e2e-test: E2E_KEEP=1, leaving namespace ${namespace} and release ${release}"
    exit "$rc"
  fi
  if [[ $rc -ne 0 ]]; then
    echo "e2e-test: failed; manager logs:" >&2
    kubectl -n "$namespace" logs -l app.kubernetes.io/component=controller-manager --tail=100 >&2 || true
  fi
  log "cleanup"
  kubectl -n "$namespace" delete batchsandboxes.sandbox.opensandbox.io --all --wait=true --timeout=120s || true
  kubectl -n "$namespace" delete pools.sandbox.opensandbox.io --all --wait=true --timeout=120s || true
  helm uninstall "$release" --namespace "$namespace" --wait || true
  kubectl delete namespace "$namespace" --wait=false || true
  if [[ "$created_crds" == true ]]; then
    kubectl delete crd "${crds[@]}" --ignore-not-found || true
  fi
  exit "$rc"
}
trap cleanup EXIT

log "context $(kubectl config current-context), namespace ${namespace}"
kubectl version >/dev/null || fail "cannot reach the cluster"

# CRDs already present (another installation) stay untouched: install without them.
crd_args=()
if kubectl get crd "${crds[0]}" >/dev/null 2>&1; then
  echo "e2e-test: CRDs already installed; installing with crds.install=false"
  crd_args=(--set crds.install=false)
else
  created_crds=true
fi

mapfile -t manager_args < <(image_args controllerManager.image "${MANAGER_IMAGE:-}")
mapfile -t executor_args < <(image_args controllerManager.executorImage "${EXECUTOR_IMAGE:-}")
mapfile -t task_args < <(image_args taskExecutor.image "${EXECUTOR_IMAGE:-}")
executor_image="${EXECUTOR_IMAGE:-opensandbox/executor:$(helm show chart "$chart_dir" | sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p')}"

log "helm install ${release}"
helm install "$release" "$chart_dir" \
  --namespace "$namespace" --create-namespace \
  --set "server.config.server.apiKey=${api_key}" \
  --set "controllerManager.watchNamespace=${namespace}" \
  "${crd_args[@]}" "${manager_args[@]}" "${executor_args[@]}" "${task_args[@]}" \
  --wait --timeout "$timeout"

deployment="$(kubectl -n "$namespace" get deployment \
  -l "app.kubernetes.io/instance=${release},app.kubernetes.io/component=controller-manager" \
  -o jsonpath='{.items[0].metadata.name}')"
service="$(kubectl -n "$namespace" get service \
  -l "app.kubernetes.io/instance=${release},app.kubernetes.io/component=server" \
  -o jsonpath='{.items[0].metadata.name}')"
kubectl -n "$namespace" rollout status "deployment/${deployment}" --timeout "$timeout"
for crd in "${crds[@]}"; do
  kubectl wait --for=condition=Established "crd/${crd}" --timeout=60s
done

log "create Pool e2e-pool"
kubectl apply -n "$namespace" -f - <<YAML
apiVersion: sandbox.opensandbox.io/v1alpha1
kind: Pool
metadata:
  name: e2e-pool
spec:
  capacitySpec: {poolMin: 2, poolMax: 4, bufferMin: 2, bufferMax: 3}
  template:
    spec:
      initContainers:
        - name: install-executor
          image: ${executor_image}
          command: ["cp", "/opensandbox-executor", "/opt/opensandbox/opensandbox-executor"]
          volumeMounts: [{name: opensandbox-bin, mountPath: /opt/opensandbox}]
      containers:
        - name: main
          image: ${sandbox_image}
          command: ["/opt/opensandbox/opensandbox-executor"]
          ports: [{containerPort: 44772, name: execd}]
          resources:
            requests: {cpu: 50m, memory: 64Mi}
            limits: {cpu: 500m, memory: 256Mi}
          volumeMounts: [{name: opensandbox-bin, mountPath: /opt/opensandbox}]
      volumes:
        - {name: opensandbox-bin, emptyDir: {}}
YAML
kubectl -n "$namespace" wait pool/e2e-pool --for=jsonpath='{.status.available}'=2 --timeout "$timeout"

log "create pooled BatchSandbox e2e-batch"
kubectl apply -n "$namespace" -f - <<YAML
apiVersion: sandbox.opensandbox.io/v1alpha1
kind: BatchSandbox
metadata:
  name: e2e-batch
spec:
  replicas: 1
  poolRef: e2e-pool
YAML
kubectl -n "$namespace" wait bsbx/e2e-batch --for=jsonpath='{.status.ready}'=1 --timeout "$timeout"

log "port-forward svc/${service} to 127.0.0.1:${local_port}"
kubectl -n "$namespace" port-forward "svc/${service}" "${local_port}:http" >/dev/null 2>&1 &
pf_pid=$!
for _ in $(seq 1 30); do
  if curl -fsS "http://127.0.0.1:${local_port}/health" >/dev/null 2>&1; then break; fi
  sleep 1
done
curl -fsS "http://127.0.0.1:${local_port}/health" >/dev/null || fail "SDK API /health not reachable"

log "unauthenticated calls are refused"
status="$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:${local_port}/v1/sandboxes")"
[[ "$status" == 401 ]] || fail "GET /v1/sandboxes without key: expected 401, got ${status}"

check_lifecycle() {
  local label="$1" body="$2" response status id
  log "SDK API: ${label} create"
  response="$(api POST /v1/sandboxes "$body")"
  status="$(head -n1 <<<"$response")"
  [[ "$status" == 202 ]] || fail "${label} create: expected 202, got ${status}: $(tail -n +2 <<<"$response")"
  id="$(tail -n +2 <<<"$response" | json_field id)"
  echo "created sandbox ${id}"

  status="$(api GET "/v1/sandboxes/${id}" | head -n1)"
  [[ "$status" == 200 ]] || fail "${label} get: expected 200, got ${status}"
  response="$(api GET "/v1/sandboxes/${id}/endpoints/44772")"
  [[ "$(head -n1 <<<"$response")" == 200 ]] || fail "${label} endpoint: $(tail -n +2 <<<"$response")"
  response="$(api GET "/v1/sandboxes?pageSize=200")"
  tail -n +2 <<<"$response" | grep -q "\"${id}\"" || fail "${label} list does not contain ${id}"

  status="$(api DELETE "/v1/sandboxes/${id}" | head -n1)"
  [[ "$status" == 204 ]] || fail "${label} delete: expected 204, got ${status}"
  status="$(api GET "/v1/sandboxes/${id}" | head -n1)"
  [[ "$status" == 404 ]] || fail "${label} get after delete: expected 404, got ${status}"
}

check_lifecycle "pooled" '{"extensions":{"poolRef":"e2e-pool"},"entrypoint":["tail","-f","/dev/null"],"timeout":600}'
check_lifecycle "non-pooled" "{\"image\":{\"uri\":\"${sandbox_image}\"},\"entrypoint\":[\"tail\",\"-f\",\"/dev/null\"],\"resourceLimits\":{\"cpu\":\"500m\",\"memory\":\"256Mi\"},\"timeout\":600}"

log "PASS"
