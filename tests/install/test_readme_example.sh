#!/usr/bin/env bash
# test_readme_example.sh REPO — the README's library program is examples/hello.c, verbatim: the
# ```c block after the marker line "<!-- examples/hello.c" must equal the file (test_install.sh
# builds and runs the file).
set -u
repo=$1
block=$(awk '/^<!-- examples\/hello.c/ { want = 1; next }
             want == 1 && /^```c$/ { want = 2; next }
             want == 2 && /^```$/ { exit }
             want == 2 { print }' "$repo/README.md")
[ -n "$block" ] || { echo "FAIL: README.md has no \`\`\`c block after a \"<!-- examples/hello.c\" line" >&2; exit 1; }
if [ "$block" != "$(cat "$repo/examples/hello.c")" ]; then
    echo "FAIL: README.md's program differs from examples/hello.c:" >&2
    diff <(echo "$block") "$repo/examples/hello.c" >&2
    exit 1
fi
echo "README.md shows examples/hello.c verbatim ($(wc -l < "$repo/examples/hello.c") lines)"
