"""Builds manifests/docker/Dockerfile's build stage without a container engine.

No container engine runs in CI, and a Dockerfile whose context lacks a file cargo needs
fails only when someone runs `docker build` (it did: Cargo.toml declares a bench the
context did not carry). This check does what the builder would do with the files it would
see:

1. The build context: the files of this checkout (`git ls-files`: tracked and untracked
   but not git-ignored), filtered by the Dockerfile's ignore file (`<Dockerfile>.dockerignore`,
   else `.dockerignore`) with Docker's rules (last matching pattern wins, a pattern
   matching a directory covers what is inside it, `!` re-includes).
2. The build stage, step by step in a fresh directory standing in for the container's
   root: `WORKDIR`, `COPY` from the context (a source that matches nothing fails, as in
   Docker), `RUN` with `sh -c` in the working directory.
3. Every later `COPY --from=<build stage>` source must exist afterwards.

The RUN steps run on this machine's toolchain, not the image's, so they must work
relative to WORKDIR; the script says so if one names an absolute path. CARGO_TARGET_DIR,
when set, is passed through so the dependencies compiled by earlier runs are reused; a
`<workdir>/target/...` source of a later stage is then looked up there.

Finally the binary the final stage copies must answer `--version` as the server (not the
dependency step's empty placeholder).

DOCKER_CONTEXT_PROFILE=dev builds with cargo's dev profile instead of `--release` (and looks
for `target/debug/...` where the final stage copies `target/release/...`): the same context,
the same steps, without the release profile's fat LTO, which alone costs CI on two cores
more minutes than everything else together. The files cargo reads are the same in both
profiles, and the release workflow builds the release profile for real.

Usage: docker_context.py [DOCKERFILE] [--print-artifact] [--help]. Exits 1 with the reason
on any failure, 2 on an unknown option; --print-artifact prints the path of the file the
final stage copies; --help prints this and builds nothing.
"""

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent


class Failure(Exception):
    pass


def instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, KEYWORD, arguments) with continuations joined and comments dropped."""
    result, pending, start = [], "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((start, keyword.upper(), args.strip()))
    if pending:
        raise Failure(f"the instruction at line {start} ends with a continuation")
    return result


def ignore_patterns(dockerfile: Path, context: Path) -> list[tuple[bool, re.Pattern]]:
    """The ignore file's patterns as (negated, regex), in order."""
    path = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if not path.is_file():
        path = context / ".dockerignore"
    if not path.is_file():
        return []
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line[1:].strip() if negated else line
        line = os.path.normpath(line.lstrip("/")).replace(os.sep, "/")
        if line == ".":
            continue
        patterns.append((negated, re.compile(glob_regex(line))))
    return patterns


def glob_regex(pattern: str) -> str:
    """Go's filepath.Match syntax plus Docker's `**`, as an anchored regex."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise Failure(f"ignore pattern {pattern!r}: unterminated [")
            body = pattern[i + 1 : end]
            if body.startswith("^"):
                body = "!" + body[1:]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "^" + "".join(out) + "$"


def excluded(path: str, patterns) -> bool:
    """Docker's rule: a pattern applies to a path or any of its parent directories; the
    last pattern that applies decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for negated, regex in patterns:
        if any(regex.match(p) for p in prefixes):
            verdict = not negated
    return verdict


def context_files(context: Path, patterns) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=context, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    return sorted(p for p in listed if p and (context / p).is_file() and not excluded(p, patterns))


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    if args.startswith("["):
        words = json.loads(args)
    else:
        words = shlex.split(args)
    flags = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    return flags, words


class Stage:
    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.workdir = PurePosixPath("/")
        self.env = env

    def host(self, container_path: str) -> Path:
        path = PurePosixPath(container_path)
        if not path.is_absolute():
            path = self.workdir / path
        return self.root / str(path).lstrip("/")


def copy_from_context(stage: Stage, context: Path, files: list[str], sources: list[str], dest: str, line: int) -> int:
    dest_is_dir = dest.endswith("/") or len(sources) > 1
    target = stage.host(dest)
    copied = 0
    for source in sources:
        source = os.path.normpath(source).replace(os.sep, "/").lstrip("/")
        matched = False
        for name in files:
            if source == "." or fnmatch.fnmatchcase(name, source) or name.startswith(source.rstrip("/") + "/"):
                matched = True
                if source == ".":
                    relative = name
                elif name.startswith(source.rstrip("/") + "/") and not fnmatch.fnmatchcase(name, source):
                    relative = name[len(source.rstrip("/")) + 1 :]  # a directory's contents
                else:
                    relative = PurePosixPath(name).name if dest_is_dir else ""
                out = target / relative if relative else target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(context / name, out)
                copied += 1
        if not matched:
            raise Failure(
                f"line {line}: COPY {source}: not in the build context (the ignore file "
                "excludes it, or it does not exist); docker build stops here too"
            )
    return copied


