"""Merge a LoRA adapter into its base model and save an fp16 model, like the paper's merged release."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from trainer import outdir
from trainer.preflight import loading, locate
from trainer.training.qlora import PROVENANCE


def merge(
    base: str, adapter: str | Path, out: str | Path, dtype: str = "float16", *, overwrite: bool = False
) -> Path:
    out = Path(out).expanduser()
    outdir.check_out(out, "merge", overwrite=overwrite)
    found_base = locate(base, "--base", "model")
    found_adapter = locate(str(adapter), "--adapter", "adapter")
    outdir.check_inputs_outside(out, [("--base", found_base), ("--adapter", found_adapter)])

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with outdir.staged(out, "merge") as work:
        with loading("--base", base):
            model = AutoModelForCausalLM.from_pretrained(found_base.ref, dtype=getattr(torch, dtype))
        # The adapter's own tokenizer when it saved one (ours always do), else the base's.
        own_tokenizer = (
            found_adapter.where != "folder" or (Path(found_adapter.ref) / "tokenizer_config.json").is_file()
        )
        with loading("--adapter", str(adapter)):
            merged = PeftModel.from_pretrained(model, found_adapter.ref).merge_and_unload()
            tokenizer = AutoTokenizer.from_pretrained(found_adapter.ref if own_tokenizer else found_base.ref)
        merged.save_pretrained(work, safe_serialization=True)
        tokenizer.save_pretrained(work)
        provenance_path = Path(adapter) / PROVENANCE
        if provenance_path.is_file():
            record: dict[str, Any] = json.loads(provenance_path.read_text(encoding="utf-8"))
            record["merged"] = {"base": base, "adapter": str(adapter), "dtype": dtype}
            (work / PROVENANCE).write_text(
                json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            if (Path(adapter) / "README.md").is_file():
                shutil.copy(Path(adapter) / "README.md", work / "README.md")
    return out
