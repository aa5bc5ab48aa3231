#!/usr/bin/env bash
# Packs the npm packages for one handinger-mcp binary:
#
#   manifests/npm/build.sh <binary> <out-dir>
#
# writes two tarballs into <out-dir>: the launcher `handinger-mcp-<version>.tgz` (the same
# for every platform) and the platform package `handinger-mcp-<platform>-<arch>-<version>.tgz`
# (npm name @handinger/mcp-<platform>-<arch>) carrying this binary, with `os` and `cpu` set
# from the binary's own header. Publish every platform package first, then the launcher:
# its optionalDependencies name them at the same version. Needs Node.js 18+ and npm.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 <binary> <out-dir>" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
binary=$1
out=$2
[ -f "$binary" ] || { echo "no binary at $binary" >&2; exit 1; }

platform=$(node "$here/../binary-platform.js" "$binary")
case "$platform" in
*-universal)
    echo "$binary is a universal binary; npm packages are per architecture: pass each one" >&2
    exit 1
    ;;
esac
os=${platform%-*}
cpu=${platform#*-}
name="@handinger/mcp-$platform"
version=$(node -p "require('$here/launcher/package.json').version")
if ! node -e "process.exit(require('$here/launcher/package.json').optionalDependencies['$name'] === '$version' ? 0 : 1)"; then
    echo "the launcher's optionalDependencies do not list $name at $version" >&2
    exit 1
fi
exe=handinger-mcp
[ "$os" = win32 ] && exe=handinger-mcp.exe

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R "$here/launcher" "$stage/launcher"
mkdir -p "$stage/platform/bin"
cp "$binary" "$stage/platform/bin/$exe"
chmod 0755 "$stage/platform/bin/$exe"
NAME=$name VERSION=$version OS=$os CPU=$cpu node -e '
  const launcher = require(process.argv[1]);
  const pkg = {
    name: process.env.NAME,
    version: process.env.VERSION,
    description: `The handinger-mcp binary for ${process.env.OS}-${process.env.CPU}; installed and run by the handinger-mcp package.`,
    homepage: launcher.homepage,
    repository: launcher.repository,
    os: [process.env.OS],
    cpu: [process.env.CPU],
    files: ["bin/"],
    preferUnplugged: true,
  };
  require("node:fs").writeFileSync(process.argv[2], JSON.stringify(pkg, null, 2) + "\n");
' "$here/launcher/package.json" "$stage/platform/package.json"
printf '# %s\n\nThe `handinger-mcp` binary for %s. Install `handinger-mcp` instead (`npx -y handinger-mcp`):\nit picks this package on %s.\n' \
    "$name" "$platform" "$platform" >"$stage/platform/README.md"

mkdir -p "$out"
out=$(cd "$out" && pwd)
(cd "$stage" && npm pack --silent --pack-destination "$out" ./launcher ./platform)
