#!/usr/bin/env bash
# Creates tests/python/.venv with the packages the end-to-end and chart tests use
# (the official OpenSandbox SDK and CLI from PyPI, pytest, kubernetes-validate).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/tests/python/.venv"
req="$root/tests/python/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
# A half-made venv (an interrupted earlier run) is rebuilt from scratch.
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
echo "python-env: $venv ready"
