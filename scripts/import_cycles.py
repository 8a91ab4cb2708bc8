#!/usr/bin/env python3
"""Import cycles between the crate's source files: prints each strongly connected set of
files in the graph of `use crate::` / `use super::` / `use self::` paths and exits 1 if
there is one. A module's imports of its own ancestors are left out; a parent's
`pub use child::X` counts as an edge parent -> child. Test modules (`#[cfg(test)] mod
tests { ... }` at the end of a file) are left out. Run from the repository root:

    python3 scripts/import_cycles.py

Only `use` lines are followed: calls written as full paths are not imports.
"""

import os
import re
import sys

ROOT = "src"


def module_files():
    """Module path ('' for the crate root, 'store::redis' ...) -> source text."""
    modules = {}
    for directory, _, names in os.walk(ROOT):
        for name in names:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(directory, name)
            module = path[len(ROOT) + 1:-3].replace("/", "::")
            module = module.removesuffix("::mod")
            if module == "lib":
                module = ""
            with open(path) as file:
                text = file.read()
            modules[module] = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", text, flags=re.S)
    return modules


def expand(path):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    match = re.match(r"^(.*?)::\{(.*)\}$", path)
    if not match:
        return [path]
    prefix, inner = match.groups()
    items, depth, current = [], 0, ""
    for char in inner:
        depth += (char == "{") - (char == "}")
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    if current:
        items.append(current)
    return [full for item in items for full in expand(f"{prefix}::{item}")]


def imports(module, text, modules):
    """The modules `module` imports from (its ancestors and itself left out)."""
    is_dir_module = module == "" or os.path.exists(
        os.path.join(ROOT, *module.split("::"), "mod.rs"))
    found = set()
    for used in re.findall(r"\buse\s+((?:crate|super|self)[^;]*);", text, flags=re.S):
        for path in expand(re.sub(r"\s+", "", used)):
            parts = path.split("::")
            if parts[0] == "crate":
                parts = parts[1:]
            else:
                # `self`/`super` count from the module's directory.
                base = module.split("::") if module else []
                if not is_dir_module:
                    base = base[:-1]
                while parts and parts[0] in ("self", "super"):
                    if parts[0] == "super":
                        base = base[:-1]
                    parts = parts[1:]
                parts = base + parts
            target = next((candidate for candidate in
                           ("::".join(parts[:i]) for i in range(len(parts), 0, -1))
                           if candidate in modules), "")
            if target and target != module and not module.startswith(target + "::"):
                found.add(target)
    return found


def strongly_connected(graph):
    """Tarjan's algorithm: the components of more than one module."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for next_node in graph[node]:
            if next_node not in index:
                visit(next_node)
                low[node] = min(low[node], low[next_node])
            elif next_node in on_stack:
                low[node] = min(low[node], index[next_node])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return components


def main():
    modules = module_files()
    graph = {module: imports(module, text, modules) for module, text in modules.items()}
    cycles = strongly_connected(graph)
    for component in cycles:
        print("import cycle:", " ".join(component))
        for module in component:
            print(f"  {module} -> {', '.join(sorted(graph[module] & set(component)))}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
