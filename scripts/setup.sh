#!/usr/bin/env bash
# Creates ./.venv (Python >= 3.11) and installs obembed with every extra.
# torch comes first and pinned: `torch==2.13.0` is the CPU build this machine has on disk; letting pip
# resolve a plain or newer torch would pull a multi-GB CUDA build. Idempotent: reruns are quick.
# usage: bash scripts/setup.sh [EXTRAS]      (default extras: all)
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-all}
py=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "obembed needs Python >= 3.11" >&2; exit 1; }
  "$py" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  pip install "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
fi
pip install -e ".[${extras}]" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c 'import torch, obembed; print(f"obembed {obembed.__version__} ready (torch {torch.__version__})")'