def absolute_paths(command: str) -> list[str]:
    return [w for w in re.findall(r"(?<![\w.$-])/[\w./-]+", command) if not w.startswith("/dev/")]


def run_build_stage(dockerfile: Path, context: Path, print_artifact: bool) -> None:
    steps = instructions(dockerfile.read_text())
    stages: list[tuple[str | None, list]] = []
    for line, keyword, args in steps:
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append((name, []))
        elif stages:
            stages[-1][1].append((line, keyword, args))
    if len(stages) < 2:
        raise Failure("expected a build stage and a final stage")
    build_name, build_steps = stages[0]
    patterns = ignore_patterns(dockerfile, context)
    files = context_files(context, patterns)
    print(f"build context: {len(files)} files pass the ignore file ({', '.join(sorted({f.split('/')[0] for f in files}))})")

    target_dir = os.environ.get("CARGO_TARGET_DIR")
    dev = os.environ.get("DOCKER_CONTEXT_PROFILE") == "dev"
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="handinger-mcp-docker-context-") as root:
        stage = Stage(Path(root), env)
        for line, keyword, args in build_steps:
            if keyword == "WORKDIR":
                stage.workdir = stage.workdir / args
                stage.host(str(stage.workdir)).mkdir(parents=True, exist_ok=True)
            elif keyword == "COPY":
                flags, words = split_flags(args)
                if "from" in flags:
                    raise Failure(f"line {line}: COPY --from in the build stage is not emulated")
                n = copy_from_context(stage, context, files, words[:-1], words[-1], line)
                print(f"line {line}: COPY {' '.join(words)}: {n} files")
            elif keyword == "RUN":
                _, words = split_flags(args) if args.startswith("--") else ({}, None)
                command = args if words is None else " ".join(words)
                if dev:
                    command = re.sub(r"\s--release\b", "", command)
                outside = absolute_paths(command)
                if outside:
                    raise Failure(
                        f"line {line}: RUN names {outside}: keep the build stage's RUN steps "
                        "relative to WORKDIR so that this check can run them"
                    )
                print(f"line {line}: RUN {command}", flush=True)
                started = time.monotonic()
                done = subprocess.run(["sh", "-c", command], cwd=stage.host(str(stage.workdir)), env=env)
                if done.returncode != 0:
                    raise Failure(f"line {line}: RUN exited with {done.returncode}; docker build stops here too")
                print(f"line {line}: RUN done in {time.monotonic() - started:.0f} s", flush=True)
            elif keyword in {"ARG", "ENV", "LABEL"}:
                continue
            else:
                raise Failure(f"line {line}: {keyword} in the build stage is not emulated")

        artifacts = []
        for name, later in stages[1:]:
            for line, keyword, args in later:
                if keyword != "COPY":
                    continue
                flags, words = split_flags(args)
                if flags.get("from") not in {build_name, "0"}:
                    continue
                for source in words[:-1]:
                    if dev:
                        source = source.replace("/target/release/", "/target/debug/")
                    path = PurePosixPath(source)
                    built = stage.workdir / "target"
                    if target_dir and path.is_relative_to(built):
                        host = Path(target_dir) / str(path.relative_to(built))
                    else:
                        host = stage.host(source)
                    if not host.exists():
                        raise Failure(f"line {line}: COPY --from={build_name} {source}: the build stage did not make it")
                    print(f"line {line}: COPY --from={build_name} {source}: present")
                    artifacts.append(host)
        for artifact in artifacts:
            check_binary(artifact)
            if print_artifact:
                print(f"artifact: {artifact}")


def check_binary(path: Path) -> None:
    """The final stage's binary is the server, not the dependency step's placeholder."""
    done = subprocess.run([str(path), "--version"], capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.startswith("handinger-mcp "):
        raise Failure(f"{path} --version printed {done.stdout!r} (exit {done.returncode}): not the server")
    print(f"{path.name} --version: {done.stdout.strip()}")


def main() -> int:
    flags = {a for a in sys.argv[1:] if a.startswith("-")}
    if flags & {"-h", "--help"}:
        print(__doc__)
        return 0
    unknown = flags - {"--print-artifact"}
    if unknown:
        print(
            f"docker context: unknown option {sorted(unknown)[0]}; usage: "
            "docker_context.py [DOCKERFILE] [--print-artifact] (--help explains)",
            file=sys.stderr,
        )
        return 2
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    dockerfile = Path(args[0]) if args else ROOT / "manifests/docker/Dockerfile"
    try:
        run_build_stage(dockerfile.resolve(), ROOT, "--print-artifact" in sys.argv)
    except Failure as e:
        print(f"docker context: {e}", file=sys.stderr)
        return 1
    print("docker context: the build stage ran on exactly the files docker build would send")
    return 0


if __name__ == "__main__":
    sys.exit(main())
