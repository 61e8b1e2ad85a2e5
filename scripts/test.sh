#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite. Exit status is pytest's, except that
# "no tests collected" (pytest's 5) is turned into a failure message rather than a silent pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests - that is a failure" >&2
  exit 1
fi
exit "$rc"
