"""A translator of the user's own, named in a recipe as ``engine = "python:MODULE:FUNCTION"``.

``FUNCTION(texts: list[str], from_lang: str, to_lang: str) -> list[str]`` returns one translation
per input. It gets exactly what the Argos engine gets (prose sentences with inline code behind
placeholders, never a code block) and its answers go through the same restore, verification and
checks, so a translator of any quality cannot publish changed code.

``MODULE`` is a ``.py`` file in the recipe's folder (``translator.py`` or ``translator``) or an
importable module. A recipe is input from outside, and importing a module runs it, so a module's
name never grants permission: without ``build --trust-code`` the only translators that run are
those an installed distribution registers in its metadata (entry point group
``dataset_builder.translators``, value ``MODULE:FUNCTION``), read without importing anything.
Everything else (a file of the recipe's folder, compiled or not, a module found there or in the
working directory through ``sys.path``, the standard library, any other installed module) runs only
with ``--trust-code``. Finding a module never imports it, nor its parent packages: ``check`` relies
on that.

Translations are cached under a namespace made of the sha256 of the module's code (every source or
compiled file of a package's folder), the function's name, the version string the module may
declare (``TRANSLATOR_VERSION``, else ``__version__``: what its files cannot tell, such as the
weights or libraries it loads) and the language pair.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import re
import site
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from dataset_builder.errors import UserError

PREFIX = "python:"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
SPEC_PATTERN = re.compile(
    rf"^python:(?P<module>{_IDENT}(?:\.{_IDENT})*|{_IDENT}\.py):(?P<function>{_IDENT})$"
)
SPEC_HELP = (
    "'argos' or 'python:MODULE:FUNCTION' (MODULE: a .py file in the recipe's folder or an importable "
    "module; FUNCTION: a name in it)"
)
VERSION_NAMES = ("TRANSLATOR_VERSION", "__version__")
ENTRY_POINT_GROUP = "dataset_builder.translators"


class TranslatorError(UserError):
    """A Python translator that cannot be loaded, is not allowed to run, or answered wrongly."""


class CodeNotTrusted(TranslatorError):
    """The recipe names Python code of its own and the user did not allow it to run."""


def is_python_engine(engine: str) -> bool:
    return engine.startswith(PREFIX)


def check_spec(engine: str) -> str:
    """``engine`` if it is a valid engine name, else ValueError (for the recipe's validator)."""
    if engine != "argos" and not SPEC_PATTERN.fullmatch(engine):
        raise ValueError(f"engine {engine!r} is not {SPEC_HELP}")
    return engine


@dataclass(frozen=True)
class ModuleRef:
    """Where a Python engine's module is, found without importing (running) it."""

    spec: str
    module: str
    function: str
    # The file imported first: the module itself, or a package's __init__.py.
    path: Path | None
    # A .py file of the recipe's folder, loaded from the bytes that were hashed.
    from_recipe: bool
    # The files whose bytes key the cache: the module's file, or a package's code files.
    files: tuple[Path, ...] = ()
    # The installed distribution whose entry point registers exactly MODULE:FUNCTION; None: the
    # module runs only with --trust-code.
    registered_by: str | None = None
    # Why the module needs --trust-code, for the one-line refusal.
    unregistered_because: str = ""

    @property
    def label(self) -> str:
        """How manifests and cards name the module: never a path of this machine."""
        return self.path.name if self.from_recipe and self.path else self.module


def locate(engine: str, base_dir: Path) -> ModuleRef:
    """Find the module of ``python:MODULE:FUNCTION`` without running anything: no import, not even
    of a parent package."""
    match = SPEC_PATTERN.fullmatch(engine)
    if match is None:
        raise TranslatorError(f"engine {engine!r} is not {SPEC_HELP}")
    module, function = match["module"], match["function"]
    name = module[:-3] if module.endswith(".py") else module
    top = name.split(".")[0]
    local = base_dir / f"{top}.py"
    in_recipe = _recipe_entries(base_dir, top)
    if module.endswith(".py") or in_recipe:
        if "." in name or not (local.exists() or local.is_symlink()):
            found = in_recipe[0].name if in_recipe else f"no file {top}.py"
            raise TranslatorError(
                f"engine {engine!r}: {found} in the recipe's folder {base_dir} is not a module of the recipe "
                f"(one plain .py file beside it, loaded only with build --trust-code); a package or a "
                "compiled module must be installed, registered as a translator and kept out of the "
                "recipe's folder"
            )
        if local.is_symlink() or not local.is_file():
            raise TranslatorError(
                f"engine {engine!r}: {local.name} in the recipe's folder is not a plain file "
                "(a symbolic link or something else); copy the module itself there"
            )
        return ModuleRef(
            engine,
            name,
            function,
            local,
            True,
            (local,),
            None,
            f"it is code from the recipe's folder ({local.name})",
        )
    found, entry = _find_top_level(top)
    if found is None:
        raise TranslatorError(
            f"engine {engine!r}: no {top}.py in the recipe's folder {base_dir} and no installed module "
            f"{top!r}; put the module beside the recipe or install it"
        )
    origin = Path(found.origin) if found.origin and found.has_location else None
    files = _code_files(found, origin)
    places = _recipe_places(base_dir)
    locations = [Path(p) for p in found.submodule_search_locations or []]
    if (
        (entry is not None and _in_places(_resolve(entry), places))
        or (origin is not None and _in_places(origin.resolve(), places))
        or any(_in_places(p.resolve(), places, containing=True) for p in locations)
    ):
        return ModuleRef(
            engine, name, function, origin, False, files, None,
            f"module {top!r} is found in the recipe's folder or the working directory ({entry or '.'} on "
            "sys.path), not installed",
        )  # fmt: skip
    distribution = _registered_by(name, function, places)
    because = (
        ""
        if distribution
        else f"module {name!r} is not a translator an installed package registers (entry point group "
        f"{ENTRY_POINT_GROUP!r} with the value '{name}:{function}')"
    )
    return ModuleRef(engine, name, function, origin, False, files, distribution, because)


def _recipe_entries(base_dir: Path, top: str) -> list[Path]:
    """What in the recipe's folder an import of ``top`` could load: a package folder, a source,
    bytecode or extension module of any suffix the interpreter accepts."""
    candidates = [base_dir / top] + [
        base_dir / f"{top}{suffix}" for suffix in importlib.machinery.all_suffixes()
    ]
    return [p for p in candidates if p.exists() or p.is_symlink()]


def _find_top_level(top: str) -> tuple[importlib.machinery.ModuleSpec | None, str | None]:
    """The spec an import of ``top`` would find on sys.path, and the sys.path entry it is found on.

    PathFinder looks at files only; importlib.util.find_spec would import parents of a dotted name."""
    for entry in list(sys.path):
        if not isinstance(entry, str):
            continue
        found = importlib.machinery.PathFinder.find_spec(top, [entry])
        if found is not None:
            return found, entry
    try:
        # Built-in modules and installed finders (an editable install's): a top-level name has no
        # parent to import, so this runs no module either.
        return importlib.util.find_spec(top), None
    except (ImportError, ValueError):
        return None, None


def _recipe_places(base_dir: Path) -> set[Path]:
    """Folders whose modules are the recipe's: its own folder and the working directory (``''`` on
    sys.path, or ``python -m`` run from there)."""
    return {_resolve(str(base_dir)), _resolve(os.getcwd())}


def _resolve(entry: str) -> Path:
    return Path(entry or os.getcwd()).resolve()


def _installed_roots() -> list[Path]:
    """Where the running interpreter installs packages: a virtual environment inside the project's
    folder is the interpreter the user runs, not the recipe's code."""
    roots = {sys.prefix, sys.base_prefix, site.getusersitepackages()}
    return [Path(root).resolve() for root in roots if root]


def _in_places(path: Path, places: set[Path], *, containing: bool = False) -> bool:
    """Whether ``path`` is in (or, for a package folder with ``containing``, holds) one of the
    recipe's places, unless the interpreter's own installation holds it and not the place."""
    for place in places:
        inside = path.is_relative_to(place) or (containing and place.is_relative_to(path))
        if not inside:
            continue
        if any(path.is_relative_to(root) and not place.is_relative_to(root) for root in _installed_roots()):
            continue
        return True
    return False


def _registered_by(name: str, function: str, places: set[Path]) -> str | None:
    """The installed distribution whose metadata registers ``name:function`` as a translator.

    Entry points are read from metadata only. A distribution found in the recipe's places is the
    recipe's own and registers nothing."""
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if point.module != name or point.attr != function or point.extras:
            continue
        dist = point.dist
        if dist is None:
            continue
        try:
            home = Path(str(dist.locate_file(""))).resolve()
        except (OSError, NotImplementedError):
            continue
        if _in_places(home, places):
            continue
        return str(dist.metadata["Name"] or name)
    return None


def _code_files(found: importlib.machinery.ModuleSpec, origin: Path | None) -> tuple[Path, ...]:
    """A module's file, or every code file of a package's folders (sorted): editing any of them
    changes the cache key."""
    folders = list(found.submodule_search_locations or [])
    if not folders:
        return (origin,) if origin else ()
    suffixes = tuple(importlib.machinery.all_suffixes())
    files: list[Path] = []
    for folder in folders:
        for root, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            files += [Path(root) / n for n in sorted(names) if n.endswith(suffixes)]
    return tuple(files)


def _sha256(files: tuple[Path, ...], base: Path | None) -> str:
    if len(files) == 1:
        return hashlib.sha256(files[0].read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for file in files:
        relative = str(file.relative_to(base)) if base and file.is_relative_to(base) else file.name
        digest.update(f"{relative}\0{file.stat().st_size}\0".encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _import(ref: ModuleRef, source: bytes, sha256: str) -> ModuleType:
    if not ref.from_recipe:
        return importlib.import_module(ref.module)
    assert ref.path is not None
    # A name of its own, so that the recipe's module shadows nothing (a file called json.py stays
    # out of ``import json``) and two recipes' modules of one name never share an entry.
    unique = f"_dataset_builder_recipe_{ref.module.replace('.', '_')}_{sha256[:16]}"
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, ref.path)
    if spec is None:
        raise TranslatorError(f"engine {ref.spec!r}: {ref.path.name} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        # The bytes that were hashed are the bytes that run, whatever happens to the file meanwhile.
        exec(compile(source, str(ref.path), "exec"), module.__dict__)
    except BaseException:
        del sys.modules[unique]
        raise
    return module


class PythonEngine:
    """The user's function behind the interface the stage's translator uses: a list of texts in,
    one translation each out, a cache namespace and a description for the manifest."""

    def __init__(self, engine: str, from_lang: str, to_lang: str, base_dir: Path, trust_code: bool) -> None:
        self.ref = locate(engine, base_dir)
        self.from_lang = from_lang
        self.to_lang = to_lang
        if self.ref.registered_by is None and not trust_code:
            raise CodeNotTrusted(
                f"engine {engine!r} runs Python code the recipe names: {self.ref.unregistered_because}; "
                "read it, then build with --trust-code to allow it (or install it as a package that "
                f"registers it under the entry point group {ENTRY_POINT_GROUP!r})"
            )
        source = self.ref.path.read_bytes() if self.ref.from_recipe and self.ref.path else b""
        if self.ref.from_recipe:
            self.sha256 = hashlib.sha256(source).hexdigest()
        elif self.ref.files:
            package = self.ref.path.parent if self.ref.path and len(self.ref.files) > 1 else None
            self.sha256 = _sha256(self.ref.files, package)
        else:
            self.sha256 = "no file"
        try:
            module = _import(self.ref, source, self.sha256)
        except TranslatorError:
            raise
        except Exception as exc:
            raise TranslatorError(
                f"engine {engine!r}: importing {self.ref.label} failed: {_first_line(exc)}"
            ) from exc
        function = getattr(module, self.ref.function, None)
        if not callable(function):
            raise TranslatorError(
                f"engine {engine!r}: {self.ref.label} has no function {self.ref.function!r}"
            )
        self.function: Callable[[list[str], str, str], Any] = function
        self.version = _declared_version(module, engine)

    def describe(self) -> dict[str, Any]:
        described = {
            "type": "python",
            "module": self.ref.label,
            "function": self.ref.function,
            "from_recipe": self.ref.from_recipe,
            "sha256": self.sha256,
            "version": self.version,
        }
        if self.ref.registered_by:
            described["registered_by"] = self.ref.registered_by
        return described

    def cache_namespace(self) -> str:
        key = {**self.describe(), "from": self.from_lang, "to": self.to_lang}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()

    def translate(self, texts: list[str]) -> list[str]:
        """One translation per text, checked: the function's answer is input from outside too."""
        if not texts:
            return []
        try:
            out = self.function(list(texts), self.from_lang, self.to_lang)
        except Exception as exc:
            raise TranslatorError(
                f"engine {self.ref.spec!r} raised {type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        if not isinstance(out, list | tuple):
            raise TranslatorError(
                f"engine {self.ref.spec!r} returned {type(out).__name__}, not a list of str (one per input)"
            )
        if len(out) != len(texts):
            raise TranslatorError(
                f"engine {self.ref.spec!r} returned {len(out)} translations for {len(texts)} texts; "
                "it must return exactly one per input, in order"
            )
        for i, item in enumerate(out):
            if not isinstance(item, str):
                raise TranslatorError(
                    f"engine {self.ref.spec!r} returned {type(item).__name__} at position {i}, not str"
                )
        return list(out)


def _declared_version(module: ModuleType, engine: str) -> str | None:
    for name in VERSION_NAMES:
        if hasattr(module, name):
            value = getattr(module, name)
            if not isinstance(value, str):
                raise TranslatorError(f"engine {engine!r}: {name} must be a str, not {type(value).__name__}")
            return value
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
