"""Translate rows with Argos Translate packages, keeping every byte of code.

Per batch of rows: route (rows already in the target language pass through; rows in another
language are identified among the recipe's candidates and translated with that language's
package, passed through or rejected, as the recipe says), segment every translatable turn into
code and prose, protect inline code behind placeholders, split prose into sentences, translate all
sentences of the batch at once through the cache and the CTranslate2 engine, put placeholders back
(a sentence that lost one is translated again piece by piece around its code), reassemble, then
verify with :mod:`~dataset_builder.translate.verify`, which shares nothing with the segmenter:
code byte-identical, target language, sane length, no repetition loop, no untranslated leftovers.
Rows that fail go to ``rejected`` with the reason, their source turns and the attempted output.

Every translated row keeps its source-language turns in ``source_messages`` and their language in
``source_lang``, so each published row is its own parallel pair. Translating turns rows' ``lang``
into the target language; rows that were not translated keep theirs, so English is never
published labelled as Russian.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, field_validator

from dataset_builder.progress import new_bar
from dataset_builder.rows import MESSAGES_TYPE
from dataset_builder.stages.base import Stage as BaseStage
from dataset_builder.stages.base import StageContext
from dataset_builder.translate.checks import latin_share, repetition_loop
from dataset_builder.translate.langid import LATIN_LANGUAGES, detect, identify, prose_only
from dataset_builder.translate.segment import (
    Protected,
    Span,
    is_python,
    join_around_code,
    protect,
    python_prose,
    segment,
)
from dataset_builder.translate.sentences import join_sentences, split_sentences
from dataset_builder.translate.settings import EngineSettings
from dataset_builder.translate.verify import is_bare_value, verify_turn

log = logging.getLogger("dataset_builder")
Role = Literal["system", "user", "assistant"]
Handling = Literal["translate", "pass", "reject"]


class TranslateConfig(EngineSettings):
    # "argos" (an installed Argos package), or "python:MODULE:FUNCTION": a translator of the
    # user's own (dataset_builder.translate.python_engine), run only when the user allows it.
    engine: str = "argos"
    from_lang: str = "en"
    to_lang: str = "ru"
    package_version: str | None = None
    packages_dir: str | None = None
    if_missing: Literal["error", "skip"] = "error"
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

    @field_validator("engine")
    @classmethod
    def _engine_name(cls, engine: str) -> str:
        from dataset_builder.translate.python_engine import check_spec

        return check_spec(engine)


class Translator:
    """Sentences in, translations out, through the cache; misses go to the engine in chunks."""

    def __init__(
        self,
        cfg: TranslateConfig,
        from_lang: str,
        base_dir: Path,
        ctx: StageContext,
        open_cache: Callable[[Path, str], Any] | None = None,
    ) -> None:
        from dataset_builder.translate.cache import TranslationCache, default_cache_path

        self.ctx = ctx
        self.chunk = cfg.chunk_sentences
        self.bar: Any = None
        self.engine, namespace = _engine(cfg, from_lang, base_dir, ctx)
        self.cache = None
        self.looked_up: set[str] = set()
        if cfg.cache:
            path = Path(cfg.cache_path) if cfg.cache_path else default_cache_path()
            path = path if path.is_absolute() else base_dir / path
            self.cache = (open_cache or TranslationCache)(path, namespace)

    def translate(self, sentences: list[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(s for s in sentences if s.strip()))
        done = self.cache.get_many(unique) if self.cache else {}
        # Hits and misses count distinct sentences, at their first lookup in the stage: a count
        # per lookup would depend on how rows were cut into batches (each executor cuts its own).
        first = [s for s in unique if s not in self.looked_up]
        self.looked_up.update(first)
        self.ctx.count("cache_hits", sum(1 for s in first if s in done))
        self.ctx.count("cache_misses", sum(1 for s in first if s not in done))
        todo = sorted((s for s in unique if s not in done), key=len)
        if todo:
            # One bar for the whole stage: its total grows batch by batch as rows stream in.
            if self.bar is None:
                self.bar = new_bar(desc="translate", unit="sent", total=0, enabled=self.ctx.show_progress)
            self.bar.total += len(todo)
            self.bar.refresh()
            for start in range(0, len(todo), self.chunk):
                part = todo[start : start + self.chunk]
                # Prose is translated inside its line: a newline from the model would move code.
                translated = [" ".join(t.splitlines()) for t in self.engine.translate(part)]
                out = dict(zip(part, translated, strict=True))
                if self.cache:
                    self.cache.put_many(out)
                done.update(out)
                self.bar.update(len(part))
        self.ctx.count("sentences_translated", len(todo))
        return done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.cache:
            self.cache.close()


def _engine(cfg: TranslateConfig, from_lang: str, base_dir: Path, ctx: StageContext) -> tuple[Any, str]:
    """The engine that translates ``from_lang`` (``translate(list[str]) -> list[str]``) and its
    cache namespace; what it is goes into the stage's counters, for the manifest and the card."""
    from dataset_builder.translate.python_engine import PythonEngine, is_python_engine

    if is_python_engine(cfg.engine):
        engine = PythonEngine(cfg.engine, from_lang, cfg.to_lang, base_dir, ctx.trust_code)
        ctx.stats.counters["engine"] = engine.describe()
        return engine, engine.cache_namespace()
    from dataset_builder.translate import packages
    from dataset_builder.translate.cache import cache_namespace
    from dataset_builder.translate.engine import DecodeSettings, Engine, RuntimeSettings

    version = cfg.package_version if from_lang == cfg.from_lang else None
    package = packages.find(from_lang, cfg.to_lang, version, cfg.packages_dir)
    decode = DecodeSettings(cfg.beam_size, cfg.length_penalty, cfg.max_decoding_length)
    runtime = RuntimeSettings(
        cfg.device, cfg.compute_type, cfg.inter_threads, cfg.intra_threads, cfg.batch_tokens
    )
    argos = Engine(package, decode, runtime)
    key = "package" if from_lang == cfg.from_lang else f"package:{from_lang}"
    ctx.stats.counters[key] = package.describe()
    ctx.stats.counters["decode"] = {"beam_size": cfg.beam_size, "length_penalty": cfg.length_penalty}
    ctx.stats.counters["device"] = argos.device
    return argos, cache_namespace(argos)


