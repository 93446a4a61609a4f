#!/usr/bin/env bash
# tests/bench/kernel.sh -- whole-tree benchmark on linux-source-6.12.
#
# Competitors, run from the tree root, alternately in the same session
# (round i runs rg, kmapcheck, spatch; even rounds run them in reverse order
# so slow drift on a shared machine does not favour one of them):
#   rg        rg -l kmap_ .
#   kmapcheck kmapcheck --format json .          (exit 1 = findings, fine)
#   spatch    spatch --sp-file tests/bench/km001.cocci --dir . -j 2 --very-quiet
# Each run is wrapped in /usr/bin/time (peak RSS) and timed with
# $EPOCHREALTIME (wall). The page cache is warmed first (one untimed rg and
# kmapcheck run; spatch reads a subset of the same files).
#
# Prints median / min / max wall time, ratios kmapcheck/rg, spatch/rg and
# spatch/kmapcheck, peak RSS of each, and PASS/FAIL for the targets:
#   kmapcheck median <= 2.0 x rg median   (goal 1.5 x, reported, not enforced)
#   kmapcheck peak RSS < 200 MB
#
# Environment:
#   KMAPCHECK_BENCH_RUNS          rounds for rg and kmapcheck (default 5)
#   KMAPCHECK_BENCH_SPATCH_RUNS   rounds that include spatch (default 3; 0 = skip)
#   KMAPCHECK_BENCH_JSON          write raw per-run results to this JSON file
#   KMAPCHECK_BENCH_SITES         keep the Coccinelle site list of the last
#                                 spatch run in this file (for scripts/compare-cocci)
#   KMAPCHECK_BENCH_COCCI         semantic patch for spatch (default tests/bench/km001.cocci)
#   KMAPCHECK_BIN                 kmapcheck binary (default target/release/kmapcheck;
#                                 built with cargo build --release when missing)
#   KMAPCHECK_CACHE               see scripts/kernel-trees
#
# Exit: 0 all targets pass; 1 a target fails; 2 setup error or a command failed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cocci=${KMAPCHECK_BENCH_COCCI:-$repo/tests/bench/km001.cocci}
runs=${KMAPCHECK_BENCH_RUNS:-5}
spatch_runs=${KMAPCHECK_BENCH_SPATCH_RUNS:-3}
json_out=${KMAPCHECK_BENCH_JSON:-}
sites_out=${KMAPCHECK_BENCH_SITES:-}

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

case "${1:-}" in
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    "") ;;
    *) die "no arguments expected (configure with environment variables, see --help)" ;;
esac
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "KMAPCHECK_BENCH_RUNS must be a positive integer"
[[ $spatch_runs =~ ^[0-9]+$ ]] || die "KMAPCHECK_BENCH_SPATCH_RUNS must be a non-negative integer"
if (( spatch_runs > runs )); then
    spatch_runs=$runs
fi

# ---------------------------------------------------------------- prerequisites
pkgs=()
command -v rg >/dev/null 2>&1 || pkgs+=(ripgrep)
command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
[[ -x /usr/bin/time ]] || pkgs+=(time)
if (( spatch_runs > 0 )) && ! command -v spatch >/dev/null 2>&1; then
    pkgs+=(coccinelle)
