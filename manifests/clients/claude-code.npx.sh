#!/bin/sh
# Adds handinger-mcp (stdio, through npx: needs Node.js 18+, no binary on PATH) to Claude Code
# for your user. Takes the key from your shell's HANDINGER_API_KEY.
claude mcp add handinger --scope user --env HANDINGER_API_KEY="$HANDINGER_API_KEY" -- npx -y handinger-mcp stdio
