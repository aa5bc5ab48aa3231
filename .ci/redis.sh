#!/usr/bin/env bash
# tests/it/shared_store.rs starts its own redis-server on a loopback port: install Debian's
# package when the command is missing.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    redis-server --version
    exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
    sudo="sudo"
fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
redis-server --version
