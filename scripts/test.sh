#!/usr/bin/env bash
# Run the test suite (pytest). Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pytest -q --durations=15 "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "no tests were collected" >&2
fi
exit "$status"
