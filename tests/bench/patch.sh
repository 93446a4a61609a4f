#!/usr/bin/env bash
# tests/bench/patch.sh -- patch mode: wall time to check one kernel commit.
#
# A "commit" is a whole-file kmap_atomic() -> kmap_local_page() conversion of
# one real linux-source-6.12 file, the shape of most upstream conversion
# commits: the pre-image is the 6.12 file with every kmap_local_page() /
# kunmap_local() turned back into kmap_atomic() / kunmap_atomic(), the
# post-image is the real file, the patch is `diff -u` between them. Each
# pre-image sits in a throwaway tree under a temporary directory, and the
# command timed is what a reviewer runs:
#
#   kmapcheck --patch FILE.patch --tree TREE --format json
#
# hyperfine runs each commit KMAPCHECK_BENCH_RUNS times (default 10, after 2
# warm-ups); the script prints per-commit medians, their median and max,
# and PASS/FAIL for the target: median per commit < 50 ms.
#
# Environment:
#   KMAPCHECK_BENCH_RUNS   runs per commit (default 10)
#   KMAPCHECK_BENCH_FILES  how many files (default 12; the largest users first)
#   KMAPCHECK_BIN          kmapcheck binary (default target/release/kmapcheck)
#   KMAPCHECK_CACHE        trees cache (default ~/.cache/kmapcheck)
#
# Exit: 0 target met; 1 target missed; 2 setup error.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${KMAPCHECK_CACHE:-$HOME/.cache/kmapcheck}
src=$cache/trees/linux-source-6.12
runs=${KMAPCHECK_BENCH_RUNS:-10}
nfiles=${KMAPCHECK_BENCH_FILES:-12}
bin=${KMAPCHECK_BIN:-$repo/target/release/kmapcheck}
[ -d "$src" ] || { echo "patch.sh: $src missing (scripts/kernel-trees)" >&2; exit 2; }
[ -x "$bin" ] || (cd "$repo" && cargo build --release) || exit 2
command -v hyperfine >/dev/null || { echo "patch.sh: hyperfine missing" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$src"
# The files with the most kmap_local_page() calls: a conversion there is
# the largest single-file commit of its kind.
mapfile -t files < <(grep -rc --include='*.c' 'kmap_local_page(' . |
    awk -F: '$2 > 0 { print $2, $1 }' | sort -k1,1nr -k2 | head -n "$nfiles" | cut -d' ' -f2- | sed 's#^\./##')
[ ${#files[@]} -gt 0 ] || { echo "patch.sh: no kmap_local_page() users" >&2; exit 2; }

medians=()
printf '%-48s %7s %6s %9s\n' file lines hunks median_ms
for f in "${files[@]}"; do
    name=$(echo "$f" | tr '/' '_')
    tree=$work/$name/tree
    mkdir -p "$tree/$(dirname "$f")"
    sed -e 's/kmap_local_page(/kmap_atomic(/g' -e 's/kunmap_local(/kunmap_atomic(/g' "$f" >"$tree/$f"
    patch=$work/$name.patch
    diff -u --label "a/$f" --label "b/$f" "$tree/$f" "$f" >"$patch" || true
    json=$work/$name.json
    hyperfine -N --warmup 2 --runs "$runs" --export-json "$json" \
        -i "$bin --patch $patch --tree $tree --format json" >/dev/null 2>&1
    median=$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['results'][0]['median']*1000, 1))" "$json")
    medians+=("$median")
    printf '%-48s %7s %6s %9s\n' "$f" "$(wc -l <"$f")" "$(grep -c '^@@' "$patch")" "$median"
done
summary=$(printf '%s\n' "${medians[@]}" | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print m, a[NR] }')
read -r median max <<<"$summary"
echo "commits: ${#medians[@]}, median of per-commit medians: ${median} ms, slowest commit: ${max} ms"
if awk -v m="$median" 'BEGIN { exit !(m < 50) }'; then
    echo "PASS: median per commit < 50 ms"
else
    echo "FAIL: median per commit >= 50 ms"
    exit 1
fi
