"""Sentences in, translations out: the engine a stage's settings name (an Argos package or the
user's Python translator) behind the translation cache.

Used by every stage that translates (translate, and mt_quality's round trip); what the engine is
goes into the stage's counters, for the manifest and the card.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataset_builder.progress import new_bar
from dataset_builder.stages.base import StageContext
from dataset_builder.translation.settings import EngineSettings


class Translator:
    """Sentences in, translations out, through the cache; misses go to the engine in chunks."""

    def __init__(
        self,
        cfg: EngineSettings,
        from_lang: str,
        base_dir: Path,
        ctx: StageContext,
        open_cache: Callable[[Path, str], Any] | None = None,
    ) -> None:
        from dataset_builder.translation.cache import TranslationCache, default_cache_path

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


def _engine(cfg: EngineSettings, from_lang: str, base_dir: Path, ctx: StageContext) -> tuple[Any, str]:
    """The engine that translates ``from_lang`` (``translate(list[str]) -> list[str]``) and its
    cache namespace; what it is goes into the stage's counters, for the manifest and the card."""
    from dataset_builder.translation.python_engine import PythonEngine, is_python_engine

    if is_python_engine(cfg.engine):
        engine = PythonEngine(cfg.engine, from_lang, cfg.to_lang, base_dir, ctx.trust_code)
        ctx.stats.counters["engine"] = engine.describe()
        return engine, engine.cache_namespace()
    from dataset_builder.translation import packages
    from dataset_builder.translation.cache import cache_namespace
    from dataset_builder.translation.engine import DecodeSettings, Engine, RuntimeSettings

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
