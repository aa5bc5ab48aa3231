#!/bin/sh
# Adds a handinger-mcp HTTP deployment to Claude Code for your user. Takes the deployment's
# token from your shell's HANDINGER_MCP_AUTH_TOKEN. For a deployment started with
# --key-from-request, add: --header "X-Handinger-Api-Key: $HANDINGER_API_KEY"
claude mcp add --transport http handinger --scope user http://127.0.0.1:8787/mcp \
  --header "Authorization: Bearer $HANDINGER_MCP_AUTH_TOKEN"
