#!/usr/bin/env bash
# Installs the official MCP Python SDK that tests/it/python_clients.rs drives the binary with:
# a venv in .ci/venv-clients (git-ignored, reused while .ci/requirements-clients.txt is
# unchanged), pinned by .ci/requirements-clients.txt. .ci/test runs this before cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.ci/venv-clients
stamp=$venv/.requirements-clients.txt
if ! cmp -s .ci/requirements-clients.txt "$stamp" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/requirements-clients.txt
    cp .ci/requirements-clients.txt "$stamp"
fi
echo "Python MCP SDK for the client tests: mcp $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))') in $venv"
