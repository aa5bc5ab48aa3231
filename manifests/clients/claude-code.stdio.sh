#!/bin/sh
# Adds handinger-mcp (stdio) to Claude Code for your user. Takes the key from your shell's
# HANDINGER_API_KEY; `handinger-mcp doctor` prints this with the binary's absolute path.
claude mcp add handinger --scope user --env HANDINGER_API_KEY="$HANDINGER_API_KEY" -- handinger-mcp stdio
