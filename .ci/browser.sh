#!/usr/bin/env bash
# The browser the sign-in page and app view tests drive: Debian's chromium and
# chromium-driver (Playwright's own browser download is not used; the tests hand Playwright
# /usr/bin/chromium as its executable). Playwright itself is pinned in
# .ci/requirements-clients.txt and installed by .ci/python-clients.sh.
set -euo pipefail
# The tests hand Playwright /usr/bin/chromium itself: a chromium elsewhere on PATH (a snap)
# is not the one they run.
if [[ -x /usr/bin/chromium ]] && command -v chromedriver >/dev/null 2>&1; then
    /usr/bin/chromium --version
    exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
    sudo="sudo"
fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
chromium --version
