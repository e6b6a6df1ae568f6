#!/usr/bin/env bash
# Sets up ./.venv and runs the whole test suite (what CI runs, verbatim, through .ci/run):
#   1. every test against the embedded seekdb (pylibseekdb, in-process default);
#   2. the store suite again against a real seekdb *server* on TCP (the wheel's own binary), i.e. the
#      DSN code path a seekdb server or an OceanBase cluster uses. Skip with OBEMBED_SKIP_SERVER_TESTS=1.
# Extra arguments go to pytest and run step 1 only, e.g. `bash scripts/test.sh tests/core -x`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "all,test" || exit 1
bash scripts/install-chromium.sh || exit 1   # the web page is tested in a real headless Chromium
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python -m pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then echo "test.sh: pytest collected no tests: that is a failure" >&2; exit 1; fi
[[ $rc -eq 0 ]] || exit $rc
if [[ $# -eq 0 && "${OBEMBED_SKIP_SERVER_TESTS:-0}" != 1 ]]; then
  dir=$(mktemp -d -t obembed-seekdb-server.XXXXXX)
  echo "test.sh: store suite against a seekdb server (DSN mode)"
  if ! dsn=$(bash scripts/seekdb-server.sh start "$dir"); then
    echo "test.sh: could not start the seekdb server" >&2; exit 1
  fi
  OBEMBED_TEST_DSN=$dsn .venv/bin/python -m pytest tests/store -q
  rc=$?
  bash scripts/seekdb-server.sh stop "$dir" >/dev/null 2>&1 || true
  if [[ $rc -eq 5 ]]; then echo "test.sh: no store tests ran in DSN mode" >&2; exit 1; fi
fi
exit $rc
