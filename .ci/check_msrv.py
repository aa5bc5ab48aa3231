"""Keeps Cargo.toml's `rust-version` true: no dependency may declare a newer one.

`cargo metadata` lists every package of the lock file's resolve (normal, build and dev
dependencies, for every target platform) with the `rust-version` it declares. A dependency
that needs a newer Rust than ours makes our declared minimum a lie (it did: `uuid 1.29`
needs 1.89 while we said 1.88; rmcp depends on it, so 1.89 it is). Our own code is held to the same version by clippy's
`incompatible_msrv` lint, which reads `rust-version` (clippy runs in .ci/run).

Prints the dependencies that declare the highest versions; exits 1 naming every one above
ours.
"""

import json
import subprocess
import sys


def version(text: str) -> tuple[int, ...]:
    """"1.88" and "1.88.0" are the same version."""
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main() -> int:
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            check=True, stdout=subprocess.PIPE, text=True,
        ).stdout
    )
    ours = {p["id"] for p in metadata["packages"] if p["id"] in metadata["workspace_members"]}
    root = next(p for p in metadata["packages"] if p["id"] in ours)
    declared = root.get("rust_version")
    if not declared:
        print("check_msrv: Cargo.toml declares no rust-version; declare the one the code needs")
        return 1
    deps = [p for p in metadata["packages"] if p["id"] not in ours and p.get("rust_version")]
    deps.sort(key=lambda p: version(p["rust_version"]), reverse=True)
    above = [p for p in deps if version(p["rust_version"]) > version(declared)]
    for p in deps[:3]:
        print(f"  {p['name']} {p['version']} needs Rust {p['rust_version']}")
    for p in above:
        print(f"  problem: {p['name']} {p['version']} needs Rust {p['rust_version']}, above our rust-version {declared}")
    print(
        f"check_msrv: {len(deps)} dependencies declare a rust-version; "
        f"{len(above)} above ours ({declared})"
    )
    if above:
        print(
            "Raise rust-version in Cargo.toml to the highest one, or pin an older release of "
            "those dependencies (cargo update -p NAME --precise VERSION)."
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
