#!/usr/bin/env python3
"""Mutation study helper for scripts/kernel-eval.

Finds real kernel functions that are protected against KM001 and builds
mutants that remove the protection, runs kmapcheck on the original file and
on the mutant (both as single-file copies in a scratch directory, so the
shared kernel trees are never modified), and classifies the outcome.

Two mutation kinds:

  disable   function bodies containing kmap_local_*() and a pagefault_disable()
            that covers a user access; every `pagefault_disable();` and
            `pagefault_enable();` statement of THAT function is replaced by
            blanks and a lone `;` (same length, so line and column numbers and
            the meaning of `if (x) pagefault_disable();` are preserved).

  convert   function bodies where a user access sits inside a kmap_atomic*()
            ... kunmap_atomic() region; in THAT function kmap_atomic( becomes
            kmap_local_page(, kmap_atomic_pfn( becomes kmap_local_pfn( and
            kunmap_atomic( becomes kunmap_local( (the historical
            kmap_atomic -> kmap_local conversion). Line numbers are preserved.

Whether a mutant *should* be reported is computed, not hard-coded: the helper
looks for KM001 "evidence" near each exposed user access with the same
textual heuristics the rule describes (an _inatomic variant, an atomic context
acquired before the access, mmap_lock taken in the function, a -ENOENT/-EAGAIN
fallback after the access, and a caller that takes mmap_lock before calling
the function, up to three calls up, looked for by name with rg: a static
function in its own file, another in every .c file). The files of the direct
callers are given to kmapcheck with the mutant (and with the original), so
caller context counts as it does in a whole-tree run. Mutants without
evidence are expected to be silent and are reported as "silent by design",
not as misses.

Subcommands:
  study   --tree DIR --label NAME --bin KMAPCHECK --work DIR --out FILE.json
          [--tree-json WHOLE_TREE_OUTPUT.json] [--kinds disable,convert]
          [--jobs N] [--limit N]
  table   RESULT.json... [--markdown FILE] [--strict]
                                             prints the table; exit 1 when a
                                             real failure was recorded (with
                                             --strict: or a mutant was MISSED)
  list    --tree DIR [--kinds ...]           only list candidates (no kmapcheck)
  coverage --tree DIR                        independent count of files/functions
                                             with kmap calls (JSON), to cross-check
                                             kmapcheck's --stats coverage
"""
from __future__ import annotations

import argparse
import bisect
import concurrent.futures as cf
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, asdict
from pathlib import Path

# --------------------------------------------------------------------------
# Vocabulary (kept in one place; mirrors the KM001 description in the brief)
# --------------------------------------------------------------------------

USER_ACCESS = [
    r"__copy_from_user_inatomic_nocache", r"__copy_from_user_inatomic",
    r"__copy_to_user_inatomic", r"__copy_from_user_nocache",
    r"__copy_from_user", r"__copy_to_user", r"copy_from_user", r"copy_to_user",
    r"__get_user", r"__put_user", r"get_user", r"put_user",
    r"strncpy_from_user", r"strnlen_user", r"__clear_user", r"clear_user",
    r"copy_struct_from_user",
    r"copy_page_from_iter_atomic", r"copy_folio_from_iter_atomic",
    r"copy_page_from_iter", r"copy_page_to_iter",
    r"copy_folio_from_iter", r"copy_folio_to_iter",
    r"_copy_from_iter", r"_copy_to_iter",
    r"copy_from_iter_full_nocache", r"copy_from_iter_full",
    r"copy_from_iter_nocache", r"copy_from_iter_flushcache",
    r"copy_from_iter", r"copy_to_iter", r"copy_mc_to_iter",
]
RE_UA = re.compile(r"\b(" + "|".join(USER_ACCESS) + r")\s*\(")
RE_KMAP_LOCAL = re.compile(r"\bkmap_local_(?:page|folio|pfn)\s*\(")
RE_KUNMAP_LOCAL = re.compile(r"\bkunmap_local\s*\(")
RE_PF_DISABLE = re.compile(r"\bpagefault_disable\s*\(\s*\)")
RE_PF_ENABLE = re.compile(r"\bpagefault_enable\s*\(\s*\)")
RE_PF_STMT = re.compile(r"\bpagefault_(?:disable|enable)\s*\(\s*\)\s*;")
RE_KMAP_ATOMIC = re.compile(r"\bkmap_atomic(?:_pfn|_prot)?\s*\(")
RE_KUNMAP_ATOMIC = re.compile(r"\bkunmap_atomic\s*\(")
# Rewrites for the conversion mutant (kmap_atomic_prot has no kmap_local_page
# counterpart in KM001's list; functions needing it are skipped).
CONVERT = [
    (re.compile(r"\bkmap_atomic_pfn(\s*\()"), r"kmap_local_pfn\1"),
    (re.compile(r"\bkmap_atomic(\s*\()"), r"kmap_local_page\1"),
    (re.compile(r"\bkunmap_atomic(\s*\()"), r"kunmap_local\1"),
]

