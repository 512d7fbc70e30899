"""Score every translated row: the round trip's chrF and the cheap signals, in one ``mt_quality``
column; optionally reject rows below the recipe's thresholds.

A row was translated when it carries ``source_messages`` (the translate stage's convention). Its
prose (never its code) is translated back, from ``from_lang`` to ``to_lang`` (the reverse of the
translation: ru -> en), with an Argos package or a Python engine, through the same translator,
cache and engine door as the translate stage; sacrebleu's sentence chrF of the back-translation
against the original is the round-trip score. ``sample_fraction`` scores a seeded sample of rows
when the round trip's cost (about one more translation) is not wanted; the cheap signals (length
ratio, share of Cyrillic letters, repeated word 3-grams, share of source sentences left unchanged)
are computed for every translated row. Rows that were not translated get ``mt_quality`` null (a
batch without ``source_messages``, where translation was skipped, passes unchanged).

A row whose prose stayed in the source language comes back unchanged and scores a perfect round
trip, so the cheap signals are checked first and the score never decides alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from dataset_builder.rows import Role
from dataset_builder.stages.base import Stage, StageContext
from dataset_builder.translation import mt_signals
from dataset_builder.translation.settings import EngineSettings

MT_QUALITY_TYPE = pa.struct(
    [
        ("round_trip_chrf", pa.float64()),
        ("length_ratio", pa.float64()),
        ("target_script_share", pa.float64()),
        ("repetition", pa.float64()),
        ("untranslated_share", pa.float64()),
        ("scored", pa.bool_()),
    ]
)
# Round-trip chrF counted per band of 10 in the stage's counters: the distribution the card shows.
CHRF_BANDS = 10


class MtQualityConfig(EngineSettings):
    # The back-translation: from the translated rows' language to their originals'.
    from_lang: str = "ru"
    to_lang: str = "en"
    # if_missing = "skip": without a package, no round trip (cheap signals only), and the build says so.
    # decoding and runtime of the back-translation: EngineSettings
    roles: list[Role] = Field(default_factory=lambda: ["system", "user", "assistant"])
    # Which rows get the round trip: a share, drawn by a hash of (seed, row id).
    sample_fraction: float = Field(default=1.0, ge=0.0, le=1.0)
    seed: int = 0
    # Filters (None: score only). The cheap ones run first, on every translated row.
    min_round_trip_chrf: float | None = Field(default=None, ge=0.0, le=100.0)
    min_target_script_share: float | None = Field(default=0.5, ge=0.0, le=1.0)
    max_untranslated_share: float | None = Field(default=0.5, ge=0.0, le=1.0)
    max_repetition: float | None = Field(default=None, ge=0.0, le=1.0)
    min_length_ratio: float | None = Field(default=None, ge=0.0)
    max_length_ratio: float | None = Field(default=None, gt=0.0)


def in_sample(seed: int, row_id: str, fraction: float) -> bool:
    if fraction >= 1.0:
        return True
    digest = hashlib.sha256(f"{seed}\0{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class MtQuality(Stage):
    name = "mt_quality"
    Config = MtQualityConfig
    # As the translate stage's: set where the cache must be reached through its one owner.
    open_cache: Callable[[Path, str], Any] | None = None

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        cfg: MtQualityConfig = self.config
        translator = self._translator(ctx) if cfg.sample_fraction > 0 else None
        try:
            for batch in batches:
                out = self._score_batch(batch, translator, ctx)
                if out is not None:
                    yield out
        finally:
            if translator is not None:
                translator.close()

    def _translator(self, ctx: StageContext) -> Any:
        from dataset_builder.translation.packages import PackageError
        from dataset_builder.translation.translator import Translator

        cfg: MtQualityConfig = self.config
        try:
            return Translator(cfg, cfg.from_lang, ctx.base_dir, ctx, self.open_cache)
        except PackageError:
            if cfg.if_missing == "error":
                raise
            ctx.stats.counters["round_trip_skipped"] = (
                f"no Argos package installed for {cfg.from_lang}->{cfg.to_lang}; cheap signals only"
            )
            return None

    def _score_batch(self, batch: pa.Table, translator: Any, ctx: StageContext) -> pa.Table | None:
        cfg: MtQualityConfig = self.config
        if "source_messages" not in batch.schema.names:
            # Nothing upstream translated (translation skipped): the rows pass as they came.
            ctx.count("rows_not_translated", batch.num_rows)
            return batch
        rows = batch.to_pylist()
        pairs: dict[int, list[mt_signals.ProsePair]] = {}
        sent: dict[int, list[str]] = {}
        for r, row in enumerate(rows):
            if not row.get("source_messages"):
                continue
            pairs[r] = [
                mt_signals.prose_pair(before["content"], after["content"])
                for before, after in zip(row["source_messages"], row["messages"], strict=False)
                if before["role"] in cfg.roles
            ]
            round_trip = (
                translator is not None
                and row.get("lang") == cfg.from_lang
                and row.get("source_lang") == cfg.to_lang
                and in_sample(cfg.seed, row["row_id"], cfg.sample_fraction)
            )
            if round_trip:
                sent[r] = [
                    s
                    for pair in pairs[r]
                    for sentences in mt_signals.sentences_to_send(pair, cfg.from_lang)
                    for s in sentences
                ]
        wanted = [s for sentences in sent.values() for s in sentences]
        done = translator.translate(wanted) if wanted else {}

        kept: list[dict[str, Any]] = []
        failed: dict[str, list[tuple[dict[str, Any], str]]] = {}
        for r, row in enumerate(rows):
            if r not in pairs:
                ctx.count("rows_not_translated")
                kept.append({**row, "mt_quality": None})
                continue
            scores = self._scores(pairs[r], done if r in sent else None, ctx)
            problem = self._problem(scores)
            if problem:
                failed.setdefault(problem[0], []).append((row, problem[1]))
            else:
                kept.append({**row, "mt_quality": scores})
        for reason in sorted(failed):
            ctx.reject([row for row, _ in failed[reason]], reason, [why for _, why in failed[reason]])
        if not kept:
            return None
        schema = batch.schema
        if "mt_quality" in schema.names:
            schema = schema.remove(schema.get_field_index("mt_quality"))
        return pa.Table.from_pylist(kept, schema=schema.append(pa.field("mt_quality", MT_QUALITY_TYPE)))

    def _scores(
        self, pairs: list[mt_signals.ProsePair], done: dict[str, str] | None, ctx: StageContext
    ) -> dict:
        cfg: MtQualityConfig = self.config
        source = "\n".join(p for pair in pairs for p in pair.source)
        translated = "\n".join(p for pair in pairs for p in pair.translated)
        chrf = None
        if done is not None and source.strip():
            back = "\n".join(mt_signals.back_translation(pair, cfg.from_lang, done) for pair in pairs)
            chrf = mt_signals.round_trip_chrf(source, back)
            ctx.count("rows_scored")
            ctx.count("round_trip_chrf_sum", chrf)
            band = min(int(chrf // CHRF_BANDS), 100 // CHRF_BANDS - 1)
            ctx.count(f"round_trip_chrf_{band * CHRF_BANDS:02d}_{band * CHRF_BANDS + CHRF_BANDS}")
        elif done is None:
            ctx.count("rows_not_sampled")
        else:
            ctx.count("rows_without_prose")
        return {
            "round_trip_chrf": chrf,
            "length_ratio": mt_signals.length_ratio(source, translated),
            "target_script_share": mt_signals.target_script_share(translated),
            "repetition": mt_signals.repetition(translated),
            "untranslated_share": mt_signals.untranslated_share(
                [p for pair in pairs for p in pair.source], translated, cfg.to_lang
            ),
            "scored": chrf is not None,
        }

    def _problem(self, s: dict[str, Any]) -> tuple[str, str] | None:
        """The first threshold a row's scores break, as (reason, detail); cheap signals first."""
        cfg: MtQualityConfig = self.config
        score = f"round-trip chrF {s['round_trip_chrf']:.1f}" if s["scored"] else "round trip not scored"
        share, untranslated = s["target_script_share"], s["untranslated_share"]
        if (
            cfg.min_target_script_share is not None
            and share is not None
            and share < cfg.min_target_script_share
        ):
            return (
                "untranslated_prose",
                f"Cyrillic letters are {share:.0%} of the translated prose (min_target_script_share "
                f"{cfg.min_target_script_share}); {score}",
            )
        if (
            cfg.max_untranslated_share is not None
            and untranslated is not None
            and untranslated > cfg.max_untranslated_share
        ):
            return (
                "untranslated_prose",
                f"{untranslated:.0%} of the source sentences are unchanged in the translation "
                f"(max_untranslated_share {cfg.max_untranslated_share}); {score}",
            )
        if cfg.max_repetition is not None and (s["repetition"] or 0.0) > cfg.max_repetition:
            return (
                "repetitive_translation",
                f"{s['repetition']:.0%} of word 3-grams repeat (max_repetition {cfg.max_repetition}); {score}",
            )
        ratio = s["length_ratio"]
        if ratio is not None and (
            (cfg.min_length_ratio is not None and ratio < cfg.min_length_ratio)
            or (cfg.max_length_ratio is not None and ratio > cfg.max_length_ratio)
        ):
            return (
                "length_ratio",
                f"prose length ratio {ratio:.2f} outside [{cfg.min_length_ratio}, {cfg.max_length_ratio}]; {score}",
            )
        if (
            cfg.min_round_trip_chrf is not None
            and s["scored"]
            and s["round_trip_chrf"] < cfg.min_round_trip_chrf
        ):
            return (
                "low_round_trip_chrf",
                f"{score} below min_round_trip_chrf {cfg.min_round_trip_chrf}",
            )
        return None
