"""The house's import rules, read from the source (module-level and function-level imports alike):

- a module of the services package imports only the modules listed before it in ``LAYERS``, and
  a module of the execution package only those before it in ``EXECUTION_LAYERS``, and one of the
  supervision package only those before it in ``SUPERVISION_LAYERS``;
- nothing below the supervision package (services, execution) reaches it;
- execution sits above the services: it calls them, and nothing the services import (directly or
  further down) imports execution;
- only the queue hand-off imports django_q;
- of the live package, the services import only the outbox, and reach nothing of its web side;
- no two modules of tasks_app import each other, directly or around a circle.
"""
from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

APP = ROOT / "tasks_app"
#: The services package, bottom first (tasks_app/services/__init__.py says what each holds).
LAYERS = ["lookups", "transitions", "progress", "triggering", "outcomes", "ticks", "recovery", "stopping", "leases", "instances",
          "tasks", "imports", "keys", "heartbeats"]
#: The execution package, bottom first (tasks_app/execution/__init__.py says what each holds).
EXECUTION_LAYERS = ["outcome", "flusher", "output", "command_line", "context", "running", "watchdog", "python", "process", "entry"]
#: The supervision package, bottom first (tasks_app/supervision/__init__.py says what each holds).
SUPERVISION_LAYERS = ["restarts", "health", "owned", "order", "records", "supervisor"]
#: The modules allowed to import django_q.
QUEUE_HOMES = {"tasks_app.queue.handoff", "tasks_app.queue.brokers", "tasks_app.queue.cluster", "tasks_app.queue.hooks"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every dotted name ``path`` imports, ``from a import b`` counted as ``a`` and ``a.b``."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def app_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(APP.rglob("*.py")) if "migrations" not in path.parts}


def internal_imports() -> dict[str, set[str]]:
    """Each tasks_app module and the tasks_app modules it imports (a name resolves to the longest
    module it starts with; a package's __init__ is not counted as importing its own modules)."""
    modules = app_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not imported.startswith(name + "."):
                targets.add(imported)
        graph[name] = targets
    return graph


def upward_imports(package: str, layers: list[str]) -> list[str]:
    """Each import, by a module of ``package``, of the package itself or of a module listed after
    it in ``layers`` (which must name every module of the package)."""
    assert sorted(layers) == sorted(path.stem for path in (APP / package).glob("*.py") if path.stem != "__init__")
    graph = internal_imports()
    upward = []
    for position, layer in enumerate(layers):
        for target in graph[f"tasks_app.{package}.{layer}"]:
            if target == f"tasks_app.{package}":
                upward.append(f"{layer} imports the package itself (import the module it needs)")
            elif target.startswith(f"tasks_app.{package}.") and layers.index(target.rpartition(".")[2]) > position:
                upward.append(f"{layer} imports {target.rpartition('.')[2]}, a layer above it")
    return upward


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph.get(current, ()))
    return seen


def test_each_services_module_imports_only_the_layers_below_it():
    upward = upward_imports("services", LAYERS)
    assert not upward, upward


def test_each_execution_module_imports_only_the_layers_below_it():
    upward = upward_imports("execution", EXECUTION_LAYERS)
    assert not upward, upward


def test_each_supervision_module_imports_only_the_layers_below_it():
    upward = upward_imports("supervision", SUPERVISION_LAYERS)
    assert not upward, upward


def test_nothing_the_supervisor_calls_reaches_back_up_to_it():
    graph = internal_imports()
    below = [name for name in graph if name.startswith(("tasks_app.services", "tasks_app.execution"))]
    assert not {name: [target for target in reachable(graph, name) if target.startswith("tasks_app.supervision")]
                for name in below if any(target.startswith("tasks_app.supervision") for target in reachable(graph, name))}


def test_execution_sits_above_the_services_which_never_reach_it():
    graph = internal_imports()
    services = [name for name in graph if name == "tasks_app.services" or name.startswith("tasks_app.services.")]
    reaching = {name: sorted(target for target in reachable(graph, name) if target.startswith("tasks_app.execution"))
                for name in services}
    assert not {name: targets for name, targets in reaching.items() if targets}
    assert "tasks_app.services" in graph["tasks_app.execution.entry"]  # it does call them


def test_only_the_queue_hand_off_imports_django_q():
    importers = {name for name, path in app_modules().items()
                 if any(imported.split(".")[0] == "django_q" for imported in imported_names(path))}
    assert importers == QUEUE_HOMES


def test_no_import_circles_in_tasks_app():
    graph = internal_imports()
    circles = []

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            current = todo.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                todo.extend(graph.get(current, ()))
        return False

    for module, targets in graph.items():
        circles.extend(f"{module} -> {target} -> ... -> {module}" for target in targets if reaches(target, module))
    assert not circles, circles


#: The live modules the services may import: they write events (the outbox), and never serve them.
LIVE_FOR_SERVICES = {"tasks_app.live", "tasks_app.live.outbox"}
#: The web process's side of live events, which no service reaches, even through another module.
LIVE_SERVING = {"tasks_app.live.relay", "tasks_app.live.streams", "tasks_app.live.consumers", "tasks_app.live.routing",
                "tasks_app.live.logs"}


def test_services_import_only_the_outbox_of_the_live_package():
    graph = internal_imports()
    services = [name for name in graph if name == "tasks_app.services" or name.startswith("tasks_app.services.")]
    direct = [f"{name} imports {target}" for name in services for target in graph[name]
              if target.startswith("tasks_app.live") and target not in LIVE_FOR_SERVICES]
    assert not direct, direct
    reached = [f"{name} reaches {target}" for name in services
               for target in sorted(reachable(graph, name) & LIVE_SERVING)]
    assert not reached, reached
    assert "tasks_app.live.outbox" in set().union(*(graph[name] for name in services))  # the rule is not vacuous
