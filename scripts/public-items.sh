#!/usr/bin/env bash
# Counts the crate's public items (structs, enums, traits, functions, constants, type aliases,
# macros: rustdoc's all.html, so modules are not counted and a re-export counts once) for a
# feature set. Usage: scripts/public-items.sh [cargo doc flags], e.g. `--features dashboard`.
# Prints the count, then the items one a line with `-v` as the first argument.
set -euo pipefail
verbose=0
if [ "${1:-}" = "-v" ]; then verbose=1; shift; fi
cargo doc --no-deps -q -p perdix-transport "$@" 2>/dev/null
doc="${CARGO_TARGET_DIR:-target}/doc/perdix_transport/all.html"
python3 - "$doc" "$verbose" <<'PY'
import re, sys
html = open(sys.argv[1]).read()
items = sorted({href for href, _ in re.findall(r'<a href="([^"#][^"]*)">([^<]+)</a>', html)})
print(len(items))
if sys.argv[2] == "1":
    print("\n".join(items))
PY
