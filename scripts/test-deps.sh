#!/usr/bin/env bash
# What the test suite needs besides Python packages (tests install nothing themselves):
# - Debian's Chromium, for the report's end-to-end test (tests/test_report.py);
# - json-server 0.17, locked in examples/json-server/package-lock.json, for
#   tests/test_json_server.py (Node.js and npm from the machine, or Debian's packages);
# - swagger2openapi 7, locked in tools/swagger2openapi/package-lock.json, which
#   `init --from-openapi` runs to convert Swagger 2.0 (tests/test_openapi_real.py);
# - Kinto and Jupyter Server from PyPI, each in a virtualenv of its own (their pins clash
#   with ours: Kinto wants setuptools<82), for tests/test_kinto.py and tests/test_jupyter.py;
#   Trac with TracAccountManager likewise, for tests/test_browser_trac.py (Chromium too).
set -euo pipefail
cd "$(dirname "$0")/.."
sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v chromium >/dev/null; then
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v npm >/dev/null; then
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
(cd examples/json-server && npm ci --no-audit --no-fund --silent)
(cd tools/swagger2openapi && npm ci --no-audit --no-fund --silent)
for api in kinto jupyter trac; do
  if [ ! -x "examples/$api/.venv/bin/python" ]; then python3 -m venv "examples/$api/.venv"; fi
  "examples/$api/.venv/bin/pip" install -q --disable-pip-version-check -r "examples/$api/requirements.txt"
done
