#!/usr/bin/env python3
"""Checks that the core crate's modules import each other without a circle.

Each file under src/ is a node, named by its module path (src/a/b.rs and
src/a/b/mod.rs are `a::b`). An edge A -> B is any path in A's code (a `use`
or a path in an expression) that names an item of B: `crate::b::...`,
`super::...`, `self::...` or a bare child name from a `use` tree. `mod`
declarations are not edges: a parent that declares a child does not depend
on it, and the crate root only declares and re-exports: a path through
one of its re-exports counts as a path to the module that defines the
item. Test modules (`#[cfg(test)] mod tests { ... }` at the end of a file)
are left out: they may reach anywhere.

Prints every strongly connected component with more than one module and
exits 1 if there is one; prints the layering (each module with the modules
it imports) with --verbose.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel == ["lib"]:
        return ()
    return tuple(rel)


def strip(src):
    """Drops comments, string and char literals, and `#[cfg(test)]` modules
    written inline (they may reach anywhere), in one left-to-right pass."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif re.match(r'b?r#*"', src[i:i + 40]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'b?r(#*)"', src[i:])
            end = src.find('"' + m.group(1), i + m.end())
            i = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""')
        elif c == '"' or (c == "b" and src.startswith('b"', i) and (i == 0 or not src[i - 1].isalnum())):
            i += 1 if c == '"' else 2
            while i < n and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}', b'x'), not a lifetime.
            m = re.match(r"'(\\.[^']*|[^\\'])'", src[i:])
            if m:
                i += m.end()
                out.append("' '")
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    src = "".join(out)
    # Inline test modules, with their balanced braces.
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", src)
        if not m:
            return src
        depth, j = 1, m.end()
        while j < len(src) and depth:
            depth += {"{": 1, "}": -1}.get(src[j], 0)
            j += 1
        src = src[: m.start()] + src[j:]


