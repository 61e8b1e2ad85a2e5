#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite. Exit status is pytest's, except that
# "no tests collected" (pytest's 5) is turned into a failure message rather than a silent pass.
set -euo pipefail
cd "$(dirname "$0")/.."
# --fast: the quick tier for a developer's loop (no end-to-end, interop, browser, PostgreSQL or Java
# tests; see the markers in setup.cfg). CI runs everything.
FAST=()
if [ "${1:-}" = "--fast" ]; then
  shift
  FAST=(-m "not slow and not postgres and not java and not browser" -q)
fi
# Two processes for the whole suite (pytest-xdist; --dist loadfile: a test module runs in one process, so its
# fixtures are made once): it waits on the child processes and servers it starts much of the time, so one
# process keeps less than one of CI's two cores busy (17 min 51 s -> 10 min 50 s of pytest). The fast tier
# keeps one: the second process's start-up ate its gain (55.9 s against 56.5 s wall, 91 s of CPU against 53 s).
# RACENTRE_TEST_PROCESSES=N sets the number (0: this process).
if [ ${#FAST[@]} -gt 0 ]; then
  PROCESSES="${RACENTRE_TEST_PROCESSES:-0}"
else
  PROCESSES="${RACENTRE_TEST_PROCESSES:-2}"
fi
PARALLEL=()
if [ "$PROCESSES" != "0" ]; then
  PARALLEL=(-n "$PROCESSES" --dist loadfile)
fi
scripts/setup.sh
# pytest keeps its assertion-rewritten test modules, and Python the project's modules, as bytecode in the
# (ignored) __pycache__ folders: with PYTHONDONTWRITEBYTECODE set, every run - and every child
# interpreter a test starts - compiles them all again (about 6 s of CPU of the fast tier's 35)
unset PYTHONDONTWRITEBYTECODE
set +e
.venv/bin/python -m pytest "${PARALLEL[@]}" "${FAST[@]}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests - that is a failure" >&2
  exit 1
fi
exit "$rc"