# Evidence heuristics.
RE_ATOMIC_ACQ = re.compile(
    r"\b(?:spin_lock\w*|raw_spin_lock\w*|_raw_spin_lock\w*|read_lock\w*|"
    r"write_lock\w*|spin_trylock\w*|raw_spin_trylock\w*|bit_spin_lock|"
    r"rcu_read_lock\w*|preempt_disable\w*|local_irq_disable|local_irq_save|"
    r"local_bh_disable|pte_offset_map_lock|get_cpu|get_cpu_var|"
    r"local_lock\w*|lock_page_memcg)\s*\(")
RE_ATOMIC_REL = re.compile(
    r"\b(?:spin_unlock\w*|raw_spin_unlock\w*|_raw_spin_unlock\w*|"
    r"read_unlock\w*|write_unlock\w*|bit_spin_unlock|rcu_read_unlock\w*|"
    r"preempt_enable\w*|local_irq_enable|local_irq_restore|local_bh_enable|"
    r"pte_unmap_unlock|put_cpu|put_cpu_var|local_unlock\w*|"
    r"unlock_page_memcg)\s*\(")
RE_MMAP_LOCK = re.compile(
    r"\b(?:mmap_read_lock\w*|mmap_write_lock\w*|mmap_read_trylock\w*|"
    r"mmap_write_trylock\w*|lock_mm_and_find_vma|"
    r"(?:down_read|down_write)\w*\s*\(\s*&[^;()]*mmap_(?:lock|sem))\b")
RE_RETRY = re.compile(r"-\s*(?:ENOENT|EAGAIN)\b")
# Caller context (issue 6): a caller that takes mmap_lock (directly, or through
# the userfaultfd acquire helpers, or the per-VMA lock) before calling the
# function, found by name in the files that call it, up to CALLER_DEPTH calls up.
RE_CALLER_MMAP = re.compile(
    r"\b(?:mmap_read_lock\w*|mmap_write_lock\w*|uffd_mfill_lock|uffd_lock_vma|"
    r"lock_vma_under_rcu|lock_mm_and_find_vma|"
    r"(?:down_read|down_write)\w*\s*\(\s*&[^;()]*mmap_(?:lock|sem))\s*\(")
CALLER_DEPTH = 3


# --------------------------------------------------------------------------
# C scanning
# --------------------------------------------------------------------------

def strip_c(text: str) -> str:
    """Blank comments, string/char literals and preprocessor lines.

    Offsets and newlines are preserved, so positions in the result are
    positions in the original text."""
    out = list(text)
    n = len(text)
    i = 0
    at_line_start = True
    while i < n:
        c = text[i]
        if c == "\n":
            at_line_start = True
            i += 1
            continue
        if at_line_start and c in " \t":
            i += 1
            continue
        if at_line_start and c == "#":
            # preprocessor directive, with continuations and comments
            j = i
            while j < n:
                if text[j] == "\\" and j + 1 < n and text[j + 1] == "\n":
                    j += 2
                    continue
                if text.startswith("/*", j):
                    k = text.find("*/", j + 2)
                    j = n if k < 0 else k + 2
                    continue
                if text[j] == "\n":
                    break
                j += 1
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
            continue
        at_line_start = False
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            for k in range(i + 1, j - 1):
                if out[k] != "\n":
                    out[k] = " "
            i = j
            continue
        i += 1
    return "".join(out)


RE_PP = re.compile(r"^[ \t]*#[ \t]*(if|ifdef|ifndef|elif|else|endif)\b")


def conditional_directives(text: str) -> dict[int, str]:
    """Map 0-based line index -> if/elif/else/endif for conditional directives."""
    out = {}
    for idx, line in enumerate(text.split("\n")):
        m = RE_PP.match(line)
        if m:
            kw = m.group(1)
            out[idx] = "if" if kw in ("if", "ifdef", "ifndef") else kw
    return out


@dataclass
class Func:
    name: str
    start: int  # offset of the declarator name
    body_open: int  # offset of '{'
    end: int  # offset of matching '}'
    start_line: int = 0
    end_line: int = 0


RE_IDENT_BEFORE = re.compile(r"([A-Za-z_]\w*)\s*$")


def _match_paren_back(s: str, close: int) -> int:
    depth = 0
    for k in range(close, -1, -1):
        if s[k] == ")":
            depth += 1
        elif s[k] == "(":
            depth -= 1
            if depth == 0:
                return k
    return -1


