"""Translate rows with Argos Translate packages, keeping every byte of code.

Per batch of rows: route (rows already in the target language pass through; rows in another
language are identified among the recipe's candidates and translated with that language's
package, passed through or rejected, as the recipe says), segment every translatable turn into
code and prose, protect inline code behind placeholders, split prose into sentences, translate all
sentences of the batch at once through the cache and the CTranslate2 engine, put placeholders back
(a sentence that lost one is translated again piece by piece around its code), reassemble, then
verify with :mod:`~dataset_builder.translation.verify`, which shares nothing with the segmenter:
code byte-identical, target language, sane length, no repetition loop, no untranslated leftovers.
Rows that fail go to ``rejected`` with the reason, their source turns and the attempted output.

Every translated row keeps its source-language turns in ``source_messages`` and their language in
``source_lang``, so each published row is its own parallel pair. Translating turns rows' ``lang``
into the target language; rows that were not translated keep theirs, so English is never
published labelled as Russian.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from dataset_builder.rows import MESSAGES_TYPE, Role
from dataset_builder.stages.base import Stage as BaseStage
from dataset_builder.stages.base import StageContext
from dataset_builder.translation.checks import latin_share, repetition_loop
from dataset_builder.translation.langid import LATIN_LANGUAGES, detect, identify, prose_only
from dataset_builder.translation.settings import EngineSettings
from dataset_builder.translation.translator import Translator
from dataset_builder.translation.turns import Turn, data_lines_of
from dataset_builder.translation.verify import verify_turn

log = logging.getLogger("dataset_builder")
Handling = Literal["translate", "pass", "reject"]


class TranslateConfig(EngineSettings):
    from_lang: str = "en"
    to_lang: str = "ru"
    roles: list[Role] = Field(default_factory=lambda: ["system", "user", "assistant"])
    translate_comments: bool = False
    # A row column holding the task's input (data the instruction works on, e.g. the alpaca
    # adapter's `input`), which its source put at the end of the first user turn: those lines are
    # never translated and kept byte-identical, sentences included (a sample sentence is the
    # string the task counts, reverses or the answer quotes). "": no such column.
    data_column: str | None = "input"
    # decoding and runtime: EngineSettings
    # routing: rows are identified among `languages`; a row in a language other than from_lang and
    # to_lang is handled as `other_languages` says ("*" for any language not named): translated
    # with that language's package, passed through keeping its language, or rejected.
    detect_language: bool = True
    languages: list[str] = Field(default_factory=lambda: list(LATIN_LANGUAGES))
    other_languages: dict[str, Handling] = Field(default_factory=lambda: {"*": "reject"})
    min_detect_letters: int = Field(default=20, ge=1)
    min_detect_probability: float = Field(default=0.9, ge=0.0, le=1.0)
    # checks
    verify_language: bool = True
    min_length_ratio: float = Field(default=0.4, ge=0.0)
    max_length_ratio: float = Field(default=3.5, gt=0.0)
    max_latin_share: float = Field(default=0.35, ge=0.0, le=1.0)
    check_repetition: bool = True


class Translate(BaseStage):
    name = "translate"
    Config = TranslateConfig
    # Opens the translation cache at (path, namespace); None: the SQLite file itself. Set when this
    # stage runs in processes that must reach the cache through its one owner (a cluster's driver).
    open_cache: Callable[[Path, str], Any] | None = None

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        cfg: TranslateConfig = self.config
        from dataset_builder.translation.packages import PackageError

        translators: dict[str, Translator] = {}
        try:
            # Every package the recipe may need is found before the first row: a missing one for
            # another language fails now, not hours into the run.
            for lang in [cfg.from_lang, *self._translated_languages()]:
                translators[lang] = Translator(cfg, lang, ctx.base_dir, ctx, self.open_cache)
        except PackageError as exc:
            for translator in translators.values():
                translator.close()
            if cfg.if_missing == "error":
                raise
            log.warning("translation skipped: %s; rows keep their language", exc)
            # The manifest travels to the Hub: it says what was missing, not where this machine looked.
            langs = ", ".join(
                f"{lang}->{cfg.to_lang}" for lang in [cfg.from_lang, *self._translated_languages()]
            )
            ctx.stats.counters["skipped"] = f"no Argos package installed for {langs}"
            yield from batches
            return
        except BaseException:
            for translator in translators.values():
                translator.close()
            raise
        try:
            for batch in batches:
                yield from self._translate_batch(batch, translators, ctx)
        finally:
            for translator in translators.values():
                translator.close()

    def _translated_languages(self) -> list[str]:
        cfg: TranslateConfig = self.config
        return [
            lang
            for lang, how in cfg.other_languages.items()
            if how == "translate" and lang not in ("*", cfg.from_lang, cfg.to_lang)
        ]

    def _route(self, row: dict[str, Any], ctx: StageContext) -> str | None:
        """The language to translate ``row`` from, or None to keep it as it is. Sets the row's
        ``lang`` to what was found; a row to reject gets ``_reject`` with the detail."""
        cfg: TranslateConfig = self.config
        if not ctx.source_options.get(row["source"], {}).get("translate", True) or row["lang"] == cfg.to_lang:
            ctx.count("not_translated_by_source")
            return None
        declared = row["lang"] or cfg.from_lang
        if not cfg.detect_language:
            return declared if declared == cfg.from_lang else self._other(row, declared, 1.0, ctx)
        prose = "\n".join(prose_only(m["content"]) for m in row["messages"] if m["role"] in cfg.roles)
        found, probability = identify(
            prose,
            tuple(dict.fromkeys((*cfg.languages, cfg.to_lang))),
            declared,
            min_letters=cfg.min_detect_letters,
            min_probability=cfg.min_detect_probability,
        )
        if found == cfg.to_lang:
            ctx.count("routed_already_target_language")
            row["lang"] = cfg.to_lang
            return None
        if found == cfg.from_lang:
            return found
        return self._other(row, found, probability, ctx)

    def _other(self, row: dict[str, Any], lang: str, probability: float, ctx: StageContext) -> str | None:
        cfg: TranslateConfig = self.config
        how = cfg.other_languages.get(lang, cfg.other_languages.get("*", "reject"))
        ctx.count(f"other_language:{lang}:{how}")
        row["lang"] = lang
        if how == "translate" and lang in self._translated_languages():
            return lang
        if how == "reject" or how == "translate":
            row["_reject"] = f"identified as {lang!r} (p={probability:.2f}), not {cfg.from_lang!r}; " + (
                "no package is configured for it" if how == "translate" else "other_languages says reject"
            )
        return None

    def _translate_batch(
        self, batch: pa.Table, translators: dict[str, Translator], ctx: StageContext
    ) -> Iterator[pa.Table]:
        cfg: TranslateConfig = self.config
        rows = batch.to_pylist()
        work: dict[int, tuple[str, dict[int, Turn]]] = {}
        passed: list[int] = []
        other: list[int] = []
        for r, row in enumerate(rows):
            lang = self._route(row, ctx)
            if "_reject" in row:
                other.append(r)
            elif lang is None:
                passed.append(r)
            else:
                first_user = next((t for t, m in enumerate(row["messages"]) if m["role"] == "user"), None)
                data = row.get(cfg.data_column) if cfg.data_column else None
                turns = {
                    t: Turn(
                        m["content"],
                        cfg.translate_comments,
                        lang,
                        data_lines_of(m["content"], data) if t == first_user else 0,
                    )
                    for t, m in enumerate(row["messages"])
                    if m["role"] in cfg.roles
                }
                work[r] = (lang, turns)
        done: dict[str, dict[str, str]] = {}
        retry: dict[str, dict[str, str]] = {}
        for lang, translator in translators.items():
            mine = [turns for from_lang, turns in work.values() if from_lang == lang]
            sentences = [s for turns in mine for turn in turns.values() for s in turn.sentences()]
            done[lang] = translator.translate(sentences) if sentences else {}
            pieces = [p for turns in mine for turn in turns.values() for p in turn.retry_pieces(done[lang])]
            retry[lang] = translator.translate(pieces) if pieces else {}

        kept: list[tuple[int, dict[str, Any]]] = []
        failed: dict[str, list[tuple[dict[str, Any], str]]] = {}
        for r in other:
            row = rows[r]
            failed.setdefault("other_language", []).append((row, row.pop("_reject")))
        for r in passed:
            row = rows[r]  # an earlier translate stage's originals stay the originals
            kept.append(
                (
                    r,
                    {
                        **row,
                        "source_messages": row.get("source_messages"),
                        "source_lang": row.get("source_lang") or row["lang"],
                    },
                )
            )
        for r, (lang, turns) in work.items():
            row = rows[r]
            problem = None
            messages = [dict(m) for m in row["messages"]]
            for t, turn in turns.items():
                text, retried = turn.assemble(done[lang], retry[lang])
                ctx.count("sentences_retried_by_piece", retried)
                messages[t]["content"] = text
                if problem is None:
                    others = "\n".join(m["content"] for k, m in enumerate(row["messages"]) if k != t)
                    found = self._check(turn, text, others)
                    if found:
                        problem = (found[0], f"turn {t + 1} ({messages[t]['role']}): {found[1]}")
            if problem:
                failed.setdefault(problem[0], []).append(
                    ({**row, "attempted_messages": messages}, problem[1])
                )
                continue
            translated = {"messages": messages, "lang": cfg.to_lang}
            original = {
                "source_messages": row.get("source_messages") or row["messages"],
                "source_lang": row.get("source_lang") or lang,
            }
            kept.append((r, {**row, **translated, **original}))
            ctx.count("rows_translated")
        for reason in sorted(failed):
            ctx.reject([row for row, _ in failed[reason]], reason, [why for _, why in failed[reason]])
        if kept:
            kept.sort(key=lambda pair: pair[0])
            schema = _with_source_columns(batch.schema)
            yield pa.Table.from_pylist([row for _, row in kept], schema=schema)

    def _check(self, turn: Turn, translated: str, others: str = "") -> tuple[str, str] | None:
        """``others``: the row's other turns, whose code names the data labels of this one."""
        cfg: TranslateConfig = self.config
        difference = verify_turn(
            turn.source,
            translated,
            translate_comments=cfg.translate_comments,
            context=others,
            data_lines=turn.data_lines,
        )
        if difference is not None:
            return "code_changed", difference
        src_prose, out_prose = turn.source_prose, turn.translated_prose
        if not src_prose.strip():
            return None
        ratio = len(out_prose) / max(len(src_prose), 1)
        if not cfg.min_length_ratio <= ratio <= cfg.max_length_ratio:
            return (
                "length_ratio",
                f"prose length ratio {ratio:.2f} outside [{cfg.min_length_ratio}, {cfg.max_length_ratio}]",
            )
        if cfg.check_repetition and repetition_loop(out_prose) and not repetition_loop(src_prose):
            return "repetition_loop", "the translation repeats itself"
        if cfg.verify_language:
            found = detect(out_prose)
            if found not in (cfg.to_lang, None):
                return "wrong_language", f"translation detected as {found!r}, expected {cfg.to_lang!r}"
            share = latin_share(out_prose)
            if share > cfg.max_latin_share:
                return "untranslated", f"Latin letters are {share:.0%} of the translated prose"
        return None


def _with_source_columns(schema: pa.Schema) -> pa.Schema:
    for name, kind in (("source_messages", MESSAGES_TYPE), ("source_lang", pa.string())):
        if name not in schema.names:
            schema = schema.append(pa.field(name, kind))
    return schema
