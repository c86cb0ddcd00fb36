#!/usr/bin/env bash
# Runs every test of the project: Rust unit, actor and integration tests, then the
# Python end-to-end and chart tests. Installs what they need first (idempotent).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

hack/install-tools.sh
hack/python-env.sh
export PATH="$root/.cache/tools/bin:$PATH"

cargo build --workspace --bins
cargo test --workspace --no-fail-fast

export OPENSANDBOX_BIN="$root/target/debug/opensandbox"
export OPENSANDBOX_EXECUTOR_BIN="$root/target/debug/opensandbox-executor"
if compgen -G "tests/python/test_*.py" >/dev/null; then
  tests/python/.venv/bin/python -m pytest -q tests/python
fi
