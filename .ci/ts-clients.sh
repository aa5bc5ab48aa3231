#!/usr/bin/env bash
# Installs the official TypeScript MCP SDK and mcp-remote that tests/it/oauth.rs drives the
# server with (tests/ts/oauth.mjs; mcp-remote's proxy), and oauth2-mock-server, the token
# issuer of its --oauth-issuer test (tests/ts/issuer.mjs): npm ci into .ci/node-clients (git-ignored node_modules, pinned by
# its package-lock.json), reused while the lock file is unchanged. .ci/test runs this
# before cargo test.
set -euo pipefail
cd "$(dirname "$0")/node-clients"
stamp=node_modules/.package-lock.json.installed
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
    npm ci --no-audit --no-fund --silent
    cp package-lock.json "$stamp"
fi
echo "TypeScript MCP SDK for the client tests: $(node -p 'require("./node_modules/@modelcontextprotocol/sdk/package.json").version') in .ci/node-clients"
