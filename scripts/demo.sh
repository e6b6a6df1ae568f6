#!/usr/bin/env bash
# Sets up ./.venv and runs the demo: ingest the bundled sample corpus (English + Japanese Debian package
# descriptions) into an embedded seekdb in a temporary folder, then search it. Offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python examples/demo.py "$@"
