"""The layout's promises, read from the source with ``ast`` (nothing of the project is imported):

- no import circle: no module of ``dataset_builder/`` or ``trainer/`` takes part in an import
  cycle, counting imports deferred into functions too (a deferred import hides a circle from the
  interpreter, not from a reader); imports under ``if TYPE_CHECKING:`` never run and do not count;
- the trainer uses dataset_builder's public API only: the modules in ``PUBLIC`` and, from them,
  only the names each lists in ``__all__`` (or, without ``__all__``, names without a leading
  underscore);
- names that do not collide (the rule is in :func:`collisions`).
- the trainer's parts: training and evaluation know nothing of each other nor of the command
  line, and the modules they share know none of them.

Each rule is also run on a small tree written here with one violation of each kind, so a rule that
stopped finding anything would fail too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dataset_builder", "trainer")
PUBLIC = ("dataset_builder", "dataset_builder.api", "dataset_builder.errors", "dataset_builder.testing")


class Tree:
    """The modules of the project's packages under ``root``, by dotted name (a package by its
    ``__init__``), parsed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: dict[str, Path] = {}
        for package in PACKAGES:
            for path in sorted((root / package).rglob("*.py")):
                parts = list(path.relative_to(root).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                self.paths[".".join(parts)] = path
        self.asts = {name: ast.parse(p.read_text(encoding="utf-8"), str(p)) for name, p in self.paths.items()}

    def is_package(self, module: str) -> bool:
        return self.paths[module].name == "__init__.py"

    def imports(self, module: str) -> Iterator[tuple[str, str | None, int]]:
        """``(module imported, name taken from it or None, line)`` for every import of ``module``;
        ``from X import Y`` where ``X.Y`` is itself a module counts as an import of ``X.Y``."""
        for node in import_nodes(self.asts[module]):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, None, node.lineno
                continue
            source = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 packages
                package = module.split(".") if self.is_package(module) else module.split(".")[:-1]
                base = package[: len(package) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            for alias in node.names:
                if f"{source}.{alias.name}" in self.paths:
                    yield f"{source}.{alias.name}", None, node.lineno
                else:
                    yield source, alias.name, node.lineno

    def project_module(self, name: str) -> str | None:
        """The project module an import statement loads (``a.b.c`` of ``import a.b.c``)."""
        while name and name not in self.paths:
            name = name.rpartition(".")[0]
        return name or None

    def graph(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for module in self.paths:
            targets = {self.project_module(name) for name, _, _ in self.imports(module)}
            out[module] = {t for t in targets if t is not None and t != module}
        return out


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at module level or inside a function or class."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                assert isinstance(child, ast.If)
                stack.append(ast.Module(body=child.orelse, type_ignores=[]))  # the else branch runs
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            stack.append(child)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def exported(tree: Tree, module: str) -> set[str] | None:
    """A module's ``__all__``, read from its source; None when it has none."""
    for node in tree.asts[module].body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            assert node.value is not None
            return set(ast.literal_eval(node.value))
    return None


def api_violations(tree: Tree) -> list[str]:
    """Each import of the trainer that reaches past dataset_builder's public API."""
    wrong: list[str] = []
    for module in (m for m in tree.paths if m == "trainer" or m.startswith("trainer.")):
        for name, taken, line in tree.imports(module):
            if name != "dataset_builder" and not name.startswith("dataset_builder."):
                continue
            where = f"{tree.paths[module].relative_to(tree.root)}:{line}"
            if name not in PUBLIC:
                wrong.append(f"{where}: imports {name}")
                continue
            allowed = exported(tree, name)
            if taken is not None and (taken.startswith("_") if allowed is None else taken not in allowed):
                wrong.append(f"{where}: takes {taken} from {name}, which does not export it")
    return sorted(set(wrong))


def script_folders(root: Path) -> list[str]:
    """Top-level folders of the repository holding Python files that are not the project's
    packages: scripts and tests run from the repository."""
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in PACKAGES and any(p.glob("*.py"))
    )


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") else word


# A folder's base classes, its entry point and its command line: the folder says whose they are.
SHARED_ROLES = {"base", "main", "commands", "__main__"}
# The steps of a build that know nothing of what runs them, and those that run, keep and move it.
EARLY_STEPS = ("recipe", "sources", "stages", "translation", "similarity", "chat")
LATE_STEPS = ("executors", "publishing", "registry", "hub", "cli")
# Modules of stages/ every stage may use: the stage contract and the batch's columns of turns.
STAGE_SHARED = ("base", "turn_columns")


def collisions(tree: Tree) -> list[str]:
    """Where two names collide:

    1. a package folder and a module of the same name anywhere in the same top-level package
       (``translate/`` beside ``stages/translate.py``: ``...translate`` reads as either);
    2. a module named after its own package or an enclosing one (``registry/registry.py``): the
       folder already says it;
    3. a module or package named after a script folder of the repository (``benchmarks/``,
       ``tests/``): its name, or the first word of it, is the folder's name or its singular
       (``trainer/benchmark_report.py`` beside ``benchmarks/``);
    4. one module name in two folders of the same top-level package (``similarity/engine.py`` and
       ``translation/engine.py``), apart from the names of roles every folder may have
       (``SHARED_ROLES``).
    """
    folders = script_folders(tree.root)
    wrong = []
    for package in PACKAGES:
        names = [m for m in tree.paths if m == package or m.startswith(package + ".")]
        subpackages = {m.rpartition(".")[2]: m for m in names if tree.is_package(m) and m != package}
        for module in names:
            *parents, base = module.split(".")
            if tree.is_package(module) or base == "__main__":
                continue
            if base in subpackages and base not in parents:
                wrong.append(f"{module} and the package {subpackages[base]}")
            if base in parents:
                wrong.append(f"{module} is named after its own package")
        by_name: dict[str, list[str]] = {}
        for module in names:
            base = module.rpartition(".")[2]
            if not tree.is_package(module) and base not in SHARED_ROLES:
                by_name.setdefault(base, []).append(module)
        wrong += [" and ".join(sorted(same)) + " share a name" for same in by_name.values() if len(same) > 1]
        for module in names:
            base = module.rpartition(".")[2]
            words = {base, base.split("_")[0]}
            for folder in folders:
                if words & {folder, _singular(folder)}:
                    wrong.append(f"{module} is named after the repository's {folder}/ folder")
    return sorted(set(wrong))


# ---- the project ------------------------------------------------------------------------------

PROJECT = Tree(ROOT)


def test_no_import_cycle() -> None:
    found = cycles(PROJECT.graph())
    assert not found, "import circles (modules importing each other): " + "; ".join(
        " <-> ".join(c) for c in found
    )


def test_trainer_uses_the_public_api_only() -> None:
    wrong = api_violations(PROJECT)
    assert not wrong, "the trainer reaches past dataset_builder's public API:\n" + "\n".join(wrong)


def test_public_api_exports_what_it_defines() -> None:
    """Every name a public module lists in ``__all__`` is defined or imported there."""
    for module in PUBLIC:
        body = PROJECT.asts[module].body
        defined = {
            n.name for n in body if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        }
        for node in body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined |= {t.id for t in targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.Import | ast.ImportFrom):
                defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        names = exported(PROJECT, module) or set()
        assert names <= defined, f"{module}.__all__ names what it does not define: {names - defined}"


def part_violations(tree: Tree) -> list[str]:
    """Training and evaluation know nothing of each other nor of the command line; the modules
    they share (``trainer/*.py``) know none of the three (``__main__`` starts the command line)."""
    parts = ("trainer.training", "trainer.evaluation", "trainer.cli")
    wrong = []
    for module, targets in tree.graph().items():
        if not module.startswith("trainer."):
            continue
        own = next((p for p in parts if module == p or module.startswith(p + ".")), None)
        for target in targets:
            other = next((p for p in parts if target == p or target.startswith(p + ".")), None)
            if other is not None and other != own and own != "trainer.cli" and module != "trainer.__main__":
                wrong.append(f"{module} imports {target}")
    return sorted(wrong)


def test_training_and_evaluation_are_independent() -> None:
    wrong = part_violations(PROJECT)
    assert not wrong, "a part of the trainer reaches into another:\n" + "\n".join(wrong)


def test_no_colliding_names() -> None:
    assert {"benchmarks", "tests"} <= set(script_folders(ROOT))  # the third rule has folders to guard
    wrong = collisions(PROJECT)
    assert not wrong, "names that collide:\n" + "\n".join(wrong)


def step_violations(tree: Tree) -> list[str]:
    """An early step of a build (recipe, sources, stages and their engines) importing a later one
    (an executor, publishing, the registry, the Hub, the CLI), or a stage importing another stage
    (``stages/__init__.py`` finds stages by name; it is not a stage)."""

    def step(module: str) -> str | None:
        """The folder of ``dataset_builder`` a module is in (None for the shared modules)."""
        parts = module.split(".")
        if parts[0] != "dataset_builder" or len(parts) < 2:
            return None
        return parts[1] if len(parts) > 2 or tree.is_package(module) else None

    wrong = []
    for module, targets in tree.graph().items():
        own = step(module)
        for target in sorted(targets):
            other = step(target)
            if own in EARLY_STEPS and other in LATE_STEPS:
                wrong.append(f"{module} imports {target}, a later step")
            parts, theirs = module.split("."), target.split(".")
            if (
                parts[:2] == theirs[:2] == ["dataset_builder", "stages"]
                and len(parts) == 3
                and len(theirs) == 3
                and parts[2] not in STAGE_SHARED
                and theirs[2] not in STAGE_SHARED
            ):
                wrong.append(f"{module} imports {target}, another stage")
    return sorted(wrong)


def test_early_steps_know_nothing_of_later_ones() -> None:
    wrong = step_violations(PROJECT)
    assert not wrong, "a step reaches into a later one:\n" + "\n".join(wrong)


# ---- the rules on a tree with one violation of each kind -------------------------------------

PLANTED = {
    "benchmarks/run.py": "",
    "tests/test_x.py": "",
    "dataset_builder/__init__.py": "def load():\n    from dataset_builder.api import load_version\n",
    "dataset_builder/api.py": "from dataset_builder.chat.templates import ChatFormat\n"
    "__all__ = ['ChatFormat', 'load_version']\ndef load_version(): ...\ndef _private(): ...\n",
    "dataset_builder/errors.py": "class UserError(Exception): ...\n",
    "dataset_builder/testing.py": "",
    "dataset_builder/chat/__init__.py": "",
    "dataset_builder/chat/templates.py": "class ChatFormat: ...\n",
    "dataset_builder/translate/__init__.py": "",
    "dataset_builder/stages/__init__.py": "",
    "dataset_builder/stages/translate.py": "",
    "dataset_builder/stages/base.py": "",
    "dataset_builder/stages/dedup.py": "from dataset_builder.stages.base import Stage\n",
    "dataset_builder/stages/decon.py": "from dataset_builder.stages.base import Stage\n"
    "from dataset_builder.stages.dedup import row_text\n",
    "dataset_builder/similarity/__init__.py": "",
    "dataset_builder/similarity/engine.py": "def f():\n    from dataset_builder.registry import registry\n",
    "dataset_builder/translate/engine.py": "",
    "dataset_builder/executors/__init__.py": "",
    "dataset_builder/executors/base.py": "from dataset_builder.stages import base\n",
    "dataset_builder/registry/__init__.py": "",
    "dataset_builder/registry/registry.py": "",
    "trainer/__init__.py": "",
    "trainer/benchmark.py": "from trainer import benchmark_report\n",
    "trainer/benchmark_report.py": "def write():\n    from trainer.benchmark import x\n",
    "trainer/training/__init__.py": "",
    "trainer/training/qlora.py": "from trainer.evaluation import perplexity\n",
    "trainer/evaluation/__init__.py": "",
    "trainer/evaluation/perplexity.py": "def f():\n    from trainer.cli import options\n",
    "trainer/cli/options.py": "",
    "trainer/cli/__init__.py": "",
    "trainer/cli/main.py": "import trainer.training.qlora\nimport trainer.evaluation.perplexity\n",
    "trainer/outdir.py": "from trainer.training import qlora\n",
    "trainer/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from trainer.uses import y\n"
    "else:\n    import json\n",
    "trainer/uses.py": "import trainer.typed\n"
    "from dataset_builder import load\nfrom dataset_builder.api import ChatFormat, _private\n"
    "from dataset_builder.errors import UserError, _hidden\n"
    "def f():\n    from dataset_builder.chat.templates import ChatFormat\n"
    "    from dataset_builder.api import load_version\n    from . import typed\n",
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    root = tmp_path_factory.mktemp("planted")
    for name, text in PLANTED.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return Tree(root)


def test_a_circle_closed_inside_a_function_is_found(planted: Tree) -> None:
    # trainer.typed -> trainer.uses only under TYPE_CHECKING: no circle with trainer.uses.
    assert cycles(planted.graph()) == [["trainer.benchmark", "trainer.benchmark_report"]]
    assert planted.graph()["trainer.uses"] == {
        "dataset_builder", "dataset_builder.api", "dataset_builder.errors", "dataset_builder.chat.templates",
        "trainer.typed",
    }  # fmt: skip
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}) == [["a", "b", "c"]]


def test_internals_and_unexported_names_are_found(planted: Tree) -> None:
    assert api_violations(planted) == [
        "trainer/uses.py:3: takes _private from dataset_builder.api, which does not export it",
        "trainer/uses.py:4: takes _hidden from dataset_builder.errors, which does not export it",
        "trainer/uses.py:6: imports dataset_builder.chat.templates",
    ]


def test_each_kind_of_collision_is_found(planted: Tree) -> None:
    assert collisions(planted) == [
        "dataset_builder.registry.registry is named after its own package",
        "dataset_builder.similarity.engine and dataset_builder.translate.engine share a name",
        "dataset_builder.stages.translate and the package dataset_builder.translate",
        "trainer.benchmark is named after the repository's benchmarks/ folder",
        "trainer.benchmark_report is named after the repository's benchmarks/ folder",
    ]


def test_a_part_reaching_into_another_is_found(planted: Tree) -> None:
    assert part_violations(planted) == [
        "trainer.evaluation.perplexity imports trainer.cli.options",
        "trainer.outdir imports trainer.training.qlora",
        "trainer.training.qlora imports trainer.evaluation.perplexity",
    ]


def test_a_step_reaching_into_a_later_one_is_found(planted: Tree) -> None:
    assert step_violations(planted) == [
        "dataset_builder.similarity.engine imports dataset_builder.registry.registry, a later step",
        "dataset_builder.stages.decon imports dataset_builder.stages.dedup, another stage",
    ]
