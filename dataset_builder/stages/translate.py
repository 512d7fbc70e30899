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
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from dataset_builder.progress import new_bar
from dataset_builder.stages.base import Stage as BaseStage
from dataset_builder.stages.base import StageConfig, StageContext
from dataset_builder.translate.checks import latin_share, repetition_loop
from dataset_builder.rows import MESSAGES_TYPE
from dataset_builder.translate.langid import LATIN_LANGUAGES, detect, identify, prose_only
from dataset_builder.translate.segment import (
    Protected,
    Span,
    is_python,
    protect,
    python_prose,
    segment,
)
from dataset_builder.translate.sentences import join_sentences, split_sentences
from dataset_builder.translate.verify import verify_turn

log = logging.getLogger("dataset_builder")
Role = Literal["system", "user", "assistant"]
Handling = Literal["translate", "pass", "reject"]


class TranslateConfig(StageConfig):
    from_lang: str = "en"
    to_lang: str = "ru"
    package_version: str | None = None
    packages_dir: str | None = None
    if_missing: Literal["error", "skip"] = "error"
    roles: list[Role] = Field(default_factory=lambda: ["system", "user", "assistant"])
    translate_comments: bool = False
    # decoding (defaults: argostranslate's)
    beam_size: int = Field(default=4, ge=1, le=16)
    length_penalty: float = 0.2
    max_decoding_length: int = Field(default=256, ge=8)
    # runtime
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    inter_threads: int = Field(default=0, ge=0)
    intra_threads: int = Field(default=0, ge=0)
    batch_tokens: int = Field(default=2048, ge=64)
    chunk_sentences: int = Field(default=512, ge=1)
    cache: bool = True
    cache_path: str | None = None
    # routing: rows are identified among `languages`; a row in a language other than from_lang and
    # to_lang is handled as `other_languages` says ("*" for any language not named): translated
    # with that language's package, passed through keeping its language, or rejected.
    detect_language: bool = True
    languages: list[str] = Field(default_factory=lambda: list(LATIN_LANGUAGES))
    other_languages: dict[str, Handling] = Field(default_factory=lambda: {"*": "reject"})
    min_detect_letters: int = Field(default=40, ge=1)
    min_detect_probability: float = Field(default=0.9, ge=0.0, le=1.0)
    # checks
    verify_language: bool = True
    min_length_ratio: float = Field(default=0.4, ge=0.0)
    max_length_ratio: float = Field(default=3.5, gt=0.0)
    max_latin_share: float = Field(default=0.35, ge=0.0, le=1.0)
    check_repetition: bool = True


