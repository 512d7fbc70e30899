"""The recipe: a TOML file that declares a dataset version, its sources, stages and publishing.

The schema is a set of pydantic models with ``extra="forbid"``, so an unknown key or a wrong type
is an error naming the file and the key. Each stage's settings are validated by the config model
the stage itself declares (see :mod:`dataset_builder.stages`), so adding a stage never touches
this module.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dataset_builder.errors import RecipeError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$"
# The two patterns in words, for messages.
NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 96 characters"
VERSION_RULE = (
    "letters, digits, '.', '+', '_' and '-', starting with a letter or digit, at most 64 characters, "
    "e.g. 0.1.0"
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSection(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(pattern=VERSION_PATTERN)
    description: str = ""
    license: str = "other"
    language: list[str] = Field(default_factory=lambda: ["ru"])
    # The version this one was built after; recorded in the manifest so versions form a chain.
    previous_version: str | None = Field(default=None, pattern=VERSION_PATTERN)


SourceFormat = Literal["auto", "jsonl", "json", "parquet", "csv"]
AdapterName = Literal["alpaca", "chat_rounds", "qa", "prompt_completion", "messages", "humaneval"]


class SourceConfig(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    type: Literal["local", "hub"] = "local"
    adapter: AdapterName
    # local
    paths: list[str] = Field(default_factory=list)
    format: SourceFormat = "auto"
    # hub
    hub_id: str | None = None
    revision: str | None = None
    split: str = "train"
    data_files: list[str] | None = None
    # adapter column mapping: logical name -> column in this source
    columns: dict[str, str] = Field(default_factory=dict)
    key_column: str | None = None
    language: str = "en"
    translate: bool | None = None
    license: str | None = None
    url: str | None = None
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check_location(self) -> SourceConfig:
        if self.type == "local" and not self.paths:
            raise ValueError("a local source needs 'paths'")
        if self.type == "hub" and not self.hub_id:
            raise ValueError("a hub source needs 'hub_id'")
        return self

    @property
    def needs_translation(self) -> bool:
        return self.translate if self.translate is not None else self.language != "ru"


class PublishSection(Strict):
    # A build whose rejected rows exceed either limit fails instead of publishing.
    max_rejected_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    max_rejected_rows: int | None = Field(default=None, ge=0)
    max_row_bytes: int = Field(default=1_000_000, ge=1)
    hub_repo: str | None = None
    private: bool = False


class RunSection(Strict):
    """How the stages run; never what they produce (the same recipe gives the same content hash
    under every executor)."""

    # "local": every stage in this process. "ray": row-wise stages spread over Ray workers.
    executor: Literal["local", "ray"] = "local"
    # Ray cluster to join ("auto", "ray://HOST:10001", "HOST:6379"); unset: $RAY_ADDRESS, else a
    # Ray started on this machine for the build and stopped after it.
    address: str | None = None
    # Ray workers (actors) per row-wise stage, and what each one reserves; translation actors also
    # take num_gpus (each loads one CTranslate2 translator).
    concurrency: int = Field(default=1, ge=1)
    num_cpus: float = Field(default=1.0, gt=0)
    num_gpus: float = Field(default=0.0, ge=0)
    # Rows per task: a row-wise stage's input batches are cut to this size so that they spread
    # over the workers (a source yields batches of 2,048 rows). At most two tasks per worker are
    # in flight per stage, which bounds what the driver holds.
    batch_rows: int = Field(default=256, ge=1)

    @model_validator(mode="after")
    def _address_needs_ray(self) -> RunSection:
        if self.address is not None and self.executor != "ray":
            raise ValueError("an address is only used with executor = 'ray'")
        return self


class StageEntry(BaseModel):
    """One ``[[stages]]`` table: ``type`` plus the settings that stage's own config model accepts."""

    model_config = ConfigDict(frozen=True)
    type: str
    config: Any

    def settings(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    dataset: DatasetSection
    sources: list[SourceConfig] = Field(min_length=1)
    stages: list[StageEntry] = Field(default_factory=list)
    publish: PublishSection = Field(default_factory=PublishSection)
    run: RunSection = Field(default_factory=RunSection)
    path: Path | None = Field(default=None, exclude=True)
    # The user's permission (``build --trust-code``) for Python code the recipe names to run; never
    # read from the recipe itself, whose author is not the one to grant it.
    trust_code: bool = Field(default=False, exclude=True)

    @field_validator("sources")
    @classmethod
    def _unique_source_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique, repeated: {', '.join(dupes)}")
        return sources

    @property
    def ref(self) -> str:
        return f"{self.dataset.name}@{self.dataset.version}"

    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def with_run(self, **changes: Any) -> Recipe:
        """This recipe run differently (``build --executor/--address``); changes are validated as
        the recipe's ``[run]`` keys are. Keys whose value is None are left as they are."""
        settings = {**self.run.model_dump(), **{k: v for k, v in changes.items() if v is not None}}
        try:
            run = RunSection.model_validate(settings)
        except ValidationError as exc:
            key, msg = _first_error(exc, ("run",))
            raise RecipeError(f"{self.path or '<recipe>'}: key '{key}': {msg}") from None
        return self.model_copy(update={"run": run})

    def trusting_code(self) -> Recipe:
        """This recipe with its Python code allowed to run (``build --trust-code``)."""
        return self.model_copy(update={"trust_code": True})

    def resolved(self) -> dict[str, Any]:
        """The recipe as plain data, every default filled in: what the manifest records. ``[run]``
        is left out: how stages ran is recorded apart, under the manifest's ``execution``."""
        return {
            "dataset": self.dataset.model_dump(mode="json"),
            "sources": [s.model_dump(mode="json") for s in self.sources],
            "stages": [{"type": s.type, **s.settings()} for s in self.stages],
            "publish": self.publish.model_dump(mode="json"),
        }


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def _first_error(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if p not in ("function-after",))
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "string_pattern_mismatch" and err["ctx"].get("pattern") in _RULES:
        msg = f"{err['input']!r} is not valid: use {_RULES[err['ctx']['pattern']]}"
    return _key_path(prefix + loc), msg


def _what_it_is(data: dict[str, Any]) -> str:
    """What a TOML file kept beside the recipes is for, when it is not a recipe."""
    if "sets" in data:
        return "; it lists eval sets: use it with `qlora-trainer perplexity --eval FILE`"
    if {"lora_r", "learning_rate", "max_steps", "base", "load_in_4bit"} & set(data):
        return "; it holds training settings: use it with `qlora-trainer train --config FILE`"
    return ""


_RULES = {NAME_PATTERN: NAME_RULE, VERSION_PATTERN: VERSION_RULE}


def parse_recipe(data: dict[str, Any], path: Path | None = None) -> Recipe:
    """Validate recipe data; raise :class:`RecipeError` naming the file and the offending key."""
    from dataset_builder.stages import stage_config_model

    where = str(path) if path else "<recipe>"
    if "dataset" not in data and "sources" not in data:
        raise RecipeError(f"{where}: not a recipe (no [dataset] table and no [[sources]]){_what_it_is(data)}")
    if "trust_code" in data:
        raise RecipeError(f"{where}: key 'trust_code': unknown key (code runs only with build --trust-code)")
    raw_stages = data.get("stages", [])
    if not isinstance(raw_stages, list):
        raise RecipeError(f"{where}: key 'stages': must be an array of tables ([[stages]])")
    stages: list[StageEntry] = []
    for i, entry in enumerate(raw_stages):
        if not isinstance(entry, dict) or "type" not in entry:
            raise RecipeError(f"{where}: key 'stages[{i}]': every stage needs a 'type'")
        settings = {k: v for k, v in entry.items() if k != "type"}
        try:
            model = stage_config_model(entry["type"])
        except KeyError as exc:
            raise RecipeError(f"{where}: key 'stages[{i}].type': {exc.args[0]}") from None
        try:
            stages.append(StageEntry(type=entry["type"], config=model.model_validate(settings)))
        except ValidationError as exc:
            key, msg = _first_error(exc, ("stages", i))
            raise RecipeError(f"{where}: key '{key}': {msg}") from None
    try:
        return Recipe.model_validate({**data, "stages": stages, "path": path})
    except ValidationError as exc:
        key, msg = _first_error(exc)
        raise RecipeError(f"{where}: key '{key}': {msg}") from None


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found") from None
    except IsADirectoryError:
        found = sorted(p.name for p in path.glob("*.toml"))[:3]
        hint = f" such as {', '.join(str(path / n) for n in found)}" if found else ""
        raise RecipeError(f"{path}: is a folder; give a recipe file{hint}") from None
    except PermissionError as exc:
        raise RecipeError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: recipe is not valid UTF-8 ({exc.reason})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None
    return parse_recipe(data, path.resolve())
