"""The card's translation sections: what translated the rows, what was checked, how well it went."""

from __future__ import annotations

from typing import Any

from dataset_builder.publishing.card_markdown import public_text


def translated_rows(manifest: dict[str, Any]) -> int:
    return sum(
        int(st["counters"].get("rows_translated", 0))
        for st in manifest["stages"]
        if st["stage"].startswith("translate")
    )


def translation_section(manifest: dict[str, Any]) -> list[str]:
    parts = []
    for tr in [st for st in manifest["stages"] if st["stage"].startswith("translate")]:
        c = tr["counters"]
        if "skipped" in c:
            parts.append(
                f"#### Translation\n\nSkipped: {public_text(str(c['skipped']))}. Rows that were to be translated "
                "keep their original language and are labelled with it (see the per-language counts).\n"
            )
        elif "package" in c:
            pkg = c["package"]
            # Rows the stage dropped were sent for translation too: "0 rows translated" alone would
            # hide 96 attempts that all failed the checks.
            checks = {k: int(n) for k, n in (tr.get("dropped") or {}).items() if k != "other_language"}
            failed = sum(checks.values())
            done = int(c.get("rows_translated", 0))
            reasons = ", ".join(f"{k} {n}" for k, n in sorted(checks.items()))
            attempts = (
                f" of {done + failed} attempted ({failed} failed the checks: {reasons})" if failed else ""
            )
            parts.append(
                f"#### Translation\n\nArgos package `{pkg['code']}` {pkg['version']} ({pkg['from']}->{pkg['to']}, "
                f"sha256 `{pkg['sha256']}`), beam {c['decode']['beam_size']}, length penalty "
                f"{c['decode']['length_penalty']}, on {c.get('device', '?')}. {done} rows "
                f"translated{attempts}, {c.get('routed_already_target_language', 0)} already in the target language; "
                f"{c.get('sentences_translated', 0)} sentences sent to the model, {c.get('cache_hits', 0)} taken "
                "from the cache. Code (fenced, indented and bare blocks, inline code, identifiers, paths, URLs) "
                "was kept byte-identical; rows failing the checks are in `rejected/`.\n"
            )
        elif "engine" in c:
            eng = c["engine"]
            version = f" version `{eng['version']}`" if eng.get("version") else ""
            parts.append(
                f"#### Translation\n\nPython translator `{eng['module']}:{eng['function']}`{version} "
                f"({_engine_origin(eng)}, module sha256 "
                f"`{eng['sha256']}`). {c.get('rows_translated', 0)} rows translated, "
                f"{c.get('routed_already_target_language', 0)} already in the target language; "
                f"{c.get('sentences_translated', 0)} sentences sent to the translator, {c.get('cache_hits', 0)} "
                "taken from the cache. Code was kept byte-identical and checked as for any engine; rows failing "
                "the checks are in `rejected/`.\n"
            )
    return parts


def mt_quality_section(manifest: dict[str, Any]) -> list[str]:
    """The round-trip scoring: how, how many rows, and the distribution of scores (every row scored,
    before the stage's filters)."""
    parts = []
    settings = [st for st in manifest["recipe"]["stages"] if st["type"] == "mt_quality"]
    stats = [st for st in manifest["stages"] if st["stage"].startswith("mt_quality")]
    for cfg, st in zip(settings, stats, strict=False):
        c = st["counters"]
        if not sum(int(c.get(k, 0)) for k in ("rows_scored", "rows_not_sampled", "rows_without_prose")):
            continue  # no row was translated: nothing was scored
        if "engine" in c:
            by = f"the Python translator `{c['engine']['module']}:{c['engine']['function']}`"
        elif "package" in c:
            by = f"Argos package `{c['package']['code']}` {c['package']['version']}"
        else:
            by = "no back-translation (" + public_text(str(c.get("round_trip_skipped", "not sampled"))) + ")"
        scored = int(c.get("rows_scored", 0))
        mean = f", mean {c.get('round_trip_chrf_sum', 0) / scored:.1f}" if scored else ""
        bands = [(k.removeprefix("round_trip_chrf_"), v) for k, v in c.items() if k[-1].isdigit()]
        bands = sorted(b for b in bands if b[0][:2].isdigit())
        histogram = ", ".join(f"{band.replace('_', '-')}: {n}" for band, n in bands)
        filters = ", ".join(
            f"{key} {cfg[key]}"
            for key in ("min_round_trip_chrf", "min_target_script_share", "max_untranslated_share",
                        "max_repetition", "min_length_ratio", "max_length_ratio")
            if cfg.get(key) is not None
        )  # fmt: skip
        parts.append(
            f"#### Translation quality\n\nEvery translated row has `mt_quality`: the prose (never the code) "
            f"translated back {cfg['from_lang']}->{cfg['to_lang']} by {by} and compared with the original by "
            f"sacrebleu's sentence chrF (round-trip chrF, 0-100), on a seeded share of {cfg['sample_fraction']} "
            f"of the rows (seed {cfg['seed']}), and, for every row, the prose length ratio, the share of "
            f"Cyrillic letters, repeated word 3-grams and the share of source sentences left unchanged. "
            f"{scored} rows scored{mean}" + (f" (by band: {histogram})" if histogram else "") + ". "
            "A high score alone does not mean a good translation (prose left untranslated scores 100), "
            "which is why the cheap signals are checked first"
            + (f"; filters: {filters}" if filters else "")
            + ".\n"
        )
    return parts


def translator_words(translate: list[dict[str, Any]]) -> str:
    engines = [st["counters"]["engine"] for st in translate if "engine" in st["counters"]]
    if not engines:
        return "a small general-purpose model"
    return "the translator " + ", ".join(f"`{e['module']}:{e['function']}`" for e in engines)


def translation_checks(cfg: dict[str, Any]) -> str:
    """The checks a translate stage ran, as the card's limitations name them."""
    checks = ["language"] if cfg.get("verify_language") else []
    checks.append(f"length ratio {cfg.get('min_length_ratio')} to {cfg.get('max_length_ratio')}")
    if cfg.get("max_latin_share", 1.0) < 1.0:
        checks.append(f"Latin share at most {cfg['max_latin_share']}")
    if cfg.get("check_repetition"):
        checks.append("repetition")
    return f", and rows failing its checks ({', '.join(checks)}) were dropped"


def _engine_origin(engine: dict[str, Any]) -> str:
    if engine.get("from_recipe"):
        return "from the recipe"
    if engine.get("registered_by"):
        return f"registered by the installed package `{engine['registered_by']}`"
    return "an installed module"
