"""Merge a LoRA adapter into its base model and save an fp16 model, like the paper's merged release."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from trainer.qlora import PROVENANCE


def merge(base: str, adapter: str | Path, out: str | Path, dtype: str = "float16") -> Path:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(out)
    provenance_path = Path(adapter) / PROVENANCE
    if provenance_path.is_file():
        record: dict[str, Any] = json.loads(provenance_path.read_text(encoding="utf-8"))
        record["merged"] = {"base": base, "adapter": str(adapter), "dtype": dtype}
        (out / PROVENANCE).write_text(
            json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if (Path(adapter) / "README.md").is_file():
            shutil.copy(Path(adapter) / "README.md", out / "README.md")
    return out
