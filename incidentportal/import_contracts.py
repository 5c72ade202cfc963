"""A custom import-linter contract (see [tool.importlinter] in pyproject.toml): no module imports an underscore
(private) name that another app defines. An app is a Django app package (`incidents.alerting`, `oncall.paging`,
...): the longest listed package that contains the module. Inside one app, modules share their helpers freely."""

from __future__ import annotations

import ast
from pathlib import Path

from importlinter import Contract, ContractCheck, fields, output


def _app_of(module: str, apps: list[str]) -> str | None:
    for app in apps:
        if module == app or module.startswith(app + "."):
            return app
    return None


def _absolute(importer: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def private_name_imports(module: str, apps: list[str]) -> list[str]:
    """`importer:line imports name from other.module` for every cross-app import of an underscore name."""
    # Found by path, never imported: a package's __init__ may need Django's app registry.
    base = Path.cwd().joinpath(*module.split("."))
    is_package = (base / "__init__.py").is_file()
    path = base / "__init__.py" if is_package else base.with_suffix(".py")
    if not path.is_file():
        return []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own_app = _app_of(module, apps)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        target = _absolute(module, node, is_package)
        for alias in node.names:
            name = alias.name
            if not name.startswith("_") or name.startswith("__"):
                continue
            # `from package import _module` names a module of that package; either way it belongs to its app.
            target_app = _app_of(f"{target}.{name}", apps) or _app_of(target, apps)
            if target_app is not None and target_app != own_app:
                found.append(f"{module}:{node.lineno} imports {name} from {target}")
    return found


class PrivateNamesContract(Contract):
    """Modules do not import another app's underscore names: what an app offers others is its public functions
    (services, selectors, lifecycle events)."""

    type_name = "private_names"

    apps = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        apps = sorted(self.apps, key=len, reverse=True)  # type: ignore[arg-type]
        violations: list[str] = []
        for module in sorted(graph.modules):
            if _app_of(module, apps) is not None and ".migrations." not in module:
                violations += private_name_imports(module, apps)
        return ContractCheck(kept=not violations, warnings=None, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for violation in check.metadata["violations"]:
            output.print_error(violation, bold=False)
            output.new_line()
