#!/usr/bin/env bash
# The npm packages, packed and run the way a user gets them: manifests/npm/build.sh packs
# the launcher and this platform's package around BINARY, npm installs the two tarballs into
# an empty project offline (an empty npm cache, no registry: only what the tarballs carry),
# and `npx handinger-mcp` is driven over stdio by .ci/mcp_stdio_smoke.py (initialize,
# tools/list, one create_task against a fake API, stdin EOF, a bad flag's exit code); the
# launcher it installs must hand SIGTERM on to the binary and end as the binary did.
#
# Usage: .ci/check_npm.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:?usage: $0 BINARY}")
repo=$PWD

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash manifests/npm/build.sh "$binary" "$work/out"
version=$(node -p "require('./manifests/npm/launcher/package.json').version")
platform=$(node manifests/binary-platform.js "$binary")
launcher="$work/out/handinger-mcp-$version.tgz"
package="$work/out/handinger-mcp-$platform-$version.tgz" # npm's name for @handinger/mcp-…
ls -l "$work/out"
for tarball in "$launcher" "$package"; do
    [ -f "$tarball" ] || { echo "build.sh did not write $(basename "$tarball")" >&2; exit 1; }
done

mkdir "$work/project"
cd "$work/project"
echo '{"name": "npm-check", "private": true}' >package.json
# --offline with an empty cache: nothing can come from a registry. The other platforms'
# optional packages cannot be fetched and are skipped, as npm skips them on a real install
# when their os/cpu do not match.
npm install --offline --cache "$work/cache" --no-audit --no-fund --loglevel=error \
    "$launcher" "$package"
installed=$(node -p "require('@handinger/mcp-$platform/package.json').version")
[ "$installed" = "$version" ] || { echo "installed @handinger/mcp-$platform $installed, not $version" >&2; exit 1; }

python3 "$repo/.ci/mcp_stdio_smoke.py" --exit-code -- \
    npx --offline --cache "$work/cache" --no handinger-mcp stdio
# Signals, on the launcher itself: npx runs it through `sh -c`, which dies of a SIGTERM
# without handing it on (the client's closing stdin still ends the server, as above).
python3 "$repo/.ci/mcp_stdio_smoke.py" --initialize-only --signals -- \
    node_modules/.bin/handinger-mcp stdio
echo "npm: handinger-mcp $version and @handinger/mcp-$platform install from their tarballs and run with npx"
