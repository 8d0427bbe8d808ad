#!/usr/bin/env python3
"""The module tree's rules (docs/ARCHITECTURE.md), checked in CI:

1. no import cycle between the files of src/ (scripts/cycles.py);
2. no source file over 500 lines (src/, cli/, examples/, tests/, benches/; src/bevy: 400);
3. no comment or doc pointing outside the repository (`../shared/...`, a bare `DESIGN.md`):
   the project's own docs are under docs/.

Exit 1 with the list of what breaks a rule."""
import os, re, subprocess, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(root)
problems = []

cycles = subprocess.run([sys.executable, "scripts/cycles.py", "src"], capture_output=True, text=True)
if cycles.returncode != 0:
    problems.append(cycles.stdout.strip())

outside = re.compile(r"\.\./shared|(?<![\w/.-])DESIGN\.md")
for top in ("src", "cli", "examples", "tests", "benches", "kernels"):
    for dirpath, _, names in os.walk(top):
        for name in sorted(names):
            if not name.endswith((".rs", ".cu", ".cuh")):
                continue
            path = os.path.join(dirpath, name)
            lines = open(path, encoding="utf-8").read().split("\n")
            limit = 400 if path.startswith("src/bevy/") else 500
            if name.endswith(".rs") and len(lines) - 1 > limit:
                problems.append(f"{path}: {len(lines) - 1} lines (limit {limit})")
            for no, line in enumerate(lines, 1):
                if outside.search(line):
                    problems.append(f"{path}:{no}: points outside the repo: {line.strip()}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("module tree: no cycles, no file over its limit, no reference outside the repo")