class _Turn:
    """One turn being translated: its spans, and for each prose span its sentence plan."""

    def __init__(self, text: str, translate_comments: bool, language: str, data_lines: int = 0) -> None:
        self.source = text
        self.data_lines = data_lines
        # A turn of bare values (`True`, `average`) is an answer's value: it is never translated.
        head, data = ("", text) if is_bare_value(text) else _split_data(text, data_lines)
        self.spans = segment(head) if head else []
        if translate_comments:
            self.spans = _split_comments(self.spans)
        if data:
            self.spans.append(Span("code", data))
        self.plans: dict[int, tuple[Protected, list[str], list[str]]] = {}
        for i, span in enumerate(self.spans):
            if span.kind == "prose":
                protected = protect(span.text)
                sentences, gaps = split_sentences(protected.text, language)
                self.plans[i] = (protected, sentences, gaps)
        # The prose without its inline code, before and (set by assemble) after translation: what
        # the language and length checks look at.
        self.source_prose = "\n".join(_without_code(span.text, self.plans[i][0]) for i, span in self._prose())
        self.translated_prose = ""

    def _prose(self) -> list[tuple[int, Span]]:
        return [(i, span) for i, span in enumerate(self.spans) if i in self.plans]

    def sentences(self) -> list[str]:
        return [s for _, sentences, _ in self.plans.values() for s in sentences]

    def assemble(self, done: dict[str, str], retry: dict[str, str] | None) -> tuple[str, int]:
        """The translated turn, and how many sentences had to be retried piece by piece."""
        parts, retried, prose = [], 0, []
        for i, span in enumerate(self.spans):
            if i not in self.plans:
                parts.append(span.text)
                continue
            protected, sentences, gaps = self.plans[i]
            out = []
            for sentence in sentences:
                local = Protected(sentence, protected.spans)
                restored = local.restore(done.get(sentence, ""))
                if restored is None:
                    retried += 1
                    fragments = local.fragments()
                    restored = join_around_code(
                        [
                            (piece, True)
                            if is_code
                            else (_keep_edges(piece, (retry or {}).get(piece.strip(), piece.strip())), False)
                            for piece, is_code in fragments
                        ],
                        [piece for piece, _ in fragments],
                    )
                out.append(restored)
            translated = join_sentences(out, [_restore_gap(g, protected) for g in gaps])
            if any(bad in translated for bad in span.forbid):
                # A translated comment or docstring that would break its code keeps its source text.
                translated = span.text
            parts.append(translated)
            prose.append(_without_code(translated, protected))
        self.translated_prose = "\n".join(prose)
        return "".join(parts), retried

    def retry_pieces(self, done: dict[str, str]) -> list[str]:
        pieces = []
        for protected, sentences, _ in self.plans.values():
            for sentence in sentences:
                local = Protected(sentence, protected.spans)
                if local.restore(done.get(sentence, "")) is None:
                    pieces.extend(p.strip() for p, is_code in local.fragments() if not is_code and p.strip())
        return pieces


