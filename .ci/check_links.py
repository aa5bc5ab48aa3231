"""Every relative link in README.md and docs/*.md resolves.

A link to a file or directory of this repository must name one that exists; a link with a
`#fragment` into a Markdown file must name one of its headings (GitHub's anchors: lower
case, punctuation dropped, spaces to hyphens). Links with a scheme (https:, mailto:) and
links inside code are not checked. Prints each broken link with its file and line; exits 1
if there is any.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(?<!\!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def anchors(path: Path) -> set[str]:
    found, seen = set(), {}
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip()
        slug = re.sub(r"[^\w\- ]", "", title.lower().replace("`", "")).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def main() -> int:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = checked = 0
    for path in files:
        in_code = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                in_code = not in_code
            if in_code:
                continue
            text = re.sub(r"`[^`]*`", "", line)  # links inside inline code are not links
            for target in LINK.findall(text):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue
                checked += 1
                file_part, _, fragment = target.partition("#")
                resolved = (path.parent / file_part).resolve() if file_part else path
                where = f"{path.relative_to(ROOT)}:{number}: {target}"
                if not resolved.exists():
                    print(f"  broken: {where} (no {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved})")
                    broken += 1
                elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                    print(f"  broken: {where} (no heading #{fragment} in {resolved.relative_to(ROOT)})")
                    broken += 1
    print(f"links: {checked} relative link(s) in {len(files)} file(s), {broken} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
