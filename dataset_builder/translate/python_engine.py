"""A translator of the user's own, named in a recipe as ``engine = "python:MODULE:FUNCTION"``.

``FUNCTION(texts: list[str], from_lang: str, to_lang: str) -> list[str]`` returns one translation
per input. It gets exactly what the Argos engine gets (prose sentences with inline code behind
placeholders, never a code block) and its answers go through the same restore, verification and
checks, so a translator of any quality cannot publish changed code.

``MODULE`` is a ``.py`` file in the recipe's folder (``translator.py`` or ``translator``) or an
importable module. A recipe is input from outside, and importing a module runs it: a module from
the recipe's folder is loaded only when the user allowed it (``build --trust-code``); an installed
module is code the user already chose to install. A file in the recipe's folder wins over an
installed module of the same name (it is the recipe's code, so it needs the user's permission).

Translations are cached under a namespace made of the module file's sha256, the function's name,
the version string the module may declare (``TRANSLATOR_VERSION``, else ``__version__``: what its
file's bytes cannot tell, such as the weights or libraries it loads) and the language pair.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import re
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
    from_recipe: bool

    @property
    def label(self) -> str:
        """How manifests and cards name the module: never a path of this machine."""
        return self.path.name if self.from_recipe and self.path else self.module


def locate(engine: str, base_dir: Path) -> ModuleRef:
    """Find the module of ``python:MODULE:FUNCTION`` without running anything."""
    match = SPEC_PATTERN.fullmatch(engine)
    if match is None:
        raise TranslatorError(f"engine {engine!r} is not {SPEC_HELP}")
    module, function = match["module"], match["function"]
    name = module[:-3] if module.endswith(".py") else module
    top = name.split(".")[0]
    local = base_dir / f"{top}.py"
    if module.endswith(".py") or local.exists() or local.is_symlink() or (base_dir / top).is_dir():
        if "." in name or not (local.exists() or local.is_symlink()):
            raise TranslatorError(
                f"engine {engine!r}: no file {top}.py in the recipe's folder {base_dir} (a module of the "
                "recipe is one .py file beside it; a package must be installed)"
            )
        if local.is_symlink() or not local.is_file():
            raise TranslatorError(
                f"engine {engine!r}: {local.name} in the recipe's folder is not a plain file "
                "(a symbolic link or something else); copy the module itself there"
            )
        return ModuleRef(engine, name, function, local, True)
    try:
        # An installed module is code the user chose to install: finding a submodule may import
        # its parent packages, which is theirs to run.
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise TranslatorError(
            f"engine {engine!r}: no {top}.py in the recipe's folder {base_dir} and no installed module "
            f"{name!r}; put the module beside the recipe or install it"
        )
    origin = Path(found.origin) if found.origin and found.has_location else None
    return ModuleRef(engine, name, function, origin, False)


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
        if self.ref.from_recipe and not trust_code:
            raise CodeNotTrusted(
                f"engine {engine!r} runs Python code from the recipe's folder ({self.ref.label}); "
                "read it, then build with --trust-code to allow it (or install the module as a package)"
            )
        source = self.ref.path.read_bytes() if self.ref.path else b""
        self.sha256 = hashlib.sha256(source).hexdigest() if self.ref.path else "no file"
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
        return {
            "type": "python",
            "module": self.ref.label,
            "function": self.ref.function,
            "from_recipe": self.ref.from_recipe,
            "sha256": self.sha256,
            "version": self.version,
        }

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
