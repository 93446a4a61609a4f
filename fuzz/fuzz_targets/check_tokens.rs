//! Target 2, structure-aware: each input byte picks a C token, so the fuzzer
//! splices statements, braces, labels, directives and the catalogue's calls
//! instead of spending its time on bytes the lexer rejects. Output goes
//! through the same pipeline and invariants as target 1.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod shared;

/// Kernel-C tokens weighted toward what the analysis models: maps and
/// unmaps, user accesses, fault and lock context, control flow, and the
/// lexical traps (comments, literals, directives, line splices).
const TOKENS: &[&str] = &[
    "int f(void)\n{\n",
    "}\n",
    "{",
    "}",
    "(",
    ")",
    ";\n",
    ",",
    "=",
    "!",
    "&",
    "*",
    "->",
    "[",
    "]",
    "p",
    "q",
    "u",
    "ret",
    "0",
    "1",
    "-ENOENT",
    "-EFAULT",
    "-EAGAIN",
    "if (",
    "else ",
    "while (",
    "for (;;) ",
    "do ",
    "} while (0);\n",
    "switch (x) {",
    "case 1:",
    "default:",
    "break;",
    "continue;",
    "return ",
    "goto out;",
    "out:",
    "again:",
    "goto again;",
    "kmap_local_page(pg)",
    "kmap_local_folio(folio, 0)",
    "kmap_atomic(pg)",
    "kmap(pg)",
    "kunmap_local(p)",
    "kunmap_atomic(p)",
    "kunmap(pg)",
    "copy_from_user(p, u, n)",
    "copy_to_user(u, p, n)",
    "__copy_from_user_inatomic(p, u, n)",
    "get_user(x, u)",
    "copy_from_iter(p, n, i)",
    "pagefault_disable();",
    "pagefault_enable();",
    "preempt_disable();",
    "preempt_enable();",
    "spin_lock(&l);",
    "spin_unlock(&l);",
    "spin_lock_irqsave(&l, fl);",
    "rcu_read_lock();",
    "mmap_read_lock(mm);",
    "mmap_read_unlock(mm);",
    "local_bh_disable();",
    "list_for_each_entry(e, &h, node) ",
    "unlikely(",
    "likely(",
    "sizeof(struct page)",
    "min_t(unsigned int, a, b)",
    "container_of(p, struct page, lru)",
    "__user ",
    "__acquires(l) ",
    "/*",
    "*/",
    "//",
    "\"",
    "'",
    "\\\n",
    "\n",
    "\r\n",
    " ",
    "\t",
    "#if 0\n",
    "#ifdef X\n",
    "#else\n",
    "#endif\n",
    "#define M(x) {\n",
    "SYSCALL_DEFINE2(name, int, a, int, b)\n{\n",
    "static void *g(struct page *pg)\n{\n",
];

fuzz_target!(|data: &[u8]| {
    let text: String = data
        .iter()
        .map(|&b| TOKENS[usize::from(b) % TOKENS.len()])
        .collect();
    shared::check(text.as_bytes());
});
