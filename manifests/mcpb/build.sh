#!/usr/bin/env bash
# Packs a Claude Desktop extension bundle (.mcpb) around one handinger-mcp binary:
#
#   manifests/mcpb/build.sh <binary> <out-dir>
#
# writes <out-dir>/handinger-mcp-<version>-<platform>.mcpb: manifests/mcpb/manifest.json with
# `compatibility.platforms` narrowed to the binary's operating system (read from its
# header), and the binary at the manifest's entry point (server/handinger-mcp, .exe on
# Windows). The manifest cannot choose by CPU, so a macOS bundle should carry a universal
# binary (lipo -create); a Linux bundle is for the one architecture its binary runs on.
# Packs with @anthropic-ai/mcpb at the version .ci/node/package-lock.json pins (installed
# there with npm ci when missing). Needs Node.js 18+ and npm.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 <binary> <out-dir>" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
binary=$1
out=$2
[ -f "$binary" ] || { echo "no binary at $binary" >&2; exit 1; }

platform=$(node "$here/../binary-platform.js" "$binary")
os=${platform%-*}
exe=handinger-mcp
[ "$os" = win32 ] && exe=handinger-mcp.exe

mcpb="$repo/.ci/node/node_modules/.bin/mcpb"
if [ ! -x "$mcpb" ]; then
    npm ci --prefix "$repo/.ci/node" --no-audit --no-fund --loglevel=error
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bundle/server"
cp "$binary" "$stage/bundle/server/$exe"
chmod 0755 "$stage/bundle/server/$exe"
# The bundle's manifest: this platform only, and on Windows the .exe as the entry point
# (the checked-in manifest names the Unix one and overrides the command for win32).
version=$(OS=$os EXE=$exe node -e '
  const fs = require("node:fs");
  const manifest = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  manifest.compatibility = { ...manifest.compatibility, platforms: [process.env.OS] };
  if (process.env.OS === "win32") {
    manifest.server.entry_point = `server/${process.env.EXE}`;
    manifest.server.mcp_config.command = `\${__dirname}/server/${process.env.EXE}`;
  }
  fs.writeFileSync(process.argv[2], JSON.stringify(manifest, null, 2) + "\n");
  process.stdout.write(manifest.version);
' "$here/manifest.json" "$stage/bundle/manifest.json")
entry=$(node -p "require('$stage/bundle/manifest.json').server.entry_point")
if [ "$entry" != "server/$exe" ]; then
    echo "the manifest's entry_point is $entry, not server/$exe" >&2
    exit 1
fi

mkdir -p "$out"
bundle="$(cd "$out" && pwd)/handinger-mcp-$version-$platform.mcpb"
"$mcpb" pack "$stage/bundle" "$bundle"
