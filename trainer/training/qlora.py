"""QLoRA fine-tuning on a published dataset version: transformers + peft + bitsandbytes.

The dataset's files are verified against its manifest before anything loads (a mismatch refuses
to train); the output folder gets the adapter, the tokenizer, ``provenance.json`` (dataset name,
version, content hash, every file's sha256, the full training config, library versions, final
metrics) and a model card that says the same.
"""

from __future__ import annotations

import json
import logging
import math
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dataset_builder.errors import UserError
from trainer import outdir
from trainer.preflight import loading, locate
from trainer.training.adapter_card import model_card
from trainer.training.config import TrainConfig
from trainer.training.data import Collator, tokenize_split
from trainer.versions import installed

log = logging.getLogger("trainer")
LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "dataset-builder-ru-code",
)
PROVENANCE = "provenance.json"
# Settings that make a checkpoint belong to a run: resuming with any of them changed would continue
# one run's weights, optimizer state and data order under another run's name.
RUN_KEYS = (
    "train_split",
    "load_in_4bit",
    "bnb_4bit_quant_type",
    "bnb_4bit_use_double_quant",
    "compute_dtype",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "max_length",
    "seed",
)


def _device(cfg: TrainConfig) -> str:
    import torch

    if cfg.device != "auto":
        return cfg.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_base(base: str, cfg: TrainConfig, device: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = getattr(torch, cfg.compute_dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, "device_map": {"": device if device == "cpu" else 0}}
    if cfg.load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=cfg.bnb_4bit_use_double_quant,
            bnb_4bit_compute_dtype=dtype,
        )
    return AutoModelForCausalLM.from_pretrained(base, **kwargs)


def dataset_provenance(ref: str, registry: str | None) -> tuple[Any, dict[str, Any]]:
    """Load a verified version and describe it; a version that fails verification is refused."""
    import dataset_builder
    from dataset_builder.api import resolve

    info = resolve(ref, registry)
    ds = dataset_builder.load(info.ref, registry=registry, verify=True)
    m = info.manifest
    return ds, {
        "ref": ref,
        "name": m["name"],
        "version": m["version"],
        "content_hash": m["content_hash"],
        "files": {k: v["sha256"] for k, v in m["files"].items()},
        "splits": {k: v["rows"] for k, v in m["splits"].items()},
    }


def run_identity(cfg: TrainConfig, base: str, dataset: dict[str, Any]) -> dict[str, Any]:
    settings = cfg.model_dump(mode="json")
    return {
        "base": base,
        "dataset": f"{dataset['name']}@{dataset['version']}",
        "content_hash": dataset["content_hash"],
        **{k: settings[k] for k in RUN_KEYS},
    }


def _same_run(out: Path, started_as: dict[str, Any] | None, now: dict[str, Any]) -> None:
    if started_as is None:
        return
    for key, value in now.items():
        if started_as.get(key) != value:
            raise UserError(
                f"--resume: {out} was started with {key}={started_as.get(key)!r}, this run has "
                f"{key}={value!r}; use --overwrite to start again, or another --out"
            )


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    missing = [f"--{k}" for k in ("dataset", "base", "out") if not getattr(cfg, k)]
    if missing:
        raise UserError(f"train needs {', '.join(missing)} (on the command line or in --config)")
    if resume and overwrite:
        raise UserError("--resume continues the run in --out and --overwrite deletes it: choose one")
    started = datetime.now(UTC)
    out = Path(cfg.out).expanduser()
    # Everything that can be refused is checked before the output folder is touched or a model loads.
    marker = outdir.check_out(out, "train", overwrite=overwrite, resume=resume)
    base = locate(cfg.base, "--base", "model")
    outdir.check_inputs_outside(out, [("--base", base)])
    ds, provenance = dataset_provenance(cfg.dataset, cfg.registry)
    if cfg.train_split not in ds:
        raise UserError(f"{cfg.dataset}: no split {cfg.train_split!r} (splits: {', '.join(ds)})")
    base_id = str(Path(base.ref).resolve()) if base.where == "folder" else base.ref
    identity = run_identity(cfg, base_id, provenance)
    if resume and marker is not None:
        _same_run(out, marker.get("run"), identity)
    elif marker is not None:
        outdir.clear(out)
    outdir.make(out)
    if not (resume and marker is not None):
        outdir.write_marker(out, "train", run=identity)

    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoTokenizer, Trainer, TrainingArguments, set_seed

    set_seed(cfg.seed)
    with loading("--base", cfg.base):
        tokenizer = AutoTokenizer.from_pretrained(base.ref)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_examples, dropped = tokenize_split(tokenizer, ds[cfg.train_split], cfg.max_length)
    eval_examples: list = []
    if cfg.eval_split and cfg.eval_split in ds:
        eval_examples, _ = tokenize_split(tokenizer, ds[cfg.eval_split], cfg.max_length)
    if not train_examples:
        raise UserError(
            f"{cfg.dataset}: no training example has an answer token within max_length {cfg.max_length}"
        )

    device = _device(cfg)
    with loading("--base", cfg.base):
        model = load_base(base.ref, cfg, device)
    if cfg.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model = get_peft_model(
        model,
        LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                   target_modules=cfg.target_modules, task_type="CAUSAL_LM"),
    )  # fmt: skip

    from datasets import Dataset

    def to_ds(examples: list) -> Dataset:
        return Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in examples])

    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps if cfg.warmup_steps > 0 else cfg.warmup_ratio,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        optim=cfg.optim,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        gradient_checkpointing=cfg.gradient_checkpointing,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if cfg.eval_steps and eval_examples else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        bf16=cfg.compute_dtype == "bfloat16" and device == "cuda",
        fp16=cfg.compute_dtype == "float16" and device == "cuda",
        use_cpu=device == "cpu",
        report_to="none",
        remove_unused_columns=False,
        disable_tqdm=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=to_ds(train_examples),
        eval_dataset=to_ds(eval_examples) if eval_examples else None,
        data_collator=Collator(tokenizer.pad_token_id),
    )
    checkpoints = out / "checkpoints"
    has_checkpoint = checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))
    if resume and not has_checkpoint:
        log.warning("--resume: no checkpoint in %s yet; training from the start", checkpoints)
    result = trainer.train(resume_from_checkpoint=True if resume and has_checkpoint else None)
    metrics: dict[str, Any] = {"train_loss": result.training_loss, "global_step": result.global_step}
    if eval_examples:
        eval_metrics = trainer.evaluate()
        metrics["eval_loss"] = eval_metrics["eval_loss"]
        metrics["eval_perplexity"] = math.exp(eval_metrics["eval_loss"])
    history = [h for h in trainer.state.log_history if "loss" in h]
    metrics["loss_history"] = [{"step": h["step"], "loss": h["loss"]} for h in history]

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    record = {
        "dataset": provenance,
        "base_model": cfg.base,
        "training_config": cfg.model_dump(mode="json"),
        "examples": {"train": len(train_examples), "train_dropped_no_answer_in_window": dropped,
                     "eval": len(eval_examples)},
        "metrics": metrics,
        "device": device if device == "cpu" else torch.cuda.get_device_name(0),
        "libraries": {name: v for name, v in installed(LIBRARIES).items() if v is not None},
        "python": platform.python_version(),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "resumed": bool(resume and has_checkpoint),
    }  # fmt: skip
    (out / PROVENANCE).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(record), encoding="utf-8")
    return record
