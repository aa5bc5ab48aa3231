"""Checks that docs/architecture.md's "What CI runs" names the steps of .ci/run in order.

The list drifted once (steps moved, scripts added); this keeps it honest. A step is a
`.ci/<script>` or a `cargo fmt|clippy|test` command on a line of .ci/run that is not a
comment; the section must name each, in the order .ci/run runs them. Exits 1 saying which
step is missing or out of place.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEP = re.compile(r"\.ci/[\w.-]+|cargo (?:fmt|clippy|test)")


def steps(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for step in STEP.findall(line):
            if step not in found:
                found.append(step)
    return found


def main() -> int:
    run = (ROOT / ".ci/run").read_text()
    doc = (ROOT / "docs/architecture.md").read_text()
    section = doc.split("## What CI runs", 1)[1].split("\n## ", 1)[0]
    position = 0
    for step in steps(run):
        at = section.find(step, position)
        if at < 0:
            where = "anywhere" if step not in section else "after the step before it"
            print(f"check_ci_doc: docs/architecture.md's \"What CI runs\" does not name {step} {where}: list the steps of .ci/run in its order", file=sys.stderr)
            return 1
        position = at + len(step)
    print(f"check_ci_doc: {len(steps(run))} steps of .ci/run named in order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