def _function_name(s: str, brace: int) -> tuple[str, int] | None:
    k = brace - 1
    while k >= 0 and s[k].isspace():
        k -= 1
    guard = 0
    while k >= 0 and s[k] == ")" and guard < 8:
        guard += 1
        op = _match_paren_back(s, k)
        if op < 0:
            return None
        m = RE_IDENT_BEFORE.search(s[max(0, op - 200):op])
        if not m:
            return None
        name = m.group(1)
        name_off = max(0, op - 200) + m.start(1)
        j = name_off - 1
        while j >= 0 and s[j].isspace():
            j -= 1
        if j >= 0 and s[j] == ")":
            # `name(...)` was a trailing attribute such as __acquires(x)
            k = j
            continue
        if name in ("if", "for", "while", "switch", "return", "sizeof"):
            return None
        if re.fullmatch(r"(?:COMPAT_)?SYSCALL_DEFINE\d", name):
            arg = re.match(r"\(\s*(\w+)", s[op:])
            if arg:  # named like kmapcheck does: the syscall name
                name = arg.group(1)
        return name, name_off
    return None


def find_functions(text: str, stripped: str) -> list[Func]:
    """Top-level function definitions, by brace matching on `stripped`.

    Every arm of an #if/#elif/#else is scanned (functions that only exist in an
    #else arm are found), but each arm starts from the brace depth at the #if
    and the depth after the first arm is kept at #endif, so arms that open the
    same brace twice (`#ifdef X / if (a) { / #else / if (b) { / #endif`) do not
    unbalance the count."""
    directives = conditional_directives(text)
    funcs: list[Func] = []
    stack: list[list] = []  # [depth_at_if, depth_after_first_arm or None]
    depth = 0
    cur: Func | None = None
    pos = 0
    for idx, line in enumerate(stripped.split("\n")):
        kw = directives.get(idx)
        if kw == "if":
            stack.append([depth, None])
        elif kw in ("elif", "else") and stack:
            if stack[-1][1] is None:
                stack[-1][1] = depth
            depth = stack[-1][0]
        elif kw == "endif" and stack:
            at_if, after_first = stack.pop()
            if after_first is not None:
                depth = after_first
        for j, c in enumerate(line):
            if c == "{":
                if depth == 0:
                    nm = _function_name(stripped, pos + j)
                    cur = Func(nm[0], nm[1], pos + j, -1) if nm else None
                depth += 1
            elif c == "}":
                depth -= 1
                if depth <= 0:
                    depth = 0
                    if cur is not None:
                        cur.end = pos + j
                        funcs.append(cur)
                        cur = None
        pos += len(line) + 1
    line_starts = [0]
    for m in re.finditer("\n", text):
        line_starts.append(m.end())
    for f in funcs:
        f.start_line = bisect.bisect_right(line_starts, f.start)
        f.end_line = bisect.bisect_right(line_starts, f.end)
    return funcs


def line_of(text: str, off: int) -> int:
    return text.count("\n", 0, off) + 1


# --------------------------------------------------------------------------
# Candidates and evidence
# --------------------------------------------------------------------------

@dataclass
class Access:
    callee: str
    line: int
    offset: int
    evidence: list[str] = field(default_factory=list)
    still_disabled: bool = False  # explicit pagefault_disable() still covers it


@dataclass
class Candidate:
    tree: str
    path: str  # tree-relative
    function: str
    kind: str  # disable | convert
    start_line: int
    end_line: int
    exposed: list[Access]
    mutated_lines: list[int]
    expected: str  # error | warning | silent-no-evidence | silent-still-disabled
    skip_reason: str = ""
    # tree-relative .c files that call the function: given to kmapcheck with
    # the mutant, so callers' context counts as it does on the whole tree
    caller_files: list[str] = field(default_factory=list)


def _positions(rx: re.Pattern, body: str) -> list[int]:
    return [m.start() for m in rx.finditer(body)]


def _pf_depth_at(body: str, off: int) -> int:
    d = 0
    events = sorted([(p, 1) for p in _positions(RE_PF_DISABLE, body)] +
                    [(p, -1) for p in _positions(RE_PF_ENABLE, body)])
    for p, delta in events:
        if p >= off:
            break
        d = max(0, d + delta)
    return d


def evidence_for(body: str, off: int, callee: str) -> list[str]:
    ev = []
    if "inatomic" in callee:
        ev.append("inatomic")
    before = body[:off]
    if len(RE_ATOMIC_ACQ.findall(before)) > len(RE_ATOMIC_REL.findall(before)):
        ev.append("atomic")
    if RE_MMAP_LOCK.search(before):
        ev.append("mmap_lock")
    if RE_RETRY.search(body[off:]):
        ev.append("retry")
    return ev