class Translator:
    """Sentences in, translations out, through the cache; misses go to the engine in chunks."""

    def __init__(self, cfg: TranslateConfig, from_lang: str, base_dir: Path, ctx: StageContext) -> None:
        from dataset_builder.translate import packages
        from dataset_builder.translate.cache import TranslationCache, cache_namespace, default_cache_path
        from dataset_builder.translate.engine import DecodeSettings, Engine, RuntimeSettings

        self.ctx = ctx
        self.chunk = cfg.chunk_sentences
        self.bar: Any = None
        version = cfg.package_version if from_lang == cfg.from_lang else None
        self.package = packages.find(from_lang, cfg.to_lang, version, cfg.packages_dir)
        decode = DecodeSettings(cfg.beam_size, cfg.length_penalty, cfg.max_decoding_length)
        runtime = RuntimeSettings(
            cfg.device, cfg.compute_type, cfg.inter_threads, cfg.intra_threads, cfg.batch_tokens
        )
        self.engine = Engine(self.package, decode, runtime)
        self.cache = None
        if cfg.cache:
            path = Path(cfg.cache_path) if cfg.cache_path else default_cache_path()
            path = path if path.is_absolute() else base_dir / path
            self.cache = TranslationCache(path, cache_namespace(self.engine))
        key = "package" if from_lang == cfg.from_lang else f"package:{from_lang}"
        ctx.stats.counters[key] = self.package.describe()
        ctx.stats.counters["decode"] = {"beam_size": cfg.beam_size, "length_penalty": cfg.length_penalty}
        ctx.stats.counters["device"] = self.engine.device

    def translate(self, sentences: list[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(s for s in sentences if s.strip()))
        done = self.cache.get_many(unique) if self.cache else {}
        self.ctx.count("cache_hits", len(done))
        todo = sorted((s for s in unique if s not in done), key=len)
        self.ctx.count("cache_misses", len(todo))
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


class _Turn:
    """One turn being translated: its spans, and for each prose span its sentence plan."""

    def __init__(self, text: str, translate_comments: bool, language: str) -> None:
        self.source = text
        self.spans = segment(text)
        if translate_comments:
            self.spans = _split_comments(self.spans)
        self.plans: dict[int, tuple[Protected, list[str], list[str]]] = {}
        for i, span in enumerate(self.spans):
            if span.kind == "prose":
                protected = protect(span.text)
                sentences, gaps = split_sentences(protected.text, language)
                self.plans[i] = (protected, sentences, gaps)

    def sentences(self) -> list[str]:
        return [s for _, sentences, _ in self.plans.values() for s in sentences]

    def assemble(self, done: dict[str, str], retry: dict[str, str] | None) -> tuple[str, int]:
        """The translated turn, and how many sentences had to be retried piece by piece."""
        parts, retried = [], 0
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
                    restored = "".join(
                        piece
                        if is_code
                        else _keep_edges(piece, (retry or {}).get(piece.strip(), piece.strip()))
                        for piece, is_code in local.fragments()
                    )
                out.append(restored)
            translated = join_sentences(out, [_restore_gap(g, protected) for g in gaps])
            if any(bad in translated for bad in span.forbid):
                # A translated comment or docstring that would break its code keeps its source text.
                translated = span.text
            parts.append(translated)
        return "".join(parts), retried

    def retry_pieces(self, done: dict[str, str]) -> list[str]:
        pieces = []
        for protected, sentences, _ in self.plans.values():
            for sentence in sentences:
                local = Protected(sentence, protected.spans)
                if local.restore(done.get(sentence, "")) is None:
                    pieces.extend(p.strip() for p, is_code in local.fragments() if not is_code and p.strip())
        return pieces


def _restore_gap(gap: str, protected: Protected) -> str:
    """Gaps between sentences are whitespace, or rarely a span pysbd left between sentences."""
    restored = Protected(gap, protected.spans).restore(gap)
    return restored if restored is not None else gap


def _keep_edges(piece: str, translated: str) -> str:
    lead = piece[: len(piece) - len(piece.lstrip())]
    trail = piece[len(piece.rstrip()) :]
    return f"{lead}{translated}{trail}"


def _split_comments(spans: list[Span]) -> list[Span]:
    """Code spans with their comments and docstrings split out as prose (``translate_comments``)."""
    out: list[Span] = []
    for span in spans:
        ranges = python_prose(span.text) if span.kind == "code" else []
        if not ranges:
            out.append(span)
            continue
        pos = 0
        for start, end, forbid in ranges:
            out.append(Span("code", span.text[pos:start]))
            out.append(Span("prose", span.text[start:end], forbid))
            pos = end
        out.append(Span("code", span.text[pos:]))
    return out


def _code_without_comments(text: str, translate_comments: bool) -> list[str]:
    if not translate_comments:
        return code_fingerprint(text)
    return [s.text for s in _split_comments(segment(text)) if s.kind == "code"]


def _first_missing(code: list[str], translated: str) -> str | None:
    """The first piece of the source's code that does not appear, in order, in the translation."""
    pos = 0
    for piece in code:
        found = translated.find(piece, pos)
        if found < 0:
            return piece
        pos = found + len(piece)
    return None


class Translate(BaseStage):
    name = "translate"
    Config = TranslateConfig

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        cfg: TranslateConfig = self.config
        from dataset_builder.translate.packages import PackageError

        try:
            translator = Translator(cfg, ctx.base_dir, ctx)
        except PackageError as exc:
            if cfg.if_missing == "error":
                raise
            log.warning("translation skipped: %s; rows keep their language", exc)
            ctx.stats.counters["skipped"] = str(exc)
            yield from batches
            return
        try:
            for batch in batches:
                yield from self._translate_batch(batch, translator, ctx)
        finally:
            translator.close()

    def _wants(self, row: dict[str, Any], ctx: StageContext) -> bool:
        cfg: TranslateConfig = self.config
        if not ctx.source_options.get(row["source"], {}).get("translate", True) or row["lang"] == cfg.to_lang:
            ctx.count("not_translated_by_source")
            return False
        if cfg.detect_language:
            prose = "\n".join(prose_only(m["content"]) for m in row["messages"] if m["role"] in cfg.roles)
            found = detect(prose)
            if found == cfg.to_lang:
                ctx.count("routed_already_target_language")
                row["lang"] = cfg.to_lang
                return False
        return True

    def _translate_batch(
        self, batch: pa.Table, translator: Translator, ctx: StageContext
    ) -> Iterator[pa.Table]:
        cfg: TranslateConfig = self.config
        rows = batch.to_pylist()
        work: dict[int, dict[int, _Turn]] = {}
        for r, row in enumerate(rows):
            if self._wants(row, ctx):
                work[r] = {
                    t: _Turn(m["content"], cfg.translate_comments, cfg.from_lang)
                    for t, m in enumerate(row["messages"])
                    if m["role"] in cfg.roles
                }
        sentences = [s for turns in work.values() for turn in turns.values() for s in turn.sentences()]
        done = translator.translate(sentences)
        pieces = [p for turns in work.values() for turn in turns.values() for p in turn.retry_pieces(done)]
        retry = translator.translate(pieces) if pieces else {}

        kept, rejected, reasons, details = [], [], [], []
        for r, row in enumerate(rows):
            if r not in work:
                kept.append(row)
                continue
            problem = None
            messages = [dict(m) for m in row["messages"]]
            for t, turn in work[r].items():
                text, retried = turn.assemble(done, retry)
                ctx.count("sentences_retried_by_piece", retried)
                problem = problem or self._check(turn.source, text)
                messages[t]["content"] = text
            if problem:
                rejected.append(row)
                reasons.append(problem[0])
                details.append(problem[1])
                continue
            row["messages"] = messages
            row["lang"] = cfg.to_lang
            ctx.count("rows_translated")
            kept.append(row)
        for reason in sorted(set(reasons)):
            picked = [i for i, x in enumerate(reasons) if x == reason]
            ctx.reject([rejected[i] for i in picked], reason, [details[i] for i in picked])
        if kept:
            yield pa.Table.from_pylist(kept, schema=batch.schema)

    def _check(self, source: str, translated: str) -> tuple[str, str] | None:
        cfg: TranslateConfig = self.config
        missing = _first_missing(_code_without_comments(source, cfg.translate_comments), translated)
        if missing is not None:
            return "code_changed", f"code not found verbatim in the translation: {missing[:60]!r}"
        src_prose, out_prose = prose_only(source), prose_only(translated)
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
