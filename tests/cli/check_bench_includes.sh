#!/usr/bin/env bash
# check_bench_includes.sh — `glmoe bench` (tools/cli/bench/*.c, *.h) uses the public API only:
# each #include must be a C standard or POSIX header (<...> from the list below), the public
# header glmoe.h, the CLI's own headers (cli.h, bench/*.h), the op-case table's header
# (ops/opcases.h) or jansson.h (the CLI's JSON). util/short_path.h is the CLI's one sanctioned
# helper (cli.h says why). No file is an exception: --dry-run plans a load with glmoe_model_plan.
# Usage: check_bench_includes.sh REPO_ROOT
set -u
root=${1:?usage: check_bench_includes.sh REPO_ROOT}
allowed_sys='^(assert|ctype|errno|float|inttypes|limits|math|signal|stdarg|stdbool|stddef|stdint|stdio|stdlib|string|time|unistd|jansson)\.h$'
allowed_local='^(glmoe\.h|cli\.h|bench/[a-z_]+\.h|bench_[a-z_]+\.h|ops/opcases\.h|util/short_path\.h)$'
bad=0
n=0
for f in "$root"/tools/cli/bench/*.c "$root"/tools/cli/bench/*.h; do
    while IFS= read -r line; do
        n=$((n + 1))
        name=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' <<< "$line")
        if [[ $line == *'<'* ]]; then
            [[ $name =~ $allowed_sys ]] && continue
        else
            [[ $name =~ $allowed_local ]] && continue
        fi
        echo "FAIL ${f#"$root"/}: $line (glmoe bench uses include/glmoe.h and ops/opcases.h, nothing below them)"
        bad=$((bad + 1))
    done < <(grep -E '^[[:space:]]*#[[:space:]]*include' "$f")
done
[ "$n" -gt 0 ] || { echo "FAIL no #include found under $root/tools/cli/bench"; exit 1; }
echo "check_bench_includes: $n includes, $bad not allowed"
[ "$bad" -eq 0 ]