def files_calling(tree: Path, name: str) -> list[str]:
    rg = shutil.which("rg")
    if not rg:
        return []
    p = subprocess.run([rg, "-l", "--no-messages", "-g", "*.c", r"\b" + name + r"\s*\(", "."],
                       cwd=tree, capture_output=True, text=True)
    return sorted(norm_path(x) for x in p.stdout.splitlines() if x.strip())


def caller_evidence(tree: Path, rel: str, name: str, static: bool) -> tuple[list[str], list[str]]:
    """(evidence, caller files): "caller_mmap_lock" when a function calls
    `name` after taking mmap_lock, directly or CALLER_DEPTH calls up. A
    static function is looked for in its own file only."""
    files: set[str] = set()
    seen: set[tuple[str, str]] = set()
    todo = [(rel, name, static, 0)]
    found = False
    while todo and not found:
        frel, fname, fstatic, depth = todo.pop(0)
        if (frel, fname) in seen or depth >= CALLER_DEPTH:
            continue
        seen.add((frel, fname))
        where = [frel] if fstatic else files_calling(tree, fname)
        call = re.compile(r"\b" + re.escape(fname) + r"\s*\(")
        for crel in where:
            try:
                text = (tree / crel).read_text(encoding="utf-8", errors="surrogateescape")
            except OSError:
                continue
            st = strip_c(text)
            for f in find_functions(text, st):
                body = st[f.body_open:f.end + 1]
                m = call.search(body)
                if not m or f.name == fname:
                    continue
                if crel != rel:
                    files.add(crel)
                if RE_CALLER_MMAP.search(body[:m.start()]):
                    found = True
                    break
                header = st[max(0, f.start - 120):f.start]
                todo.append((crel, f.name, bool(re.search(r"\bstatic\b[^;{}]*$", header)), depth + 1))
            if found:
                break
    return (["caller_mmap_lock"] if found else []), sorted(files)[:16]


def expected_of(accesses: list[Access]) -> str:
    live = [a for a in accesses if not a.still_disabled]
    if not live:
        return "silent-still-disabled"
    evs = {e for a in live for e in a.evidence}
    if evs & {"inatomic", "atomic", "mmap_lock", "caller_mmap_lock"}:
        return "error"
    if "retry" in evs:
        return "warning"
    return "silent-no-evidence"


_CALLERS: dict[tuple[str, str], tuple[list[str], list[str]]] = {}


def _callers(tree: Path, rel: str, f: Func, stripped: str) -> tuple[list[str], list[str]]:
    key = (rel, f.name)
    if key not in _CALLERS:
        header = stripped[max(0, f.start - 120):f.start]
        static = bool(re.search(r"\bstatic\b[^;{}]*$", header))
        _CALLERS[key] = caller_evidence(tree, rel, f.name, static)
    return _CALLERS[key]


def add_caller_context(tree: Path, rel: str, f: Func, stripped: str, exposed: list[Access]) -> None:
    """Caller evidence counts only for accesses without an error-level
    evidence of their own (what KM001 does)."""
    if all({"inatomic", "atomic", "mmap_lock"} & set(a.evidence) for a in exposed):
        return
    ev, _ = _callers(tree, rel, f, stripped)
    for a in exposed:
        if not {"inatomic", "atomic", "mmap_lock"} & set(a.evidence):
            a.evidence.extend(ev)


def caller_files_of(tree: Path, rel: str, f: Func, stripped: str) -> list[str]:
    return _callers(tree, rel, f, stripped)[1]


