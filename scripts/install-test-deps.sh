#!/usr/bin/env bash
# What only the test suite needs beyond `make install`: Chromium, to open the run report and the
# MLflow UI headless the way a user's browser does (tests/integration/test_browser.py drives it
# over the DevTools protocol: no chromedriver, no extra Python package).
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing chromium with apt-get (the browser tests open report.html and the MLflow UI)"
  log="$(mktemp)"
  { $SUDO apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } >"$log" 2>&1 \
    || { cat "$log"; echo "installing chromium failed (above)" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
  command -v chromium >/dev/null 2>&1 \
    || { echo "apt-get installed no chromium command: install Chromium yourself" >&2; exit 1; }
else
  echo "chromium is needed by the browser tests: install it with your package manager" >&2
  exit 1
fi
