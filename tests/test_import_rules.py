"""Which code may import which, read from the source with `ast` (nothing is imported).

Inside the app, imports point one way: web → features (accounts, audit) → the queue (jobs)
→ mail → models and db → settings. What sits lower is built on by what sits higher and
knows nothing of it: the queue reaches the audit trail only through the recorder its
caller hands in (`jobs.admin.ActionRecorder`). Beside the app, the dev stack
(`backend/devstack`, left out of the image) is imported by no app module; the bench and
the scripts take what they share with the tests from there, never from `tests`.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.devstack import REPO_ROOT

BACKEND = REPO_ROOT / "backend"

# Lowest first. A package may import its own layer's and lower ones, never a higher one.
LAYERS: list[set[str]] = [
    {"settings"},
    {"db", "models"},
    {"mail"},
    {"jobs"},
    {"accounts", "audit"},
    {"web"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    yield from imports_of(path.read_text(), package)


def imports_of(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in `source`, at any depth (lazy ones too); for
    `from a import b`, both `a` and `a.b` (b may be a module). Relative imports are
    resolved from `package`, the one the module is in."""
    parts = package.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (REPO_ROOT / folder).rglob("*.py"))


def package_files(package: str) -> list[Path]:
    """backend/<package>.py, or every module of backend/<package>/."""
    module = BACKEND / f"{package}.py"
    return [module] if module.exists() else python_files(f"backend/{package}")


def importers(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    """`path:line imports module` for each import of a module in (or under) `forbidden`."""
    found = []
    for path in files:
        for line, module in imported_modules(path):
            if any(module == name or module.startswith(f"{name}.") for name in forbidden):
                where = path.relative_to(REPO_ROOT)
                found.append(f"{where}:{line} imports {module}")
    return sorted(set(found))


def test_the_queue_imports_no_feature_and_no_web() -> None:
    forbidden = ("backend.audit", "backend.accounts", "backend.web")
    assert importers(python_files("backend/jobs"), forbidden) == []


@pytest.mark.parametrize("layer", range(len(LAYERS)), ids=lambda i: "+".join(sorted(LAYERS[i])))
def test_each_layer_imports_only_its_own_and_lower_ones(layer: int) -> None:
    higher = tuple(f"backend.{package}" for upper in LAYERS[layer + 1 :] for package in upper)
    files = [path for package in LAYERS[layer] for path in package_files(package)]
    assert files, f"no module for layer {LAYERS[layer]}"
    assert importers(files, higher) == []


def test_no_app_module_imports_the_dev_stack() -> None:
    app_files = [path for path in python_files("backend") if "devstack" not in path.parts]
    assert importers(app_files, ("backend.devstack",)) == []


def test_the_bench_and_the_scripts_import_nothing_from_the_tests() -> None:
    files = python_files("bench", "scripts")
    assert files
    assert importers(files, ("tests",)) == []


def test_the_rules_see_imports_of_every_form() -> None:
    """The checks above find nothing; this one shows that they would."""
    source = (
        "import backend.audit.service\n"
        "from backend.accounts import resend\n"
        "from ..web import ops\n"
        "from . import outbox\n"
        "def later():\n"
        "    from backend.devstack import postgres\n"
    )
    found = {module for _, module in imports_of(source, "backend.jobs")}
    assert {
        "backend.audit.service",
        "backend.accounts.resend",
        "backend.web.ops",
        "backend.jobs.outbox",
        "backend.devstack.postgres",
    } <= found
