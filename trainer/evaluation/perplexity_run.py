"""``qlora-trainer perplexity``: a base model and any number of adapters scored on eval sets, with
the conventions of :mod:`trainer.evaluation.perplexity`, written as one report."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from trainer import outdir
from trainer.evaluation.evalsets import load_specs, resolve
from trainer.evaluation.model_loading import adapter_labels, adapter_record, load_model
from trainer.evaluation.perplexity import EvalSettings, evaluate_model
from trainer.evaluation.perplexity_report import markdown_table, notes, perplexity_chart
from trainer.evaluation.report import report_files, write_report
from trainer.preflight import loading, locate


def run_evaluation(
    base: str,
    adapters: list[str],
    eval_entries: list[str],
    out: str | Path,
    settings: EvalSettings,
    *,
    registry: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    out = Path(out).expanduser()
    outdir.check_out(out, "perplexity", overwrite=overwrite)
    found_base = locate(base, "--base", "model")
    found_adapters = [locate(a, "--adapter", "adapter") for a in adapters]
    outdir.check_inputs_outside(out, [("--base", found_base)] + [("--adapter", a) for a in found_adapters])
    specs = load_specs(eval_entries)
    sets = [resolve(spec, registry, limit=settings.limit) for spec in specs]
    with loading("--base", base):
        model, tokenizer, _ = load_model(found_base.ref, settings.device, settings.load_in_4bit)
    results: dict[str, dict[str, Any]] = {
        "base": {s.name: evaluate_model(model, tokenizer, s.texts, settings) for s in sets}
    }
    adapter_info = {}
    for label, adapter, found in zip(adapter_labels(adapters), adapters, found_adapters, strict=True):
        from peft import PeftModel

        with loading("--adapter", adapter):
            peft_model = PeftModel.from_pretrained(model, found.ref)
        peft_model.eval()
        results[label] = {s.name: evaluate_model(peft_model, tokenizer, s.texts, settings) for s in sets}
        adapter_info[label] = adapter_record(adapter)
        model = peft_model.unload()
    report = {
        "conventions": {
            **asdict(settings),
            "tokenizer": getattr(tokenizer, "name_or_path", base),
            "perplexity": "exp(total NLL / scored tokens) over the documents joined into one stream",
            "bits_per_byte": "total NLL / ln 2 / UTF-8 bytes of the joined text",
        },
        "base_model": base,
        "adapters": adapter_info,
        "sets": {s.name: s.source for s in sets},
        "results": results,
    }
    table = markdown_table(report)
    with outdir.staged(out, "perplexity") as work:
        write_report(work, "perplexity", report, "Perplexity", notes(report), table, perplexity_chart(report))
    report["markdown"] = table
    report["files"] = [str(out / name) for name in report_files("perplexity")]
    return report
