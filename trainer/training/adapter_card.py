"""The model card written beside an adapter: its base, the dataset version it was trained on, the
settings and the final losses, all read from the run's record."""

from __future__ import annotations

from typing import Any


def model_card(record: dict[str, Any]) -> str:
    """The adapter's README.md (Hub model card) from the run's ``provenance.json`` record."""
    d = record["dataset"]
    cfg = record["training_config"]
    m = record["metrics"]
    lines = [
        "---",
        f"base_model: {record['base_model']}",
        "library_name: peft",
        "tags: [qlora, lora, code, python, russian]",
        "---",
        f"# QLoRA adapter for {record['base_model']}",
        "",
        f"Trained on dataset **{d['name']}@{d['version']}** (content hash `{d['content_hash']}`), "
        f"split `{cfg['train_split']}`: {record['examples']['train']} examples. The dataset's files were verified "
        "against its manifest before training; their sha256 are in `provenance.json`.",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| {k} | {cfg[k]} |" for k in ("load_in_4bit", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant",
                                          "compute_dtype", "lora_r", "lora_alpha", "lora_dropout", "target_modules",
                                          "learning_rate", "lr_scheduler_type", "num_train_epochs", "max_steps",
                                          "per_device_train_batch_size", "gradient_accumulation_steps", "optim",
                                          "max_length", "seed")],
        "",
        f"Final train loss {m['train_loss']:.4f}"
        + (f", eval loss {m['eval_loss']:.4f} (perplexity {m['eval_perplexity']:.2f})" if "eval_loss" in m else "")
        + f", after {m['global_step']} steps on {record['device']}.",
        "",
        "Loss is computed on assistant tokens only, each turn's closing EOS included.",
        "",
    ]  # fmt: skip
    return "\n".join(lines)