def candidates_in_file(tree: Path, rel: str, label: str, kinds: set[str]) -> list[Candidate]:
    try:
        text = (tree / rel).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return []
    stripped = strip_c(text)
    want_disable = "disable" in kinds and RE_PF_DISABLE.search(stripped) and RE_KMAP_LOCAL.search(stripped)
    want_convert = "convert" in kinds and RE_KMAP_ATOMIC.search(stripped) and RE_KUNMAP_ATOMIC.search(stripped)
    if not (want_disable or want_convert):
        return []
    out: list[Candidate] = []
    for f in find_functions(text, stripped):
        base = f.body_open
        body = stripped[base:f.end + 1]
        uas = [(m.group(1), m.start()) for m in RE_UA.finditer(body)]
        if not uas:
            continue
        if want_disable and RE_KMAP_LOCAL.search(body) and RE_PF_DISABLE.search(body):
            kmaps = _positions(RE_KMAP_LOCAL, body)
            covered = [(c, o) for c, o in uas
                       if any(k < o for k in kmaps) and _pf_depth_at(body, o) > 0]
            if covered:
                exposed = [Access(c, line_of(text, base + o), o, evidence_for(body, o, c))
                           for c, o in covered]
                stmts = list(RE_PF_STMT.finditer(body))
                n_calls = len(_positions(RE_PF_DISABLE, body)) + len(_positions(RE_PF_ENABLE, body))
                add_caller_context(tree, rel, f, stripped, exposed)
                cand = Candidate(label, rel, f.name, "disable", f.start_line, f.end_line,
                                 exposed, sorted({line_of(text, base + m.start()) for m in stmts}),
                                 expected_of(exposed))
                cand.caller_files = caller_files_of(tree, rel, f, stripped)
                if len(stmts) != n_calls:
                    cand.skip_reason = "pagefault_disable/enable not all plain statements"
                out.append(cand)
        if want_convert and RE_KMAP_ATOMIC.search(body) and RE_KUNMAP_ATOMIC.search(body):
            maps = _positions(RE_KMAP_ATOMIC, body)
            unmaps = _positions(RE_KUNMAP_ATOMIC, body)
            inside = []
            for c, o in uas:
                nm = sum(1 for p in maps if p < o)
                nu = sum(1 for p in unmaps if p < o)
                if nm > nu and any(p > o for p in unmaps):
                    inside.append((c, o))
            if inside:
                exposed = []
                for c, o in inside:
                    a = Access(c, line_of(text, base + o), o, evidence_for(body, o, c))
                    a.still_disabled = _pf_depth_at(body, o) > 0
                    exposed.append(a)
                lines = sorted({line_of(text, base + p) for p in maps + unmaps})
                add_caller_context(tree, rel, f, stripped, exposed)
                cand = Candidate(label, rel, f.name, "convert", f.start_line, f.end_line,
                                 exposed, lines, expected_of(exposed))
                cand.caller_files = caller_files_of(tree, rel, f, stripped)
                if re.search(r"\bkmap_atomic_prot\s*\(", body):
                    cand.skip_reason = "uses kmap_atomic_prot (no kmap_local equivalent in KM001)"
                out.append(cand)
    return out


def mutate_text(text: str, cand: Candidate) -> str:
    stripped = strip_c(text)
    # locate the function again by its line range
    lines_off = [0]
    for m in re.finditer("\n", text):
        lines_off.append(m.end())
    lo = lines_off[cand.start_line - 1]
    hi = lines_off[cand.end_line] if cand.end_line < len(lines_off) else len(text)
    seg = text[lo:hi]
    sseg = stripped[lo:hi]
    if cand.kind == "disable":
        chars = list(seg)
        for m in RE_PF_STMT.finditer(sseg):
            a, b = m.start(), m.end()
            for k in range(a, b - 1):
                if chars[k] != "\n":
                    chars[k] = " "
            # keep the ';' so `if (x) pagefault_disable();` stays well-formed
        new = "".join(chars)
    else:
        # rewrite only outside comments/strings: apply on code spans
        pieces = []
        last = 0
        spans = []
        for rx, _ in CONVERT:
            for m in rx.finditer(sseg):
                spans.append((m.start(), m.end(), rx))
        spans.sort(key=lambda t: t[0])
        used_until = -1
        for a, b, rx in spans:
            if a < used_until:
                continue
            pieces.append(seg[last:a])
            repl = dict((r, t) for r, t in CONVERT)[rx]
            pieces.append(rx.sub(repl, seg[a:b]))
            last = b
            used_until = b
        pieces.append(seg[last:])
        new = "".join(pieces)
    assert new.count("\n") == seg.count("\n")
    return text[:lo] + new + text[hi:]


# --------------------------------------------------------------------------
# Running kmapcheck
# --------------------------------------------------------------------------

@dataclass
class Run:
    exit: int
    findings: list[dict]
    error: str = ""
    seconds: float = 0.0


