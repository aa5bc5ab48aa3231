"""Checks on manifests/ that the ecosystem validators do not make.

Run by .ci/validate-manifests.sh with the venv's Python (PyYAML comes with
kubernetes-validate). The validators check each file against its format; this checks the
files against each other and against this project: one version everywhere (Cargo.toml,
the registry entry, the MCPB manifest, the npm packages, the image tags), the tools the
server really lists, secrets marked secret and never committed, and the Kubernetes
hardening the README promises. Prints one line per problem; exits 1 if there is any.
"""

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
SCHEMA = MANIFESTS / "registry/schema/server.schema.json"
SCHEMA_SHA256 = "4339f7ce3ecdb0d0fec99836a3077fb67e8d03962ddd383bd802cecc8ca8c926"
PORT = 8787

problems: list[str] = []


def problem(where: Path | str, message: str) -> None:
    where = where.relative_to(ROOT) if isinstance(where, Path) else where
    problems.append(f"{where}: {message}")


def load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        problem(path, f"not valid JSON: {e}")
        return None


def all_json_parses() -> None:
    for path in sorted(MANIFESTS.rglob("*.json")):
        load_json(path)


def no_real_secrets() -> None:
    """A placeholder is fine; anything shaped like a real key or a filled-in secret is not."""
    key = re.compile(r"hdg_(live|test)_[A-Za-z0-9]{8,}")
    for path in sorted(p for p in MANIFESTS.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        if key.search(text):
            problem(path, "holds something shaped like a Handinger API key; use a placeholder")
    secret = yaml.safe_load((MANIFESTS / "kubernetes/secret.example.yaml").read_text())
    for name, value in (secret.get("stringData") or {}).items():
        if not str(value).startswith("REPLACE_WITH_"):
            problem("manifests/kubernetes/secret.example.yaml", f"{name} must stay a REPLACE_WITH_ placeholder")
    if secret.get("data"):
        problem("manifests/kubernetes/secret.example.yaml", "must not carry base64 data")


def versions_agree(version: str) -> None:
    mcpb = load_json(MANIFESTS / "mcpb/manifest.json") or {}
    if mcpb.get("version") != version:
        problem(MANIFESTS / "mcpb/manifest.json", f"version {mcpb.get('version')!r} is not Cargo.toml's {version!r}")
    server = load_json(MANIFESTS / "registry/server.json") or {}
    if server.get("version") != version:
        problem(MANIFESTS / "registry/server.json", f"version {server.get('version')!r} is not Cargo.toml's {version!r}")
    for package in server.get("packages", []):
        if package.get("registryType") == "oci" and not package.get("identifier", "").endswith(f":{version}"):
            problem(MANIFESTS / "registry/server.json", f"OCI image {package.get('identifier')!r} is not tagged {version}")
    for name in ("Dockerfile", "Dockerfile.release"):
        dockerfile = (MANIFESTS / "docker" / name).read_text()
        if f"ARG VERSION={version}\n" not in dockerfile:
            problem(MANIFESTS / "docker" / name, f"ARG VERSION default is not {version}")
    deployment = yaml.safe_load((MANIFESTS / "kubernetes/deployment.yaml").read_text())
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    if not image.endswith(f":{version}"):
        problem(MANIFESTS / "kubernetes/deployment.yaml", f"image {image!r} is not tagged {version}")
    kustomization = yaml.safe_load((MANIFESTS / "kubernetes/kustomization.yaml").read_text())
    for entry in kustomization.get("images", []):
        if entry.get("newTag") != version:
            problem(MANIFESTS / "kubernetes/kustomization.yaml", f"image tag {entry.get('newTag')!r} is not {version}")
    npm_packages_agree(version)


# The platforms the release workflow builds, in Node's names (process.platform-process.arch);
# each has an npm package the launcher lists as an optional dependency.
RELEASE_PLATFORMS = {"linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64", "win32-x64"}


def npm_packages_agree(version: str) -> None:
    """Every npm package.json carries the crate's version, and the launcher pulls in exactly
    one package per release platform, at that version (npm would otherwise install an older
    binary under a newer launcher, or none)."""
    for path in sorted((MANIFESTS / "npm").rglob("package.json")):
        package = load_json(path) or {}
        if package.get("version") != version:
            problem(path, f"version {package.get('version')!r} is not Cargo.toml's {version!r}")
    launcher = load_json(MANIFESTS / "npm/launcher/package.json") or {}
    optional = launcher.get("optionalDependencies", {})
    expected = {f"@handinger/mcp-{platform}" for platform in RELEASE_PLATFORMS}
    if set(optional) != expected:
        problem(MANIFESTS / "npm/launcher/package.json",
                f"optionalDependencies {sorted(optional)} are not one package per release platform {sorted(expected)}")
    for name, spec in optional.items():
        if spec != version:
            problem(MANIFESTS / "npm/launcher/package.json", f"{name} is pinned at {spec!r}, not {version!r}")
    if launcher.get("bin", {}).get("handinger-mcp") is None:
        problem(MANIFESTS / "npm/launcher/package.json", "must provide the handinger-mcp bin")
    workflow = ROOT / ".github/workflows/release.yml"
    text = workflow.read_text() if workflow.is_file() else ""
    for platform in sorted(RELEASE_PLATFORMS):
        if f"npm: {platform}" not in text:
            problem(workflow, f"builds no binary for the npm package of {platform} (a matrix entry with npm: {platform})")


def mcpb_lists_the_real_tools() -> None:
    listings = load_json(ROOT / "tests/snapshots/listings.json") or {}
    listed = sorted(listings.get("default", {}).get("tools", []))
    mcpb = load_json(MANIFESTS / "mcpb/manifest.json") or {}
    declared = sorted(tool["name"] for tool in mcpb.get("tools", []))
    if declared != listed:
        problem(MANIFESTS / "mcpb/manifest.json", f"tools {declared} differ from the default listing in tests/snapshots/listings.json {listed}")
    config = mcpb.get("server", {}).get("mcp_config", {})
    env = config.get("env", {})
    if env.get("HANDINGER_API_KEY") != "${user_config.api_key}":
        problem(MANIFESTS / "mcpb/manifest.json", "HANDINGER_API_KEY must come from user_config.api_key")
    api_key = mcpb.get("user_config", {}).get("api_key", {})
    if not (api_key.get("sensitive") and api_key.get("required")):
        problem(MANIFESTS / "mcpb/manifest.json", "user_config.api_key must be sensitive and required")
    windows = config.get("platform_overrides", {}).get("win32", {}).get("command", "")
    if not windows.endswith(".exe"):
        problem(MANIFESTS / "mcpb/manifest.json", "the win32 override must run the .exe")


def registry_entry() -> None:
    path = MANIFESTS / "registry/server.json"
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    if digest != SCHEMA_SHA256:
        problem(SCHEMA, f"sha256 {digest} is not the vendored {SCHEMA_SHA256}: restore the published file")
    schema = load_json(SCHEMA) or {}
    server = load_json(path) or {}
    if server.get("$schema") != schema.get("$id"):
        problem(path, f"$schema {server.get('$schema')!r} is not the vendored schema's $id {schema.get('$id')!r}")

    # The registry moved to camelCase; the schema alone would let snake_case keys through.
    camel = re.compile(r"^\$?[a-z][a-zA-Z0-9]*$")

    def walk(value, trail: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                free_form = trail.endswith(".variables") or trail.endswith("._meta")
                if not free_form and not camel.match(key):
                    problem(path, f"{trail}.{key}: keys are camelCase")
                walk(inner, f"{trail}.{key}")
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, f"{trail}[{i}]")

    walk(server, "$")

    must_be_secret = {"HANDINGER_API_KEY", "Authorization", "X-Handinger-Api-Key"}
    inputs = [v for p in server.get("packages", []) for v in p.get("environmentVariables", [])]
    inputs += [h for r in server.get("remotes", []) for h in r.get("headers", [])]
    for entry in inputs:
        if entry.get("name") in must_be_secret and entry.get("isSecret") is not True:
            problem(path, f"{entry['name']} must be marked isSecret")
    remotes = server.get("remotes", [])
    if not any(r.get("type") == "streamable-http" and r.get("url", "").endswith("/mcp") for r in remotes):
        problem(path, "needs a streamable-http remote at /mcp")
    if not any(h.get("name") == "Authorization" for r in remotes for h in r.get("headers", [])):
        problem(path, "the remote needs an Authorization header")


def kubernetes_hardening() -> None:
    kdir = MANIFESTS / "kubernetes"
    kustomization = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    resources = kustomization.get("resources", [])
    for resource in resources:
        if not (kdir / resource).is_file():
            problem(kdir / "kustomization.yaml", f"lists {resource}, which does not exist")
    if "secret.example.yaml" in resources:
        problem(kdir / "kustomization.yaml", "must not apply secret.example.yaml")
    for path in sorted(kdir.glob("*.yaml")):
        if path.name not in resources and path.name not in {"kustomization.yaml", "secret.example.yaml"}:
            problem(path, "is not listed in kustomization.yaml")

    path = kdir / "deployment.yaml"
    deployment = yaml.safe_load(path.read_text())
    pod = deployment["spec"]["template"]["spec"]
    pod_security = pod.get("securityContext", {})
    container = pod["containers"][0]
    security = container.get("securityContext", {})
    expect = {
        "pod runAsNonRoot": pod_security.get("runAsNonRoot") is True,
        "pod seccompProfile RuntimeDefault": pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        "non-root runAsUser": (pod_security.get("runAsUser") or 0) > 0,
        "readOnlyRootFilesystem": security.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation false": security.get("allowPrivilegeEscalation") is False,
        "capabilities drop ALL": security.get("capabilities", {}).get("drop") == ["ALL"],
        "resource requests": bool(container.get("resources", {}).get("requests")),
        "resource limits": bool(container.get("resources", {}).get("limits")),
        "liveness on /healthz": container.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
        "readiness on /readyz": container.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz",
        f"port {PORT}": any(p.get("containerPort") == PORT for p in container.get("ports", [])),
        f"args http --listen 0.0.0.0:{PORT} --stateless": container.get("args", [])[:4]
        == ["http", "--listen", f"0.0.0.0:{PORT}", "--stateless"],
    }
    # The probes go to the --probe-listen port, which a flood of the MCP port cannot fill.
    args = container.get("args", [])
    probe_listen = args[args.index("--probe-listen") + 1] if "--probe-listen" in args[:-1] else ""
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        port = container.get(kind, {}).get("httpGet", {}).get("port")
        port = ports.get(port, port)
        if not probe_listen or not probe_listen.endswith(f":{port}") or port == PORT:
            problem(path, f"expected {kind} on the --probe-listen port, not {PORT}")
    for what, ok in expect.items():
        if not ok:
            problem(path, f"expected {what}")
    from_secret = {
        e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
    }
    for name in ("HANDINGER_API_KEY", "HANDINGER_MCP_AUTH_TOKEN"):
        if name not in from_secret:
            problem(path, f"{name} must come from a Secret (secretKeyRef)")
    if any("value" in e and e["name"] in {"HANDINGER_API_KEY", "HANDINGER_MCP_AUTH_TOKEN"} for e in container.get("env", [])):
        problem(path, "a secret is set inline")


def dockerfile() -> None:
    """The source build (multi-stage) and the release image (the release binaries) alike:
    non-root, labelled with the version and the registry name."""
    for name in ("Dockerfile", "Dockerfile.release"):
        one_dockerfile(MANIFESTS / "docker" / name, multi_stage=name == "Dockerfile")


def one_dockerfile(path: Path, multi_stage: bool) -> None:
    lines = [line.strip() for line in path.read_text().splitlines()]
    stages = [line for line in lines if line.upper().startswith("FROM ")]
    if multi_stage and len(stages) < 2:
        problem(path, "must be multi-stage")
    users = [line.split(None, 1)[1] for line in lines if line.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in {"0", "root"}:
        problem(path, "the final stage must run as a non-root USER")
    if "org.opencontainers.image.version" not in path.read_text():
        problem(path, "needs the org.opencontainers.image.version label")
    server = load_json(MANIFESTS / "registry/server.json") or {}
    if f'io.modelcontextprotocol.server.name="{server.get("name")}"' not in path.read_text():
        problem(path, "needs the io.modelcontextprotocol.server.name label the registry checks OCI images for")


def main() -> int:
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    for check in (all_json_parses, no_real_secrets, lambda: versions_agree(version), mcpb_lists_the_real_tools,
                  registry_entry, kubernetes_hardening, dockerfile):
        try:
            check()
        except Exception as e:  # a malformed file must be a reported problem, not a traceback
            problem("manifests", f"{getattr(check, '__name__', 'check')} could not run: {e!r}")
    for line in problems:
        print(f"  problem: {line}")
    print(f"cross-checks: {len(problems)} problem(s) (version {version})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