def expand_use(tree):
    """Expands a use tree `a::{b, c::{d}}` into paths."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def go(prefix, t):
        depth, start, parts = 0, 0, []
        # split top-level commas
        for i, ch in enumerate(t):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(t[start:i])
                start = i + 1
        parts.append(t[start:])
        for p in parts:
            if not p:
                continue
            i = p.find("{")
            if i >= 0:
                go(prefix + p[:i], p[i + 1 : p.rfind("}")])
            else:
                out.append(prefix + p)

    go("", tree)
    return out


def main():
    files = {}
    for d, _, fs in os.walk(ROOT):
        for f in fs:
            if f.endswith(".rs"):
                p = os.path.join(d, f)
                files[module_of(p)] = p
    mods = set(files)

    reexports = {}

    def resolve(cur, path):
        segs = [s for s in path.split("::") if s]
        segs = [s.split(" as ")[0] for s in segs]
        if not segs:
            return None
        if segs[0] == "crate":
            if len(segs) > 1 and segs[1] in reexports and (segs[1],) not in mods:
                return reexports[segs[1]]
            base, rest = (), segs[1:]
        elif segs[0] in ("super", "self"):
            base = cur
            rest = segs
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    base = base[:-1]
                rest = rest[1:]
        elif cur + (segs[0],) in mods:
            base, rest = cur, segs
        else:
            return None
        best = None
        for i in range(len(rest) + 1):
            cand = base + tuple(rest[:i])
            if cand in mods:
                best = cand
        return best

    # Names the crate root re-exports (`pub use crate::a::b::X;`): a path
    # through the root (`crate::X`) depends on the module that defines X.
    reexports = {}
    lib = strip(open(files[()], encoding="utf-8").read())
    for u in re.finditer(r"\bpub\s+use\s+([^;]+);", lib):
        for path in expand_use(u.group(1)):
            segs = [x for x in path.split("::") if x]
            if segs and segs[0] == "crate":
                reexports[segs[-1]] = resolve((), path)

    # Files of `#[cfg(test)] mod tests;` are tests: they may reach anywhere.
    mods = {m for m in mods if not (m and m[-1] == "tests")}
    files = {m: p for m, p in files.items() if m in mods}

    edges = {m: set() for m in mods}
    for m, p in files.items():
        src = strip(open(p, encoding="utf-8").read())
        paths, bindings = [], {}
        for u in re.finditer(r"\buse\s+([^;]+);", src):
            for path in expand_use(u.group(1)):
                paths.append(path)
                # `use crate::a::b;` binds `b`: a later `b::x` is a path
                # into that module.
                last = path.split("::")[-1].split(" as ")[-1].strip()
                target = resolve(m, path.split(" as ")[0])
                if target is not None and target[-1:] == (path.split(" as ")[0].split("::")[-1],):
                    bindings[last] = target
        for q in re.finditer(r"\b(?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+", src):
            paths.append(q.group(0))
        # Bare paths: a child module (`read::FetchedBatch` in its parent) or
        # a module bound by a `use` (`format::batch::X` after `use crate::format`).
        for q in re.finditer(r"(?<![:\w])([a-z_][a-z0-9_]*)((?:::[A-Za-z_][A-Za-z0-9_]*)+)", src):
            head, rest = q.group(1), q.group(2)
            if head in ("crate", "super", "self", "std", "core", "alloc"):
                continue
            if m + (head,) in mods:
                paths.append("self::" + head + rest)
            elif head in bindings:
                base = bindings[head]
                segs = [x for x in rest.split("::") if x]
                best = base
                for k in range(1, len(segs) + 1):
                    if base + tuple(segs[:k]) in mods:
                        best = base + tuple(segs[:k])
                paths.append("crate::" + "::".join(best) if best else "crate")
        for path in paths:
            t = resolve(m, path)
            if t is not None and t != m and t != ():
                edges[m].add(t)

    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(mods):
        if v not in index:
            visit(v)

    name = lambda m: "::".join(m) or "lib"
    if "--verbose" in sys.argv:
        for m in sorted(mods):
            print(f"{name(m)} -> {', '.join(sorted(name(t) for t in edges[m])) or '-'}")
    # The layering, lowest rooms first (ARCHITECTURE.md): a room never
    # imports from the rooms above it. Settings types are the exception:
    # `topic::config` and `topic::name` are plain data any room may use.
    everything = ["io", "format", "storage", "topic", "group", "maintain", "log", "consumer", "producer", "reader"]
    above = {
        "error": everything + ["record", "clock", "signal", "partitioner"],
        "record": everything,
        "clock": everything,
        "signal": everything,
        "partitioner": everything,
        "io": ["storage", "format", "topic", "log", "consumer", "producer", "group", "maintain", "reader"],
        "format": ["io", "storage", "topic", "group", "log", "consumer", "producer", "maintain", "reader"],
        "storage": ["log", "consumer", "producer", "group", "maintain", "topic", "reader"],
        "group": ["log", "consumer", "producer", "maintain", "storage::partition", "reader"],
        "maintain": ["log", "consumer", "producer", "group", "reader"],
        "topic": ["log", "consumer", "producer", "group", "maintain", "reader"],
        # Room 6, read-only: it reads files by positioned reads, so it never
        # names what maps, writes or recovers them, nor the handles that do.
        "reader": ["storage::mapped", "storage::partition", "storage::recovery", "storage::shared",
                   "maintain", "producer", "transaction", "consumer::state", "consumer::group",
                   "consumer::records", "consumer::isolation", "log::admin", "log::maintenance",
                   "log::transactions", "inspect", "internals", "testing"],
    }
    data = {("topic", "config"), ("topic", "name"), ("group", "offsets")}
    breaches = []
    for m in sorted(mods):
        if not m or m[-1] == "tests" or m[0] not in above:
            continue
        for t in sorted(edges[m]):
            if t in data:
                continue
            if any(name(t) == a or name(t).startswith(a + "::") for a in above[m[0]]):
                breaches.append(f"{name(m)} imports {name(t)}, a room above it")
    for b in breaches:
        print("layering:", b)

    circles = [c for c in sccs if len(c) > 1]
    for c in circles:
        print("import circle:", " <-> ".join(sorted(name(m) for m in c)))
        for m in sorted(c):
            print(f"  {name(m)} -> {', '.join(sorted(name(t) for t in edges[m] if t in c))}")
    if circles or breaches:
        sys.exit(1)
    print(f"no import circle among {len(mods)} modules")


if __name__ == "__main__":
    main()