def run_kmapcheck(binary: str, root: Path, rel: str, timeout: int, extra: list[str] = ()) -> Run:
    t0 = time.monotonic()
    try:
        p = subprocess.run([binary, "--format", "json", "--jobs", "1", rel, *extra], cwd=root,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Run(-1, [], f"timeout after {timeout}s", timeout)
    except OSError as e:
        return Run(-1, [], f"cannot run {binary}: {e}", 0.0)
    dt = time.monotonic() - t0
    err = p.stderr.decode(errors="replace").strip()
    if p.returncode not in (0, 1):
        tail = err.splitlines()[-1] if err else ""
        return Run(p.returncode, [], f"exit {p.returncode}: {tail}"[:300], dt)
    try:
        doc = json.loads(p.stdout.decode(errors="replace") or "null")
        findings = doc["findings"]
        if not isinstance(findings, list):
            raise TypeError("findings is not a list")
    except Exception as e:  # noqa: BLE001 - anything unparseable is an error
        head = p.stdout.decode(errors="replace")[:80].replace("\n", " ")
        return Run(p.returncode, [], f"unparseable JSON ({e.__class__.__name__}): {head!r}", dt)
    return Run(p.returncode, findings, "", dt)


def norm_path(p: str) -> str:
    while p.startswith("./"):
        p = p[2:]
    return p


def in_function(findings: list[dict], rel: str, cand: Candidate, rule: str | None = "KM001") -> list[dict]:
    out = []
    for f in findings:
        if rule and f.get("rule") != rule:
            continue
        if norm_path(str(f.get("path", ""))) != rel:
            continue
        line = f.get("line")
        if isinstance(line, int) and cand.start_line <= line <= cand.end_line:
            out.append(f)
    return out


def fmt_findings(fs: list[dict]) -> str:
    if not fs:
        return "silent"
    return ", ".join(f"{f.get('rule')}/{f.get('severity')}@L{f.get('line')}" for f in fs)


def classify(c: Candidate, orig: Run, mut: Run | None, orig_tree: list[dict] | None) -> tuple[str, bool]:
    """Return (verdict, is_real_failure)."""
    if orig.error:
        return f"ERROR original: {orig.error}", True
    if orig_tree:
        return "FAIL original reports (whole-tree run)", True
    o = in_function(orig.findings, c.path, c)
    if o:
        return "FAIL original reports", True
    if c.skip_reason:
        return f"skipped: {c.skip_reason}", False
    assert mut is not None
    if mut.error:
        return f"ERROR mutant: {mut.error}", True
    m = in_function(mut.findings, c.path, c)
    exp = c.expected
    if exp in ("error", "warning"):
        if not m:
            return f"MISSED (expected {exp})", False
        sevs = {f.get("severity") for f in m}
        if exp in sevs:
            return "caught", False
        return f"caught, severity {'/'.join(sorted(map(str, sevs)))} (expected {exp})", False
    if exp == "silent-no-evidence":
        if not m:
            return "no evidence, silent by design", False
        return "reported although heuristic found no evidence (check)", False
    # silent-still-disabled
    if not m:
        return "still fault-disabled, silent", False
    return "reported although faults still disabled (check)", False


# --------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------

def list_source_files(tree: Path, kinds: set[str]) -> list[str]:
    pats = []
    if "disable" in kinds:
        pats.append("pagefault_disable")
    if "convert" in kinds:
        pats.append("kunmap_atomic")
    rg = shutil.which("rg")
    if rg:
        cmd = [rg, "-l", "--no-messages", "-g", "*.c", "-g", "*.h"]
        for pat in pats:
            cmd += ["-e", pat]
        p = subprocess.run(cmd + ["."], cwd=tree, capture_output=True, text=True)
        files = [norm_path(x) for x in p.stdout.splitlines() if x.strip()]
    else:  # slow fallback
        files = []
        rx = re.compile("|".join(pats))
        for dp, _, fns in os.walk(tree):
            for fn in fns:
                if fn.endswith((".c", ".h")):
                    full = Path(dp) / fn
                    try:
                        if rx.search(full.read_text(errors="ignore")):
                            files.append(str(full.relative_to(tree)))
                    except OSError:
                        pass
    return sorted(set(files))


def collect(tree: Path, label: str, kinds: set[str]) -> list[Candidate]:
    cands: list[Candidate] = []
    for rel in list_source_files(tree, kinds):
        cands.extend(candidates_in_file(tree, rel, label, kinds))
    cands.sort(key=lambda c: (c.kind != "disable", c.path, c.start_line))
    return cands


def cmd_list(args) -> int:
    kinds = set(args.kinds.split(","))
    for c in collect(Path(args.tree), args.label or Path(args.tree).name, kinds):
        acc = "; ".join(f"{a.callee}@L{a.line}[{','.join(a.evidence) or '-'}]"
                        f"{'(still disabled)' if a.still_disabled else ''}" for a in c.exposed)
        skip = f"  SKIP: {c.skip_reason}" if c.skip_reason else ""
        print(f"{c.kind:8} {c.path}:{c.start_line}-{c.end_line} {c.function}  "
              f"expect={c.expected}  {acc}{skip}")
    return 0


def cmd_study(args) -> int:
    tree = Path(args.tree).resolve()
    kinds = set(args.kinds.split(","))
    # kmapcheck runs with cwd = scratch root: make the binary path absolute
    args.bin = os.path.abspath(args.bin) if os.sep in args.bin else (shutil.which(args.bin) or args.bin)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    cands = collect(tree, args.label, kinds)
    if args.limit:
        cands = cands[: args.limit]
    print(f"mutate.py: {args.label}: {len(cands)} candidate functions "
          f"({sum(c.kind == 'disable' for c in cands)} disable, "
          f"{sum(c.kind == 'convert' for c in cands)} convert) found in "
          f"{time.monotonic() - t0:.1f}s", file=sys.stderr)

    tree_findings: list[dict] | None = None
    if args.tree_json and Path(args.tree_json).is_file():
        try:
            tree_findings = json.loads(Path(args.tree_json).read_text())["findings"]
        except Exception:  # noqa: BLE001
            tree_findings = None

    # original runs: one per file (shared by all candidates of that file)
    files = sorted({c.path for c in cands})
    # the callers' files go with each run (unmutated), so a caller's context
    # counts as it does in the whole-tree run
    callers_of: dict[str, list[str]] = {}
    for c in cands:
        callers_of.setdefault(c.path, [])
        for x in c.caller_files:
            if x != c.path and x not in callers_of[c.path]:
                callers_of[c.path].append(x)
    orig_root = work / "orig"
    for rel in sorted(set(files) | {x for v in callers_of.values() for x in v}):
        dst = orig_root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tree / rel, dst)

    def orig_job(rel: str) -> tuple[str, Run]:
        return rel, run_kmapcheck(args.bin, orig_root, rel, args.timeout, callers_of[rel])

    def mut_job(idx: int, c: Candidate) -> tuple[int, Run | None]:
        if c.skip_reason:
            return idx, None
        root = work / f"m{idx:04d}"
        dst = root / c.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        text = (tree / c.path).read_text(encoding="utf-8", errors="surrogateescape")
        mutant = mutate_text(text, c)
        if mutant == text:
            c.skip_reason = "mutation changed nothing"
            return idx, None
        dst.write_text(mutant, encoding="utf-8", errors="surrogateescape")
        extra = [x for x in c.caller_files if x != c.path]
        for x in extra:
            (root / x).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tree / x, root / x)
        return idx, run_kmapcheck(args.bin, root, c.path, args.timeout, extra)

    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        orig_runs = dict(ex.map(lambda r: orig_job(r), files))
        mut_runs = dict(ex.map(lambda t: mut_job(*t), list(enumerate(cands))))

    rows = []
    failures = 0
    for idx, c in enumerate(cands):
        orig = orig_runs[c.path]
        mut = mut_runs.get(idx)
        otree = in_function(tree_findings, c.path, c) if tree_findings is not None else None
        verdict, fail = classify(c, orig, mut, otree)
        failures += fail
        rows.append({
            "tree": c.tree, "path": c.path, "function": c.function, "kind": c.kind,
            "lines": [c.start_line, c.end_line],
            "mutated_lines": c.mutated_lines,
            "accesses": [asdict(a) for a in c.exposed],
            "expected": c.expected,
            "original": orig.error or fmt_findings(in_function(orig.findings, c.path, c)),
            "original_tree": None if otree is None else fmt_findings(otree),
            "mutant": ("-" if mut is None else
                       (mut.error or fmt_findings(in_function(mut.findings, c.path, c)))),
            "mutant_other_rules": ("" if mut is None or mut.error else
                                   fmt_findings([f for f in in_function(mut.findings, c.path, c, None)
                                                 if f.get("rule") != "KM001"])),
            "verdict": verdict, "failure": bool(fail),
            "seconds": round(orig.seconds + (mut.seconds if mut else 0.0), 3),
        })
    Path(args.out).write_text(json.dumps({"tree": args.label, "rows": rows}, indent=1))
    if not args.keep:
        for p in work.iterdir():
            shutil.rmtree(p, ignore_errors=True)
    print(f"mutate.py: {args.label}: {len(rows)} mutants evaluated, {failures} real failures "
          f"({time.monotonic() - t0:.1f}s)", file=sys.stderr)
    return 0


