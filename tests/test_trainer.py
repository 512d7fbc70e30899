from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT

from dataset_builder.errors import RecipeError, UserError, VerificationError
from dataset_builder.registry.store import Registry
from trainer.training.config import TrainConfig
from trainer.training.data import IGNORE, tokenize

REF = "python-ru-sample@0.1.0"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, sample_registry: Registry, tiny_mistral: Path) -> dict:
    return {"root": tmp_path_factory.mktemp("trainer"), "registry": sample_registry, "base": tiny_mistral}


def _config(setup: dict, out: Path, **overrides) -> TrainConfig:
    settings = {
        "dataset": REF, "registry": str(setup["registry"].root), "base": str(setup["base"]), "out": str(out),
        "compute_dtype": "float32", "lora_r": 8, "lora_alpha": 16, "learning_rate": 2e-2, "warmup_steps": 0,
        "warmup_ratio": 0.0, "lr_scheduler_type": "constant", "max_steps": 10, "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1, "max_length": 128, "logging_steps": 2, "save_steps": 5,
    }  # fmt: skip
    settings.update(overrides)
    return TrainConfig.load(None, settings)


def test_loss_mask_covers_answers_and_their_eos(setup: dict) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(setup["base"]))
    messages = [
        {"role": "system", "content": ""},
        {"role": "user", "content": "Как отсортировать список?"},
        {"role": "assistant", "content": "Используйте `sorted(xs)`."},
        {"role": "user", "content": "А по убыванию?"},
        {"role": "assistant", "content": "sorted(xs, reverse=True)"},
    ]
    ex = tokenize(tokenizer, messages, max_length=512)
    assert ex.input_ids == tokenizer(tokenizer.apply_chat_template(messages, tokenize=False)).input_ids
    runs, current = [], []
    for token, label in zip(ex.input_ids, ex.labels, strict=True):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    assert len(runs) == 2
    assert [r[-1] for r in runs] == [2, 2]  # each assistant turn's </s> is inside the loss
    decoded = [tokenizer.decode(r) for r in runs]
    assert decoded[0].strip() == "Используйте `sorted(xs)`.</s>"
    assert decoded[1].strip() == "sorted(xs, reverse=True)</s>"
    text = tokenizer.decode([t for t, lab in zip(ex.input_ids, ex.labels, strict=True) if lab == IGNORE])
    assert "<|user|>" in text and "<|assistant|>" in text and "Как отсортировать" in text


def test_train_lowers_loss_and_writes_provenance(setup: dict) -> None:
    from trainer.training.qlora import train

    out = setup["root"] / "adapter"
    record = train(_config(setup, out))
    losses = [h["loss"] for h in record["metrics"]["loss_history"]]
    assert losses[-1] < losses[0] - 0.1, losses
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    manifest = setup["registry"].get(REF).manifest
    assert provenance["dataset"]["content_hash"] == manifest["content_hash"]
    assert provenance["dataset"]["files"]["data/train-00000-of-00001.parquet"] == manifest["files"][
        "data/train-00000-of-00001.parquet"]["sha256"]  # fmt: skip
    assert provenance["training_config"]["lora_r"] == 8 and "peft" in provenance["libraries"]
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert manifest["content_hash"] in card and REF in card
    setup["adapter"] = out


def test_resume_continues_from_the_last_checkpoint(setup: dict) -> None:
    from trainer.training.qlora import train

    out = setup["root"] / "resume"
    # What is checked is which steps run and which checkpoints are kept: small steps do.
    small = {"per_device_train_batch_size": 2, "max_length": 64, "logging_steps": 1}
    first = train(_config(setup, out, max_steps=4, save_steps=2, **small))
    assert first["metrics"]["global_step"] == 4 and (out / "checkpoints" / "checkpoint-4").is_dir()
    # Another run's settings cannot continue this run's checkpoints; nothing is touched.
    files = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(UserError, match=r"was started with lora_r=8, this run has lora_r=16"):
        train(_config(setup, out, max_steps=6, lora_r=16, **small), resume=True)
    with pytest.raises(UserError, match="holds an earlier training run; use --resume to continue it"):
        train(_config(setup, out, max_steps=6, **small))
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == files
    second = train(_config(setup, out, max_steps=6, save_steps=2, **small), resume=True)
    assert second["resumed"] and second["metrics"]["global_step"] == 6
    steps = [h["step"] for h in second["metrics"]["loss_history"]]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # steps 1-4 come from the checkpoint, not redone
    # --overwrite starts again in an empty folder: no checkpoint of the earlier run is left to mix in.
    third = train(_config(setup, out, max_steps=2, save_steps=2, **small), overwrite=True)
    assert not third["resumed"] and third["metrics"]["global_step"] == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2"]


def test_merge_reloads(setup: dict) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.training.merge import merge

    out = merge(str(setup["base"]), setup["adapter"], setup["root"] / "merged")
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    base = AutoModelForCausalLM.from_pretrained(str(setup["base"]))
    assert merged.dtype == torch.float16
    q_merged = merged.model.layers[0].self_attn.q_proj.weight.float()
    q_base = base.model.layers[0].self_attn.q_proj.weight.float()
    assert not torch.allclose(q_merged, q_base, atol=1e-4)  # the adapter is in the weights
    assert json.loads((out / "provenance.json").read_text(encoding="utf-8"))["merged"]["dtype"] == "float16"
    with torch.no_grad():
        logits = merged(torch.tensor([[1, 523, 28766]])).logits
    assert logits.shape == (1, 3, 32000)


def test_tampered_dataset_is_refused(setup: dict, tmp_path: Path) -> None:
    from trainer.training.qlora import train

    registry = Registry(tmp_path / "reg")
    shutil.copytree(setup["registry"].root, registry.root)
    data = registry.get(REF).path / "data" / "train-00000-of-00001.parquet"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(VerificationError, match="refusing to load"):
        train(_config(setup, tmp_path / "out", registry=str(registry.root)))
    assert not (tmp_path / "out").exists()


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("lora_r = 8\nlearning_rat = 1e-4\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"bad\.toml: key 'learning_rat': unknown key"):
        TrainConfig.load(path)
    for preset in ("train-paper-analog.toml", "train-alignment-handbook-qlora.toml"):
        TrainConfig.load(ROOT / "recipes" / preset)
