"""Loading the model an evaluation scores, and naming the adapters put on it in a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_model(ref: str, device: str, load_in_4bit: bool) -> tuple[Any, Any, str]:
    """``(model, tokenizer, device)`` of a located base model in eval mode: float32 on the CPU,
    bfloat16 on a GPU, or 4-bit NF4; ``device="auto"`` is the GPU when there is one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    kwargs: dict[str, Any] = {"dtype": dtype}
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )  # fmt: skip
        kwargs["device_map"] = {"": device if device == "cpu" else 0}
    model = AutoModelForCausalLM.from_pretrained(ref, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(ref)
    if not load_in_4bit:
        model.to(device)
    model.eval()
    return model, tokenizer, device


def adapter_record(adapter: str) -> dict[str, Any]:
    """Where an adapter was read from and the dataset version it was trained on (from the
    ``provenance.json`` train writes; None for an adapter from elsewhere)."""
    provenance = Path(adapter) / "provenance.json"
    dataset = json.loads(provenance.read_text(encoding="utf-8"))["dataset"] if provenance.is_file() else None
    return {"path": str(adapter), "dataset": dataset}


def adapter_labels(adapters: list[str]) -> list[str]:
    """A report's column for each adapter: its folder's name, primed until it is unique and is not
    ``base``."""
    labels: list[str] = []
    for adapter in adapters:
        label = Path(adapter).name or adapter
        while label in labels or label == "base":
            label += "'"
        labels.append(label)
    return labels