RE_ANY_KMAP = re.compile(r"\bkmap(?:_local_(?:page|folio|pfn)|_atomic(?:_pfn|_prot)?)?\s*\(")


def cmd_coverage(args) -> int:
    """Independent estimate of what kmapcheck should analyze: files and
    function bodies with a kmap_local_* call (and with any kmap family call)."""
    tree = Path(args.tree)
    rg = shutil.which("rg")
    if not rg:
        print("{}")
        return 0
    p = subprocess.run([rg, "-l", "--no-messages", "-g", "*.c", "-g", "*.h", "-e", r"\bkmap", "."],
                       cwd=tree, capture_output=True, text=True)
    files_local = files_any = funcs_local = funcs_any = 0
    for rel in sorted(norm_path(x) for x in p.stdout.splitlines() if x.strip()):
        text = (tree / rel).read_text(encoding="utf-8", errors="surrogateescape")
        st = strip_c(text)
        has_local = bool(RE_KMAP_LOCAL.search(st))
        has_any = bool(RE_ANY_KMAP.search(st))
        files_local += has_local
        files_any += has_any
        if not has_any:
            continue
        for f in find_functions(text, st):
            body = st[f.body_open:f.end + 1]
            if RE_KMAP_LOCAL.search(body):
                funcs_local += 1
            if RE_ANY_KMAP.search(body):
                funcs_any += 1
    print(json.dumps({"files_with_kmap_local_call": files_local,
                      "files_with_any_kmap_call": files_any,
                      "functions_with_kmap_local_call": funcs_local,
                      "functions_with_any_kmap_call": funcs_any}))
    return 0