def _split_data(text: str, data_lines: int) -> tuple[str, str]:
    """``(head, data)``: the turn before its last ``data_lines`` lines, and those lines (data is
    never sent to the translator); ``(text, "")`` when there are none."""
    lines = text.split("\n")
    if not 0 < data_lines <= len(lines):
        return text, ""
    data = "\n".join(lines[len(lines) - data_lines :])
    return text[: len(text) - len(data)], data


def data_lines_of(turn: str, data: str | None) -> int:
    """How many lines at the end of ``turn`` are the task input ``data``; 0 when the turn does not
    end with it (an earlier stage may have stripped spaces or normalized its Unicode, nothing more)."""
    if not data or not data.strip():
        return 0
    wanted = [unicodedata.normalize("NFC", line).rstrip() for line in data.strip("\n").split("\n")]
    lines = turn.split("\n")
    blank_end = len(lines) - len("\n".join(lines).rstrip().split("\n"))  # kept by an earlier stage
    end = len(lines) - blank_end
    if len(wanted) > end:
        return 0
    got = [unicodedata.normalize("NFC", line).rstrip() for line in lines[end - len(wanted) : end]]
    return len(wanted) + blank_end if got == wanted else 0


def _without_code(text: str, protected: Protected) -> str:
    for code in protected.spans:
        text = text.replace(code, " ")
    return text


def _restore_gap(gap: str, protected: Protected) -> str:
    """Gaps between sentences are whitespace, or rarely a span pysbd left between sentences."""
    restored = Protected(gap, protected.spans).restore(gap)
    return restored if restored is not None else gap


def _keep_edges(piece: str, translated: str) -> str:
    if not piece.strip():  # only the space between two code spans: nothing was translated
        return piece
    lead = piece[: len(piece) - len(piece.lstrip())]
    trail = piece[len(piece.rstrip()) :]
    return f"{lead}{translated}{trail}"


def _python_body(code: str) -> tuple[int, str] | None:
    """``(offset, body)`` of the Python in a code span (a fenced block's inside, or the span),
    or None when it is not Python that parses: comments are only translated where the language
    is known, since ``#`` starts a comment in Python but a directive in C."""
    lines = code.splitlines(keepends=True)
    if lines and lines[0].lstrip().startswith(("```", "~~~")):
        info = lines[0].strip().lstrip("`~").strip().lower()
        if info not in ("", "python", "py", "python3") or len(lines) < 2:
            return None
        closed = lines[-1].strip().startswith(lines[0].strip()[:3])
        body = "".join(lines[1:-1] if closed else lines[1:])
        return (len(lines[0]), body) if is_python(body) else None
    return (0, code) if is_python(code) else None


def _split_comments(spans: list[Span]) -> list[Span]:
    """Code spans with the comments and docstrings of their Python split out as prose
    (``translate_comments``); doctests and examples inside docstrings stay code."""
    out: list[Span] = []
    for span in spans:
        found = _python_body(span.text) if span.kind == "code" else None
        ranges = python_prose(found[1]) if found else []
        if not ranges:
            out.append(span)
            continue
        offset, pos = found[0], 0
        for start, end, forbid in ranges:
            start, end = start + offset, end + offset
            out.append(Span("code", span.text[pos:start]))
            for part in (
                segment(span.text[start:end])
                if "\n" in span.text[start:end]
                else [Span("prose", span.text[start:end])]
            ):
                out.append(
                    Span("prose", part.text, forbid) if part.kind == "prose" else Span("code", part.text)
                )
            pos = end
        out.append(Span("code", span.text[pos:]))
    return [s for s in out if s.text]


class Translate(BaseStage):
    name = "translate"
    Config = TranslateConfig
    # Opens the translation cache at (path, namespace); None: the SQLite file itself. Set when this
    # stage runs in processes that must reach the cache through its one owner (a cluster's driver).
    open_cache: Callable[[Path, str], Any] | None = None

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        cfg: TranslateConfig = self.config
        from dataset_builder.translate.packages import PackageError

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
        work: dict[int, tuple[str, dict[int, _Turn]]] = {}
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
                    t: _Turn(
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

    def _check(self, turn: _Turn, translated: str, others: str = "") -> tuple[str, str] | None:
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
