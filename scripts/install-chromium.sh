#!/bin/sh
# Install Debian's chromium for the web-page test (tests/server/test_page.py), only when it is missing.
# Idempotent; needs root (or sudo) for apt-get. Usage: scripts/install-chromium.sh
set -eu
if command -v chromium >/dev/null 2>&1; then
    echo "chromium present: $(command -v chromium)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
command -v chromium
