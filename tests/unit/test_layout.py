"""The package layout holds: each program's package imports only the shared core (and the few
exceptions named below, with their reason), the core imports no program, and no two modules
import each other, directly or round a longer cycle."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "appliance"
# Packages that hold one program each (and its operator commands).
PROGRAMS = {"ingest", "neelix", "forwarding", "web", "monitor", "ops"}
# What runs the real thing for tests and benchmarks; it may import anything.
HARNESS = "harness"
ALLOWED = {
    # The web shows neelix's alerts and heartbeats: history.py is the read-only view that
    # neelix's package provides beside state.py, which owns that format.
    ("web", "appliance.neelix.history"),
    # /health and /metrics are served by the web and `appliance status` prints the same
    # snapshot: the monitor computes it, they show it.
    ("web", "appliance.monitor.health"),
    ("web", "appliance.monitor.metrics"),
    ("ops", "appliance.monitor.health"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every appliance module `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("appliance")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("appliance"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(
                    ".py").exists() or (PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                          else node.module)
    return found


MODULES = {module_name(path): imports(path) for path in PACKAGE.rglob("*.py")}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in PROGRAMS) else ""


def test_every_subpackage_is_a_program_the_core_or_the_harness():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert folders - {"__pycache__"} == PROGRAMS | {"spine", "store", HARNESS}


def test_no_program_imports_another_programs_package_but_the_named_exceptions():
    wrong = []
    for module, imported in MODULES.items():
        own = package_of(module)
        if own not in PROGRAMS:
            continue
        for target in imported:
            other = package_of(target)
            if other in PROGRAMS and other != own and (own, target) not in ALLOWED:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_core_imports_no_program():
    wrong = [f"{module} imports {target}" for module, imported in MODULES.items()
             if package_of(module) not in PROGRAMS | {HARNESS} and module != "appliance.cli"
             for target in imported if package_of(target) in PROGRAMS]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = {module: {t for t in imported if t in MODULES and t != module}
             for module, imported in MODULES.items()}
    # A package imports its own __init__ implicitly; only module-to-module edges count.
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" → ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_client_library_stays_one_standard_library_file():
    assert not MODULES["appliance.client"]
