"""Which processes' code reads each setting, found by reading the code, so the `read_by` that
Settings declares (and docs/configuration.md shows) can be checked against it.

Each process starts from its own modules and follows what their definitions name: imported
functions and classes, and the definitions those name in turn, across gateway/, workers/, cli/,
devstack/, shared/ and model/. Following names rather than whole modules matters: the CLI imports
the store, which imports JobMessage from shared.messaging, and that is no reason to say the CLI
reads the queue's name. A read is `<something>settings.<field>`, `s.<field>` or
`Settings.from_env().<field>`. Not seen: reads through getattr (Settings.to_env hands every setting
to the processes the stack starts) and Flower, which reads its own variables.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable, Iterator

from shared.settings import CLI, GATEWAY, PROJECT_ROOT, STACK, WORKERS, Settings

PACKAGES = ("gateway", "workers", "cli", "devstack", "shared", "model")
# Where each process's own code starts; the CLI's stack commands are `recog up`, the stack.
PROCESS_CODE = {
    GATEWAY: ["gateway"],
    WORKERS: ["workers"],
    CLI: ["cli/main.py", "cli/client.py", "cli/folder.py"],
    STACK: ["cli/stack_commands.py", "devstack"],
}
FIELDS = {f.name for f in dataclasses.fields(Settings)}
BODY = "<module>"  # a module's own statements, outside its definitions

Ref = tuple[str, str]  # (module, top-level name or BODY)


def _module_name(path) -> str:
    rel = path.relative_to(PROJECT_ROOT).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


MODULES = {_module_name(p): p for pkg in PACKAGES for p in (PROJECT_ROOT / pkg).rglob("*.py")}


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """ast.walk, less what sits under `if TYPE_CHECKING:` (never imported at run time)."""
    todo = [node]
    while todo:
        current = todo.pop()
        yield current
        for child in ast.iter_child_nodes(current):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                todo.extend(child.orelse)
            else:
                todo.append(child)


def _imports(nodes: Iterable[ast.AST]) -> dict[str, Ref]:
    """Local name -> what it stands for, for imports of the project's own code."""
    table: dict[str, Ref] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    table[alias.asname or alias.name.split(".")[0]] = (alias.name, BODY)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in MODULES:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                ref = (sub, BODY) if sub in MODULES else (node.module, alias.name)
                table[alias.asname or alias.name] = ref
    return table


def _owner(expr: ast.AST) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    if isinstance(expr, ast.Call):
        return _owner(expr.func)
    return ""


def _reads(nodes: list[ast.AST]) -> set[str]:
    return {
        n.attr
        for n in nodes
        if isinstance(n, ast.Attribute)
        and n.attr in FIELDS
        and ("settings" in _owner(n.value) or _owner(n.value) in ("s", "from_env"))
    }


def _definitions(module: str) -> dict[Ref, tuple[set[str], set[Ref]]]:
    """Each top-level definition of a module: the settings it reads and what it names."""
    tree = ast.parse(MODULES[module].read_text())
    imported = _imports(_walk(tree))
    named: dict[str, ast.AST] = {}
    body = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            named[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
            named[stmt.targets[0].id] = stmt
        else:
            body.append(stmt)
    out = {}
    for name, node in [*named.items(), (BODY, ast.Module(body=body, type_ignores=[]))]:
        nodes = list(_walk(node))
        refs = {(module, BODY)}
        for n in nodes:
            if isinstance(n, (ast.Import, ast.ImportFrom)):  # importing runs the module's body
                refs.update((m, BODY) for m, _ in _imports([n]).values())
            elif isinstance(n, ast.Name) and n.id in imported:
                refs.add(imported[n.id])
            elif isinstance(n, ast.Name) and n.id in named:
                refs.add((module, n.id))
            elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
                target = imported.get(n.value.id)
                if target and target[1] == BODY:  # module.attribute
                    sub = f"{target[0]}.{n.attr}"
                    refs.add((sub, BODY) if sub in MODULES else (target[0], n.attr))
        out[(module, name)] = (_reads(nodes), refs)
    return out


def _own_modules(process: str) -> set[str]:
    paths = []
    for start in PROCESS_CODE[process]:
        path = PROJECT_ROOT / start
        paths.extend(path.rglob("*.py") if path.is_dir() else [path])
    return {_module_name(p) for p in paths}


def readers() -> dict[str, set[str]]:
    """Setting name -> the processes whose code reads it."""
    graph: dict[Ref, tuple[set[str], set[Ref]]] = {}
    for module in MODULES:
        graph.update(_definitions(module))
    found: dict[str, set[str]] = {}
    for process in PROCESS_CODE:
        others = set().union(*(_own_modules(p) for p in PROCESS_CODE if p != process))
        todo = [ref for ref in graph if ref[0] in _own_modules(process)]
        seen: set[Ref] = set()
        while todo:
            ref = todo.pop()
            # Another process's code is not run by this one; Settings' own getattr loops are not reads.
            if ref in seen or ref not in graph or ref[0] in others or ref[0] == "shared.settings":
                continue
            seen.add(ref)
            reads, refs = graph[ref]
            for name in reads:
                found.setdefault(name, set()).add(process)
            todo.extend(refs)
    return found
