#!/usr/bin/env python3
"""Reporting helpers shared by scripts/kernel-eval, scripts/compare-cocci and
tests/bench/kernel.sh.

Subcommands:
  check-json FILE
      exit 0 when FILE is a kmapcheck JSON document ({"version":1,"findings":[...]}).
  summary --label NAME --json FILE [--stderr FILE] [--time FILE] [--exit N]
          [--markdown FILE] [--list N]
      findings per rule and severity, per top-level directory, the "stats"
      object, the --stats stderr text and wall time / peak RSS.
  compare --tree DIR --cocci SITES --kmapcheck FILE [--headers] [--markdown FILE]
      compare Coccinelle sites ("FILE:LINE:COL:CALLEE" lines) with kmapcheck's
      KM001 findings, print the sites where they differ.
  median  VALUES...          print the median of the numbers
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mutate  # noqa: E402  (function extents for triage)


def norm(p: str) -> str:
    while p.startswith("./"):
        p = p[2:]
    return p


def load_doc(path: str) -> dict:
    doc = json.loads(Path(path).read_text(errors="replace"))
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        raise ValueError("not a kmapcheck JSON document (no findings list)")
    return doc


def cmd_check_json(a) -> int:
    try:
        doc = load_doc(a.file)
    except Exception as e:  # noqa: BLE001
        print(f"{a.file}: {e}", file=sys.stderr)
        return 1
    if doc.get("version") != 1:
        print(f"{a.file}: unexpected version {doc.get('version')!r}", file=sys.stderr)
    return 0


def parse_time(path: str | None) -> tuple[float | None, int | None]:
    """/usr/bin/time -f '%e %M' output: wall seconds, max RSS KiB."""
    if not path or not Path(path).is_file():
        return None, None
    for line in reversed(Path(path).read_text().splitlines()):
        parts = line.split()
        if len(parts) == 2:
            try:
                return float(parts[0]), int(parts[1])
            except ValueError:
                continue
    return None, None


def flatten(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from flatten(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], d


def cmd_summary(a) -> int:
    out: list[str] = []
    md: list[str] = []
    wall, rss = parse_time(a.time)
    head = f"== kmapcheck on {a.label}: exit {a.exit}"
    if wall is not None:
        head += f", wall {wall:.2f}s, peak RSS {rss / 1024:.1f} MiB"
    out.append(head)
    md.append(f"### {a.label}\n")
    md.append(f"- exit status: {a.exit}")
    if wall is not None:
        md.append(f"- wall time: {wall:.2f} s, peak RSS: {rss / 1024:.1f} MiB")
    try:
        doc = load_doc(a.json)
    except Exception as e:  # noqa: BLE001
        out.append(f"   no usable JSON output: {e}")
        md.append(f"- no usable JSON output: {e}")
        doc = None
    if doc is not None:
        fs = doc["findings"]
        by = Counter((f.get("rule", "?"), f.get("severity", "?")) for f in fs)
        out.append(f"   findings: {len(fs)}")
        md.append(f"- findings: {len(fs)}\n")
        md.append("| rule | severity | count |\n|---|---|---|")
        if not by:
            md.append("| - | - | 0 |")
        for (rule, sev), n in sorted(by.items()):
            out.append(f"     {rule:<8} {sev:<8} {n}")
            md.append(f"| {rule} | {sev} | {n} |")
        dirs = Counter("/".join(norm(str(f.get("path", "?"))).split("/")[:-1][:2]) or "."
                       for f in fs)
        if dirs:
            out.append("   by directory: " + ", ".join(f"{d} {n}" for d, n in dirs.most_common(12)))
        stats = doc.get("stats")
        if isinstance(stats, dict) and stats:
            out.append("   stats (JSON):")
            md.append("\n| stat | value |\n|---|---|")
            for k, v in flatten(stats):
                out.append(f"     {k} = {v}")
                md.append(f"| {k} | {v} |")
        if a.crosscheck and Path(a.crosscheck).is_file():
            try:
                cc = json.loads(Path(a.crosscheck).read_text() or "{}")
            except ValueError:
                cc = {}
            if cc:
                out.append("   independent estimate (scripts/mutate.py coverage, comments and"
                           " strings ignored, every #if arm counted):")
                md.append("\nIndependent estimate (scripts/mutate.py coverage):\n")
                for k, v in cc.items():
                    out.append(f"     {k} = {v}")
                    md.append(f"- {k}: {v}")
        if a.list and fs:
            out.append(f"   first {min(a.list, len(fs))} findings:")
            md.append("\n| rule | severity | location | function | message |\n|---|---|---|---|---|")
            for f in fs[: a.list]:
                loc = f"{norm(str(f.get('path')))}:{f.get('line')}"
                out.append(f"     {f.get('rule')} {f.get('severity'):<7} {loc} "
                           f"{f.get('function')}: {f.get('message')}")
                msg = str(f.get("message", "")).replace("|", "\\|")
                md.append(f"| {f.get('rule')} | {f.get('severity')} | {loc} | "
                          f"{f.get('function')} | {msg} |")
    if a.stderr and Path(a.stderr).is_file():
        txt = Path(a.stderr).read_text(errors="replace").strip()
        if txt:
            out.append("   --stats (stderr):")
            out.extend("     " + ln for ln in txt.splitlines()[-40:])
            md.append("\n```\n" + "\n".join(txt.splitlines()[-40:]) + "\n```")
    print("\n".join(out))
    if a.markdown:
        with open(a.markdown, "a", encoding="utf-8") as fh:
            fh.write("\n".join(md) + "\n\n")
    return 0


def read_cocci(path: str) -> list[tuple[str, int, int, str]]:
    sites = []
    for line in Path(path).read_text(errors="replace").splitlines():
        parts = line.strip().rsplit(":", 3)
        if len(parts) != 4:
            continue
        f, ln, col, callee = parts
        try:
            sites.append((norm(f), int(ln), int(col), callee))
        except ValueError:
            continue
    return sorted(set(sites))


_extent_cache: dict[str, list] = {}


def enclosing(tree: Path, rel: str, line: int) -> tuple[str, int, int] | None:
    if rel not in _extent_cache:
        try:
            text = (tree / rel).read_text(encoding="utf-8", errors="surrogateescape")
            _extent_cache[rel] = mutate.find_functions(text, mutate.strip_c(text))
        except OSError:
            _extent_cache[rel] = []
    for f in _extent_cache[rel]:
        if f.start_line <= line <= f.end_line:
            return f.name, f.start_line, f.end_line
    return None


def site_evidence(tree: Path, rel: str, line: int, col: int, callee: str) -> str:
    """KM001 evidence near a Coccinelle site, with mutate.py's heuristics
    (col is Coccinelle's 0-based column of the callee)."""
    try:
        text = (tree / rel).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return "?"
    st = mutate.strip_c(text)
    off = sum(len(ln) + 1 for ln in text.split("\n")[: line - 1]) + col
    for f in enclosing_all(tree, rel):
        if f.body_open <= off <= f.end:
            body = st[f.body_open:f.end + 1]
            ev = mutate.evidence_for(body, off - f.body_open, callee)
            return ",".join(ev) or "none"
    return "?"


def enclosing_all(tree: Path, rel: str) -> list:
    enclosing(tree, rel, 0)
    return _extent_cache.get(rel, [])


def cmd_compare(a) -> int:
    tree = Path(a.tree)
    sites = read_cocci(a.cocci)
    doc = load_doc(a.kmapcheck)
    km_all = [f for f in doc["findings"] if f.get("rule") == "KM001"]
    km = [f for f in km_all if a.headers or not norm(str(f.get("path"))).endswith(".h")]
    skipped_h = len(km_all) - len(km)

    cocci_keys = defaultdict(list)
    for s in sites:
        cocci_keys[(s[0], s[1])].append(s)
    km_keys = defaultdict(list)
    for f in km:
        km_keys[(norm(str(f.get("path"))), f.get("line"))].append(f)

    both = sorted(set(cocci_keys) & set(km_keys))
    only_c = sorted(set(cocci_keys) - set(km_keys))
    only_k = sorted(set(km_keys) - set(cocci_keys), key=lambda k: (k[0], k[1] or 0))

    # second-chance pairing: same file and same enclosing function
    def fn_of(key):
        e = enclosing(tree, key[0], key[1] or 0)
        return (key[0], e) if e else None

    fn_k = defaultdict(list)
    for k in only_k:
        fk = fn_of(k)
        if fk:
            fn_k[fk].append(k)
    same_fn = []
    rest_c = []
    for k in only_c:
        fk = fn_of(k)
        if fk and fn_k.get(fk):
            same_fn.append((k, fn_k[fk][0]))
        else:
            rest_c.append(k)
    paired_k = {p[1] for p in same_fn}
    rest_k = [k for k in only_k if k not in paired_k]

    sev = Counter(f.get("severity") for k in both for f in km_keys[k])
    lines = [
        f"Coccinelle sites: {len(sites)} (in {len({s[0] for s in sites})} files)",
        f"kmapcheck KM001 findings: {len(km)}"
        + (f" (+{skipped_h} in headers, ignored: spatch ran without --include-headers)" if skipped_h else ""),
        f"same (file, line): {len(both)}"
        + (f"  [kmapcheck severities: {dict(sev)}]" if both else ""),
        f"same function, different line: {len(same_fn)}",
        f"only Coccinelle: {len(rest_c)}",
        f"only kmapcheck: {len(rest_k)}",
    ]
    print("\n".join(lines))

    def desc_fn(k):
        e = enclosing(tree, k[0], k[1] or 0)
        return e[0] if e else "?"

    diff_rows = []
    for k in rest_c:
        callee = ",".join(sorted({s[3] for s in cocci_keys[k]}))
        s0 = cocci_keys[k][0]
        ev = site_evidence(tree, k[0], k[1], s0[2], s0[3])
        diff_rows.append(("only-cocci", f"{k[0]}:{k[1]}", desc_fn(k), callee,
                          f"heuristic evidence: {ev}"))
    for k in rest_k:
        for f in km_keys[k]:
            diff_rows.append(("only-kmapcheck", f"{k[0]}:{k[1]}", f.get("function") or desc_fn(k),
                              str(f.get("severity")), str(f.get("message", ""))))
    for kc, kk in same_fn:
        f = km_keys[kk][0]
        diff_rows.append(("same-function", f"{kc[0]}:{kc[1]} vs :{kk[1]}", desc_fn(kc),
                          str(f.get("severity")), str(f.get("message", ""))))
    if diff_rows:
        print("\nSites where they differ:")
        for r in diff_rows:
            print(f"  {r[0]:<15} {r[1]:<55} {r[2]:<32} {r[3]:<10} {r[4][:100]}")
    if both and a.verbose:
        print("\nSites both report:")
        for k in both:
            f = km_keys[k][0]
            print(f"  {k[0]}:{k[1]}  {f.get('function')}  {f.get('severity')}")
    if a.markdown:
        md = ["## Coccinelle (km001.cocci) vs kmapcheck KM001", ""]
        md += [f"- {ln}" for ln in lines]
        md += ["", "| kind | site | function | callee / severity | kmapcheck message or evidence | triage |",
               "|---|---|---|---|---|---|"]
        for r in diff_rows:
            md.append("| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " | |")
        if both:
            md += ["", "Reported by both:", "", "| site | function | severity |", "|---|---|---|"]
            for k in both:
                f = km_keys[k][0]
                md.append(f"| {k[0]}:{k[1]} | {f.get('function')} | {f.get('severity')} |")
        Path(a.markdown).write_text("\n".join(md) + "\n", encoding="utf-8")
    return 0


def cmd_median(a) -> int:
    vals = [float(v) for v in a.values]
    print(f"{statistics.median(vals):.6f}" if vals else "nan")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check-json")
    c.add_argument("file")
    s = sub.add_parser("summary")
    s.add_argument("--label", required=True)
    s.add_argument("--json", required=True)
    s.add_argument("--stderr")
    s.add_argument("--time")
    s.add_argument("--exit", default="?")
    s.add_argument("--markdown")
    s.add_argument("--list", type=int, default=0)
    s.add_argument("--crosscheck", help="JSON from `mutate.py coverage`")
    m = sub.add_parser("compare")
    m.add_argument("--tree", required=True)
    m.add_argument("--cocci", required=True)
    m.add_argument("--kmapcheck", required=True)
    m.add_argument("--headers", action="store_true")
    m.add_argument("--markdown")
    m.add_argument("--verbose", action="store_true")
    md = sub.add_parser("median")
    md.add_argument("values", nargs="*")
    a = ap.parse_args()
    return {"check-json": cmd_check_json, "summary": cmd_summary, "compare": cmd_compare,
            "median": cmd_median}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