KIND_LABEL = {"disable": "delete pagefault_disable", "convert": "kmap_atomic->kmap_local"}
EXPECT_LABEL = {"error": "error", "warning": "warning",
                "silent-no-evidence": "silent (no evidence)",
                "silent-still-disabled": "silent (still disabled)"}


def verdict_group(v: str) -> str:
    for key in ("ERROR", "FAIL", "MISSED", "caught", "no evidence", "still fault-disabled",
                "reported although", "skipped"):
        if v.startswith(key):
            return key
    return v


def cmd_table(args) -> int:
    rows = []
    for fn in args.results:
        rows.extend(json.loads(Path(fn).read_text())["rows"])
    hdr = ["tree", "file", "function", "mutation", "evidence", "expected",
           "original", "mutant (rule/severity@line)", "verdict"]

    def evid(r):
        evs = sorted({e for a in r["accesses"] if not a.get("still_disabled") for e in a["evidence"]})
        return ",".join(evs) or "-"

    def orig_s(r):
        s = r["original"]
        if r.get("original_tree") not in (None, "silent"):
            s += f" (tree: {r['original_tree']})"
        return s

    table = [[r["tree"], f"{r['path']}:{r['lines'][0]}", r["function"], KIND_LABEL[r["kind"]],
              evid(r), EXPECT_LABEL.get(r["expected"], r["expected"]), orig_s(r),
              r["mutant"], r["verdict"]] for r in rows]

    widths = [max(len(h), *(len(str(t[i])) for t in table)) if table else len(h)
              for i, h in enumerate(hdr)]
    widths = [min(w, 60) for w in widths]

    def cut(s, w):
        s = str(s)
        return s if len(s) <= w else s[: w - 1] + "…"

    print("  ".join(h.ljust(w) for h, w in zip(hdr, widths)))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print("  ".join(cut(c, w).ljust(w) for c, w in zip(t, widths)).rstrip())

    # summary
    print()
    summary: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        d = summary.setdefault((r["tree"], r["kind"]), {})
        g = verdict_group(r["verdict"])
        d[g] = d.get(g, 0) + 1
    print("Summary (tree, mutation: verdict counts)")
    for (tree, kind), d in sorted(summary.items()):
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))
        print(f"  {tree:<20} {KIND_LABEL[kind]:<26} {sum(d.values()):4d} mutants -> {parts}")
    failures = [r for r in rows if r["failure"]
                or (args.strict and verdict_group(r["verdict"]) == "MISSED")]
    print(f"Real failures: {len(failures)}" + (" (--strict: MISSED counts)" if args.strict else ""))
    for r in failures:
        print(f"  {r['tree']} {r['path']} {r['function']}: {r['verdict']}")

    if args.markdown:
        def esc(s):
            return str(s).replace("|", "\\|")
        md = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
        md += ["| " + " | ".join(esc(c) for c in t) + " |" for t in table]
        md += ["", "| tree | mutation | mutants | verdicts |", "|---|---|---|---|"]
        for (tree, kind), d in sorted(summary.items()):
            parts = ", ".join(f"{k}: {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))
            md.append(f"| {tree} | {KIND_LABEL[kind]} | {sum(d.values())} | {esc(parts)} |")
        md.append("")
        md.append(f"Real failures: {len(failures)}")
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        with open(args.markdown, "a", encoding="utf-8") as fh:
            fh.write("\n".join(md) + "\n")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("study")
    s.add_argument("--tree", required=True)
    s.add_argument("--label", required=True)
    s.add_argument("--bin", required=True)
    s.add_argument("--work", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--tree-json")
    s.add_argument("--kinds", default="disable,convert")
    s.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    s.add_argument("--timeout", type=int, default=120)
    s.add_argument("--limit", type=int, default=0)
    s.add_argument("--keep", action="store_true", help="keep mutant files in --work")
    t = sub.add_parser("table")
    t.add_argument("results", nargs="+")
    t.add_argument("--markdown")
    t.add_argument("--strict", action="store_true",
                   help="a MISSED mutant (evidence found, not reported) is a failure too")
    li = sub.add_parser("list")
    li.add_argument("--tree", required=True)
    li.add_argument("--label")
    li.add_argument("--kinds", default="disable,convert")
    co = sub.add_parser("coverage")
    co.add_argument("--tree", required=True)
    args = ap.parse_args()
    return {"study": cmd_study, "table": cmd_table, "list": cmd_list,
            "coverage": cmd_coverage}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