fi
if [[ ${#pkgs[@]} -gt 0 ]]; then
    log "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null >&2
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" </dev/null >&2
fi

bin=${KMAPCHECK_BIN:-$repo/target/release/kmapcheck}
if [[ ! -x "$bin" ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found and $bin missing"
    log "cargo build --release"
    (cd "$repo" && cargo build --release >&2) || die "cargo build --release failed"
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

tree=$("$repo/scripts/kernel-trees" 6.12)
cd "$tree"

work=$(mktemp -d "${TMPDIR:-/tmp}/kmapcheck-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

names=(rg kmapcheck spatch)
cmd_rg=(rg -l kmap_ .)
cmd_kmapcheck=("$bin" --format json .)
cmd_spatch=(spatch --sp-file "$cocci" --dir . -j 2 --very-quiet)
declare -A ok_exit=([rg]="0" [kmapcheck]="0 1" [spatch]="0")

# run NAME ROUND -> appends "name round wall_s rss_kib exit" to $work/runs.txt
run() {
    local name=$1 round=$2 rc=0 t0 t1 wall rss
    local out="$work/$name.out" tfile="$work/$name.time"
    local -a cmd
    case $name in
        rg) cmd=("${cmd_rg[@]}") ;;
        kmapcheck) cmd=("${cmd_kmapcheck[@]}") ;;
        spatch) cmd=("${cmd_spatch[@]}") ;;
    esac
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%e %M' -o "$tfile" "${cmd[@]}" >"$out" 2>"$work/$name.err" || rc=$?
    t1=$EPOCHREALTIME
    wall=$(python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.4f}")' "$t0" "$t1")
    rss=$(awk 'NF == 2 { r = $2 } END { print r + 0 }' "$tfile")
    if [[ " ${ok_exit[$name]} " != *" $rc "* ]]; then
        log "$name exited $rc in round $round:"
        tail -n 5 "$work/$name.err" >&2 || true
        return 2
    fi
    printf '%s %s %s %s %s\n' "$name" "$round" "$wall" "$rss" "$rc" >>"$work/runs.txt"
    if [[ $name == spatch ]]; then
        printf '%s %s\n' "$round" "$(grep -c . "$out" || true)" >>"$work/spatch-sites.txt"
        if [[ -n "$sites_out" ]]; then
            cp "$out" "$sites_out"
        fi
    fi
    printf '  round %d  %-9s %8.2fs  %7.1f MiB  exit %d\n' "$round" "$name" "$wall" \
        "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$rc" >&2
}

log "tree: $tree ($(find . -type f \( -name '*.c' -o -name '*.h' \) | wc -l) .c/.h files)"
log "kmapcheck: $bin"
log "rounds: $runs (spatch in the first $spatch_runs), $(nproc) CPUs"
log "warming the page cache (untimed rg and kmapcheck runs)"
: >"$work/runs.txt"
run rg 0 || exit 2
run kmapcheck 0 || exit 2
: >"$work/runs.txt"

for ((i = 1; i <= runs; i++)); do
    order=("${names[@]}")
    if (( i % 2 == 0 )); then
        order=(spatch kmapcheck rg)
    fi
    for name in "${order[@]}"; do
        if [[ $name == spatch ]] && (( i > spatch_runs )); then
            continue
        fi
        run "$name" "$i" || exit 2
    done
done

python3 - "$work/runs.txt" "$work/spatch-sites.txt" "$json_out" "$tree" "${cmd_kmapcheck[*]}" <<'PY'
import json, statistics, sys
from pathlib import Path

runs_file, sites_file, json_out, tree, km_cmd = sys.argv[1:6]
rows = [l.split() for l in Path(runs_file).read_text().splitlines() if l.strip()]
data = {}
for name, rnd, wall, rss, rc in rows:
    data.setdefault(name, []).append({"round": int(rnd), "wall_s": float(wall),
                                       "rss_kib": int(rss), "exit": int(rc)})
sites = []
if Path(sites_file).is_file():
    sites = [int(l.split()[1]) for l in Path(sites_file).read_text().splitlines() if l.strip()]

med = {n: statistics.median(r["wall_s"] for r in v) for n, v in data.items()}
peak = {n: max(r["rss_kib"] for r in v) for n, v in data.items()}
print()
print(f"Benchmark on {tree}")
print(f"{'command':<10} {'runs':>4} {'median':>9} {'min':>9} {'max':>9} {'peak RSS':>11}")
for n in ("rg", "kmapcheck", "spatch"):
    if n not in data:
        continue
    w = [r["wall_s"] for r in data[n]]
    print(f"{n:<10} {len(w):>4} {med[n]:>8.2f}s {min(w):>8.2f}s {max(w):>8.2f}s "
          f"{peak[n] / 1024:>7.1f} MiB")
if sites:
    print(f"Coccinelle sites per spatch run: {sites}")

def ratio(a, b):
    return med[a] / med[b] if a in med and b in med and med[b] > 0 else None

print()
for a, b in (("kmapcheck", "rg"), ("spatch", "rg"), ("spatch", "kmapcheck")):
    r = ratio(a, b)
    if r is not None:
        print(f"ratio {a}/{b}: {r:.2f}x")

verdicts = []
r = ratio("kmapcheck", "rg")
if r is not None:
    verdicts.append(("kmapcheck median <= 2.0x rg median", r <= 2.0, f"{r:.2f}x"))
    print(f"goal kmapcheck <= 1.5x rg: {'met' if r <= 1.5 else 'not met'} ({r:.2f}x)")
if "kmapcheck" in peak:
    mb = peak["kmapcheck"] * 1024 / 1e6
    verdicts.append(("kmapcheck peak RSS < 200 MB", mb < 200, f"{mb:.1f} MB"))
for what, ok, val in verdicts:
    print(f"{'PASS' if ok else 'FAIL'}  {what}  ({val})")

if json_out:
    Path(json_out).write_text(json.dumps({
        "tree": tree, "kmapcheck_command": km_cmd, "runs": data,
        "median_wall_s": med, "peak_rss_kib": peak, "spatch_sites": sites,
        "targets": [{"target": w, "pass": ok, "value": v} for w, ok, v in verdicts],
    }, indent=1))
sys.exit(0 if all(ok for _, ok, _ in verdicts) else 1)
PY
