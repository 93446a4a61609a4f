// km001.cocci -- a deliberately naive Coccinelle approximation of kmapcheck's
// KM001 rule, used as the comparison point in tests/bench/kernel.sh and
// scripts/compare-cocci.
//
// Pattern: a kmap_local_{page,folio,pfn}() mapping is created, and on SOME
// control-flow path (rule is "exists") a user access that may fault follows
// before any pagefault_disable() or kunmap_local().
//
// What it does NOT do (on purpose, so the comparison stays honest):
//   * no "evidence" check (inatomic variant, spinlock/RCU/preempt held,
//     mmap_lock taken, -ENOENT/-EAGAIN retry fallback): every such site is
//     reported, so it is expected to over-report compared with KM001;
//   * the kunmap_local() guard is not tied to the same mapping, and
//     pagefault_disable() anywhere on the path suppresses the match (no
//     depth tracking, no pagefault_enable() handling);
//   * kmap_atomic() regions are not modelled (they are simply not anchors).
//
// The mapping functions are spelled out as a disjunction rather than an
// "identifier km = {...}" metavariable: Coccinelle can then derive the tokens a
// file must contain and skips parsing files without any kmap_local_* call
// (which cannot match anyway). With the metavariable form every .c file of the
// tree is parsed, roughly 10x slower for identical results.
//
// Output: one line per site, "FILE:LINE:COLUMN:CALLEE", printed by the
// python script rule (spatch prints nothing else with --very-quiet).
//
// Usage:
//   spatch --sp-file tests/bench/km001.cocci --dir <tree> -j 2 --very-quiet

@initialize:python@
@@
import sys

@r exists@
identifier ua = {
  copy_from_user, copy_to_user, __copy_from_user, __copy_to_user,
  __copy_from_user_inatomic, __copy_to_user_inatomic,
  __copy_from_user_inatomic_nocache, __copy_from_user_nocache,
  get_user, put_user, __get_user, __put_user,
  strncpy_from_user, strnlen_user, clear_user, __clear_user,
  copy_struct_from_user,
  copy_page_from_iter, copy_page_to_iter,
  copy_page_from_iter_atomic, copy_folio_from_iter_atomic,
  copy_folio_from_iter, copy_folio_to_iter,
  copy_from_iter, copy_to_iter, _copy_from_iter, _copy_to_iter,
  copy_from_iter_full, copy_from_iter_nocache, copy_from_iter_full_nocache,
  copy_from_iter_flushcache, copy_mc_to_iter};
position p;
@@

\(kmap_local_page\|kmap_local_folio\|kmap_local_pfn\)(...)
... when != pagefault_disable()
    when != kunmap_local(...)
ua@p(...)

@script:python depends on r@
p << r.p;
ua << r.ua;
@@
print("%s:%s:%s:%s" % (p[0].file, p[0].line, p[0].column, ua))
sys.stdout.flush()  # one write per line: the -j 2 workers share stdout
