"""Training settings: one validated model, loaded from TOML, every field overridable from the CLI.

Like TRL's ``SFTConfig``, every setting is a documented field; unlike a loose dict, an unknown key
or a wrong type in the TOML is an error naming the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dataset_builder.errors import RecipeError
from trainer.settings_file import read_toml


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # what to train on
    dataset: str | None = Field(
        None, description="NAME@VERSION in the local registry, or ORG/NAME@VERSION on the Hub"
    )
    registry: str | None = Field(
        None,
        description="local registry folder (default: $DATASET_BUILDER_REGISTRY or "
        "~/.local/share/dataset-builder/registry)",
    )
    train_split: str = Field("train", description="split to train on")
    eval_split: str | None = Field("test", description="split to evaluate on (none: no evaluation)")
    base: str | None = Field(None, description="base model: a local folder or a Hub id (ORG/NAME)")
    out: str | None = Field(
        None, description="output folder for checkpoints, adapter and provenance (must be empty or new)"
    )
    # quantization
    load_in_4bit: bool = Field(True, description="QLoRA: load the base in 4 bits (bitsandbytes)")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type")
    bnb_4bit_use_double_quant: bool = Field(True, description="quantize the quantization constants too")
    compute_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "bfloat16", description="dtype of 4-bit matmuls (float32 is faster on CPU)"
    )
    # LoRA
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(16, ge=1, description="LoRA alpha")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="LoRA dropout")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="modules that get LoRA adapters",
    )
    # optimisation
    learning_rate: float = Field(2e-4, gt=0.0, description="peak learning rate")
    lr_scheduler_type: str = Field("cosine", description="transformers scheduler name")
    warmup_steps: int = Field(0, ge=0, description="warmup steps (wins over warmup_ratio when > 0)")
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0, description="warmup as a share of all steps")
    num_train_epochs: float = Field(1.0, gt=0.0, description="passes over the train split")
    max_steps: int = Field(-1, description="stop after this many steps (-1: run the epochs)")
    per_device_train_batch_size: int = Field(4, ge=1, description="examples per forward pass in training")
    per_device_eval_batch_size: int = Field(4, ge=1, description="examples per forward pass in evaluation")
    gradient_accumulation_steps: int = Field(
        2, ge=1, description="forward passes per optimizer step (effective batch = batch size x this)"
    )
    optim: str = Field("paged_adamw_8bit", description="transformers optimizer name")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0.0, description="gradient clipping norm")
    max_length: int = Field(2048, ge=8, description="tokens per example; longer rows are truncated")
    gradient_checkpointing: bool = Field(True, description="recompute activations to save memory")
    seed: int = Field(42, description="seed of LoRA initialisation, dropout and data order")
    # bookkeeping
    logging_steps: int = Field(10, ge=1, description="log the loss every N steps")
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N steps (none: at the end only)")
    save_steps: int = Field(200, ge=1, description="checkpoint every N steps")
    save_total_limit: int | None = Field(2, ge=1, description="checkpoints kept (none: all)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available")

    @classmethod
    def load(cls, path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
        data: dict[str, Any] = {}
        where = str(path) if path else "<command line>"
        if path:
            data = read_toml(
                path, what="config file", example="a training settings file such as recipes/train-tiny.toml"
            )
            if "sources" in data or ("dataset" in data and isinstance(data["dataset"], dict)):
                raise RecipeError(
                    f"{path}: is a dataset recipe (for `dataset-builder build`), not training settings; "
                    "give a file such as recipes/train-tiny.toml"
                )
        data.update({k: v for k, v in (overrides or {}).items() if v is not None})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            raise RecipeError(f"{where}: key '{key}': {msg}") from None
