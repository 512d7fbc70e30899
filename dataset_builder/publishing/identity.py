"""What a version is, before it is built: the recipe as the user declared it, the input files it
reads and the translation model a translate stage would load.

A published version is immutable, so a build of a version that is already published either makes
no change (everything it declares matches the manifest: the build is a no-op and no stage runs) or
is refused before any stage runs, naming what differs and how to publish it as a new version. What
the toolkit derives (its own version, the libraries, generated pages) is not part of a version's
identity. The content hash is still compared after a build that ran: a build this module cannot
call identical (a Hub source, a model it cannot name) is judged by its rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dataset_builder.errors import PublishError, UserError
from dataset_builder.recipe.schema import Recipe

SET_VERSION = "--set-version"


@dataclass
class Comparison:
    """How a recipe about to be built compares with the manifest published under its version."""

    differences: list[str] = field(default_factory=list)
    # Parts this module could not compare (a Hub source's data, a model it cannot name): the build
    # runs and its content hash decides.
    unknown: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences and not self.unknown


def compare(recipe: Recipe, manifest: dict[str, Any]) -> Comparison:
    """Compare ``recipe`` (already carrying the version it would publish) with a published manifest."""
    out = Comparison()
    _compare_recipe(recipe.resolved(), manifest.get("recipe"), out)
    _compare_inputs(recipe, manifest.get("inputs"), out)
    _compare_models(recipe, manifest.get("stages"), out)
    return out


def refuse_or_skip(recipe: Recipe, registry: Any, version: str | None = None) -> bool:
    """True when ``version`` is published with everything ``recipe`` declares (nothing to build);
    False when it is not published, or when only the finished build can tell (its content hash
    decides). Raises :class:`PublishError` in one line when it is published from something else."""
    name = recipe.dataset.name
    version = version or recipe.dataset.version
    if not registry.exists(name, version):
        return False
    published = registry.get(f"{name}@{version}")
    found = compare(recipe, published.manifest)
    if found.differences:
        shown = "; ".join(found.differences[:3])
        more = f" (and {len(found.differences) - 3} more)" if len(found.differences) > 3 else ""
        raise PublishError(
            f"{name}@{version} is already published in {registry.root} and this build differs from it "
            f"in its {shown}{more}; "
            f"versions are immutable: build it as a new version with "
            f"`{SET_VERSION} {next_version(registry, name, recipe.dataset.version)}`"
        )
    return found.identical


def next_version(registry: Any, name: str, version: str) -> str:
    """The first version after ``version`` (its last number plus one) that is not published yet."""
    import re

    match = re.fullmatch(r"(.*?)(\d+)([^\d]*)", version.split("+", 1)[0])
    if not match:
        return f"{version}.1" if not registry.exists(name, f"{version}.1") else "NEW_VERSION"
    head, number, tail = match.groups()
    for step in range(1, 1000):
        candidate = f"{head}{int(number) + step}{tail}"
        if not registry.exists(name, candidate):
            return candidate
    return "NEW_VERSION"


def _compare_recipe(now: dict[str, Any], then: Any, out: Comparison) -> None:
    if not isinstance(then, dict):
        out.unknown.append("recipe")
        return
    for key in _changed_keys(now, then, ""):
        if key.endswith(" (new setting)"):
            # A setting the toolkit added (filled with its default) or dropped since: the rows tell.
            out.unknown.append(f"recipe {key}")
        else:
            out.differences.append(f"recipe key {key}")


def _changed_keys(now: Any, then: Any, prefix: str) -> list[str]:
    if isinstance(now, dict) and isinstance(then, dict):
        keys = []
        for key in now:
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in then:
                keys.append(f"{path} (new setting)")
            else:
                keys += _changed_keys(now[key], then[key], path)
        # A setting the toolkit no longer has: like a new one, only the rows can tell.
        keys += [
            f"{prefix}.{key} (new setting)" if prefix else f"{key} (new setting)"
            for key in then
            if key not in now
        ]
        return keys
    if isinstance(now, list) and isinstance(then, list) and len(now) == len(then):
        return [
            k
            for i, (a, b) in enumerate(zip(now, then, strict=True))
            for k in _changed_keys(a, b, f"{prefix}[{i}]")
        ]
    return [] if now == then else [prefix or "<root>"]


def _compare_inputs(recipe: Recipe, then: Any, out: Comparison) -> None:
    from dataset_builder.hashing import file_sha256
    from dataset_builder.sources import display_names
    from dataset_builder.sources.readers import expand_paths

    if not isinstance(then, list):
        out.unknown.append("inputs")
        return
    published = {
        (e.get("source"), e.get("path")): e.get("sha256") for e in then if isinstance(e, dict) and "path" in e
    }
    base = recipe.base_dir()
    seen = set()
    for source in recipe.sources:
        if source.type != "local":
            out.unknown.append(f"hub source {source.name!r}")  # its rows are known only once read
            continue
        try:
            paths = expand_paths(source.paths, base)
        except UserError:
            out.unknown.append(f"source {source.name!r}")  # the build reports it in its own words
            continue
        for path, shown in display_names(paths, base).items():
            key = (source.name, shown)
            seen.add(key)
            if key not in published:
                out.differences.append(f"input file set (source {source.name!r} now reads {shown})")
            elif published[key] != (sha := file_sha256(path)):
                out.differences.append(f"input {shown} (sha256 {published[key][:12]} then, {sha[:12]} now)")
    for source, shown in sorted(set(published) - seen, key=str):
        out.differences.append(f"input file set (source {source!r} read {shown} then)")


def _compare_models(recipe: Recipe, stages: Any, out: Comparison) -> None:
    """Each translate stage's model: the package it would load now against the one the manifest
    names (or the note that translation was skipped)."""
    from dataset_builder.executors.base import stage_names

    counters = {s.get("stage"): s.get("counters") or {} for s in stages or [] if isinstance(s, dict)}
    for entry, name in zip(recipe.stages, stage_names(recipe), strict=True):
        if entry.type == "mt_quality":
            out.unknown.append(f"stage {name} (its back-translation model)")  # the rows tell
            continue
        if entry.type != "translate":
            continue
        if name not in counters:
            out.unknown.append(f"stage {name}")
            continue
        then = counters[name]
        for key, now in _models_now(entry.config).items():
            if now is None:
                out.unknown.append(f"{name} model")  # an engine this module cannot name
                continue
            was = then.get(key)
            if was is None and "skipped" in then:
                was = "none"
            if was is None:
                out.unknown.append(f"{name} model")
                continue
            if _model_id(was) != _model_id(now):
                out.differences.append(
                    f"translation model ({name}: {_model_label(was)} then, {_model_label(now)} now)"
                )


def _models_now(cfg: Any) -> dict[str, Any]:
    """``{counter key: package description, "none" (translation would be skipped), or None
    (unknown)}`` for the languages a translate stage loads a package for."""
    from dataset_builder.translation import packages

    if getattr(cfg, "engine", None) not in (None, "argos"):
        return {"package": None}
    others = [
        lang
        for lang, how in cfg.other_languages.items()
        if how == "translate" and lang not in ("*", cfg.from_lang, cfg.to_lang)
    ]
    found: dict[str, Any] = {}
    for lang in [cfg.from_lang, *others]:
        key = "package" if lang == cfg.from_lang else f"package:{lang}"
        version = cfg.package_version if lang == cfg.from_lang else None
        try:
            found[key] = packages.find(lang, cfg.to_lang, version, cfg.packages_dir).describe()
        except packages.PackageError:
            if cfg.if_missing != "skip":
                return {key: None}  # the build fails at the stage, saying so
            return {"package": "none"}  # one missing package skips the whole stage
    return found


def _model_id(model: Any) -> str:
    return model.get("sha256", "") if isinstance(model, dict) else str(model)


def _model_label(model: Any) -> str:
    if isinstance(model, dict):
        return f"{model.get('code')} {model.get('version')} sha256 {str(model.get('sha256'))[:12]}"
    return "none installed" if model == "none" else str(model)


def set_version(recipe: Recipe, version: str) -> Recipe:
    """``recipe`` publishing ``version`` instead of its ``dataset.version`` (``build --set-version``)."""
    from dataset_builder.registry.names import check_version

    check_version(version, SET_VERSION)
    return recipe.model_copy(update={"dataset": recipe.dataset.model_copy(update={"version": version})})
