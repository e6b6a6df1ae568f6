#!/usr/bin/env bash
# Sets up ./.venv and runs the whole test suite (what CI runs, verbatim, through .ci/run).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/core -x`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "all,test" || exit 1
if [[ -f scripts/install-chromium.sh ]]; then bash scripts/install-chromium.sh || exit 1; fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python -m pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then echo "test.sh: pytest collected no tests: that is a failure" >&2; exit 1; fi
exit $rc
