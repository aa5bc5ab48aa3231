#!/usr/bin/env bash
# The Claude Desktop bundle, packed and opened the way Claude Desktop does:
# manifests/mcpb/build.sh packs a real .mcpb around BINARY with the pinned
# @anthropic-ai/mcpb; the bundle is unpacked with `mcpb unpack`, its manifest validated with
# `mcpb validate`, and the server started exactly as the manifest's mcp_config says (the
# entry point under ${__dirname}, its args, its env with the user_config defaults filled
# in) is driven over stdio by .ci/mcp_stdio_smoke.py: initialize, tools/list, one
# create_task against a fake API, stdin EOF, SIGTERM.
#
# Usage: .ci/check_mcpb.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:?usage: $0 BINARY}")
repo=$PWD
mcpb=$repo/.ci/node/node_modules/.bin/mcpb

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash manifests/mcpb/build.sh "$binary" "$work/out"
bundles=("$work"/out/*.mcpb)
[ ${#bundles[@]} -eq 1 ] && [ -f "${bundles[0]}" ] || { echo "build.sh did not write one .mcpb" >&2; exit 1; }
bundle=${bundles[0]}
echo "packed $(basename "$bundle") ($(du -h "$bundle" | cut -f1)) with mcpb $("$mcpb" --version)"

"$mcpb" unpack "$bundle" "$work/unpacked" >/dev/null
"$mcpb" validate "$work/unpacked/manifest.json"

# The command Claude Desktop would run: mcp_config with ${__dirname} and ${user_config.*}
# filled in (the key and base URL are the smoke test's own).
mapfile -t launch < <(python3 - "$work/unpacked" <<'PY'
import json, os, re, sys
root = sys.argv[1]
manifest = json.load(open(os.path.join(root, "manifest.json")))
config = manifest["server"]["mcp_config"]
entry = os.path.join(root, manifest["server"]["entry_point"])
defaults = {k: str(v.get("default", "")) for k, v in manifest.get("user_config", {}).items()}
def fill(text):
    text = text.replace("${__dirname}", root)
    return re.sub(r"\$\{user_config\.(\w+)\}", lambda m: defaults.get(m.group(1), ""), text)
command = fill(config["command"])
if os.path.realpath(command) != os.path.realpath(entry):
    sys.exit(f"mcp_config.command {command} is not the entry point {entry}")
if not os.access(command, os.X_OK):
    sys.exit(f"{command} is not executable after unpacking")
for name, value in config.get("env", {}).items():
    if name not in {"HANDINGER_API_KEY", "HANDINGER_BASE_URL"}:
        print(f"env:{name}={fill(value)}")
print(command)
for arg in config.get("args", []):
    print(fill(arg))
PY
)
env_args=()
command=()
for line in "${launch[@]}"; do
    case "$line" in
    env:*) env_args+=("${line#env:}") ;;
    *) command+=("$line") ;;
    esac
done
[ ${#command[@]} -gt 0 ] || { echo "could not read the launch command from the manifest" >&2; exit 1; }
env "${env_args[@]}" python3 "$repo/.ci/mcp_stdio_smoke.py" --signals -- "${command[@]}"
echo "mcpb: $(basename "$bundle") validates, and its binary serves MCP as the manifest starts it"
