"""Tiny real models built offline, and recipes written from parts, for tests and for benchmarks of
the code paths around them.

Nothing here is a stand-in for a component: each builder makes a real, tiny instance of the format
the toolkit consumes (an Argos Translate package with a CTranslate2 model, SentencePiece model and
MiniSBD sentence splitter), with random weights, from local text only; a recipe is a real TOML
file that the toolkit's own loader reads and validates.
"""

from __future__ import annotations

import json
import random
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Settings of a recipe, as the TOML file holds them: {key: value}, a value a string, number,
# boolean, path, list or table of those (a list of tables for ``stages.eval_sets``).
Table = Mapping[str, Any]

# Output checks opened wide: a package with random weights (``build_tiny_argos_package``) or an
# adversarial translator writes what no real model would, and the code paths behind the checks are
# what a test or benchmark runs.
OPEN_CHECKS: dict[str, Any] = {
    "verify_language": False,
    "min_length_ratio": 0.0,
    "max_length_ratio": 1000000.0,
    "check_repetition": False,
}
# Every row may be rejected: the rejected table is what the test or benchmark reads.
KEEP_REJECTED: dict[str, Any] = {"max_rejected_fraction": 1.0}
# The stages most tests build through: normalize, quality, exact duplicates, an 80/20 split, format.
SIMPLE_STAGES: tuple[Table, ...] = (
    {"type": "normalize"},
    {"type": "quality"},
    {"type": "exact_dedup"},
    {"type": "split", "test_ratio": 0.2, "seed": 1},
    {"type": "format"},
)


def alpaca_source(path: str = "data.jsonl", name: str = "src", **settings: Any) -> dict[str, Any]:
    """A local source of alpaca records (instruction, input, output) read from ``path``."""
    return {"name": name, "adapter": "alpaca", "paths": [path], **settings}


def translate_stage(**settings: Any) -> dict[str, Any]:
    """A translate stage with its output checks opened wide (:data:`OPEN_CHECKS`), then ``settings``."""
    return {"type": "translate", **OPEN_CHECKS, **settings}


def insert_stage(stages: Sequence[Table], stage: Table, before: str) -> list[Table]:
    """``stages`` with ``stage`` placed before the first stage of type ``before``."""
    at = next(i for i, s in enumerate(stages) if s["type"] == before)
    return [*stages[:at], stage, *stages[at:]]


def code_safety_recipe(
    data: str | Path,
    *,
    name: str,
    engine: str | None = None,
    packages_dir: str | Path | None = None,
    **translate: Any,
) -> str:
    """The recipe that code-safety tests and benchmarks build: English alpaca rows from ``data``,
    normalized, translated (by ``engine``, or the Argos package in ``packages_dir``; no cache, checks
    opened wide) and published whole, every rejected row kept."""
    stage = translate_stage(from_lang="en", to_lang="ru", cache=False, **translate)
    if engine is not None:
        stage["engine"] = engine
    if packages_dir is not None:
        stage["packages_dir"] = packages_dir
    return recipe_text(
        [alpaca_source(str(data), name="codealpaca-new", language="en", license="cc-by-nc-4.0")],
        [{"type": "normalize"}, stage, {"type": "split", "test_ratio": 0.0}],
        publish=KEEP_REJECTED,
        name=name,
        version="0.0.1",
        description="code safety of translated rows",
        license="cc-by-nc-4.0",
        language=["ru"],
    )


def recipe_text(
    sources: Table | Sequence[Table] | str,
    stages: Sequence[Table] | str = SIMPLE_STAGES,
    *,
    name: str = "t",
    version: str = "1.0.0",
    publish: Table | str | None = None,
    run: Table | None = None,
    **dataset: Any,
) -> str:
    """A recipe's TOML text: ``[dataset]`` (name, version and ``dataset``'s keys), ``[[sources]]``
    (one table or several), ``[[stages]]``, ``[publish]`` and ``[run]``. ``sources``, ``stages`` and
    ``publish`` may also be TOML text of their own, written in as it is."""
    if isinstance(sources, Mapping):
        sources = [sources]
    parts = [_table("dataset", {"name": name, "version": version, **dataset})]
    parts += [sources if isinstance(sources, str) else toml_tables("sources", sources)]
    parts += [stages if isinstance(stages, str) else toml_tables("stages", stages)]
    if isinstance(publish, str):
        parts.append(publish)
    elif publish:
        parts.append(_table("publish", publish))
    if run:
        parts.append(_table("run", run))
    return "\n".join(parts) + "\n"


def write_recipe(
    folder: Path,
    sources: Table | Sequence[Table] | str,
    stages: Sequence[Table] | str = SIMPLE_STAGES,
    *,
    file: str = "recipe.toml",
    **recipe: Any,
) -> Path:
    """:func:`recipe_text` written to ``folder/file`` (paths in it are relative to ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    path.write_text(recipe_text(sources, stages, **recipe), encoding="utf-8")
    return path


def toml_tables(header: str, tables: Sequence[Table]) -> str:
    """``tables`` as a TOML array of tables named ``header`` (``[[sources]]``, ``[[stages]]``)."""
    return "".join(_table(header, table, array=True) for table in tables)


def version_rows(version: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What a published version folder holds, read with pyarrow alone: the rows of every split its
    manifest lists (in that order), and its rejected rows."""
    import pyarrow.parquet as pq

    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    published = [
        r for s in manifest["splits"].values() for r in pq.read_table(version / s["file"]).to_pylist()
    ]
    rejected = pq.read_table(version / "rejected" / "rejected.parquet").to_pylist()
    return published, rejected


def _table(header: str, table: Table, array: bool = False) -> str:
    lines = [f"[[{header}]]" if array else f"[{header}]"]
    lines += [f"{key} = {_value(value)}" for key, value in table.items() if value is not None]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = value.as_posix()
    if isinstance(value, str):
        # A JSON string is a TOML basic string: the same quotes and escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{key} = {_value(v)}" for key, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


EN_TEXT = [
    "Write a Python function that returns the sum of a list of numbers.",
    "Sort the dictionary by value and print the result.",
    "Explain how this code works and what it prints.",
    "Create a class that represents a bank account with deposit and withdraw methods.",
    "Read a CSV file and count the rows that match a condition.",
    "The function should handle empty input and invalid values.",
    "Use a list comprehension to filter the even numbers.",
    "Here is the implementation of the algorithm.",
]
RU_TEXT = [
    "Напишите функцию на Python, которая возвращает сумму списка чисел.",
    "Отсортируйте словарь по значению и выведите результат.",
    "Объясните, как работает этот код и что он выводит.",
    "Создайте класс банковского счёта с методами пополнения и снятия.",
    "Прочитайте CSV-файл и посчитайте строки, подходящие под условие.",
    "Функция должна обрабатывать пустой ввод и некорректные значения.",
    "Используйте генератор списка, чтобы отобрать чётные числа.",
    "Вот реализация алгоритма. Ёлка, йод, съешь ещё этих мягких булок.",
]


def _train_sentencepiece(folder: Path, vocab_size: int) -> Path:
    import sentencepiece as spm

    rng = random.Random(0)
    lines = []
    for _ in range(40):
        lines.extend(rng.sample(EN_TEXT, len(EN_TEXT)))
        lines.extend(rng.sample(RU_TEXT, len(RU_TEXT)))
    prefix = folder / "sentencepiece"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        character_coverage=1.0,
        model_type="unigram",
        byte_fallback=False,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def _minisbd_model(path: Path) -> None:
    """A MiniSBD sentence splitter in MiniSBD's ONNX format: '.', '!' and '?' end sentences."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    units = ["<PAD>", "<UNK>", *[chr(c) for c in range(32, 127)], *"абвгдеёжзийклмнопрстуфхцчшщъыьэюя"]
    table = np.full((len(units), 5), -10.0, dtype=np.float32)
    table[:, 0] = 10.0
    for mark in ".!?":
        table[units.index(mark)] = [-10.0, -10.0, 10.0, -10.0, -10.0]
    nodes = [
        helper.make_node("Gather", ["t", "units"], ["g"], axis=0),
        helper.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("ReduceSum", ["features", "axes"], ["s"], keepdims=1),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0.0, np.float32))),
        helper.make_node("Mul", ["s", "zero"], ["z"]),
        helper.make_node("Add", ["g", "z"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "minisbd",
        [
            helper.make_tensor_value_info("units", TensorProto.INT64, ["b", "t"]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["b", "t", 1]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "t", 5])],
        [numpy_helper.from_array(table, "t")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    vocab = {"lang": "en", "idx": 0, "cutoff": 0, "lower": False,
             "_unit2id": {u: i for i, u in enumerate(units)}, "_id2unit": units}  # fmt: skip
    meta = {"lang_code": "en", "lexicon": "null", "vocab": json.dumps(vocab),
            "config": json.dumps({"feat_funcs": ["space_before"], "max_seqlen": 300, "batch_size": 32})}  # fmt: skip
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def build_tiny_argos_package(
    out: Path,
    *,
    from_code: str = "en",
    to_code: str = "ru",
    version: str = "0.0.1",
    seed: int = 0,
    init_std: float = 0.5,
    eos_bias: float = 6.0,
) -> Path:
    """Build ``translate-{from}_{to}-tiny.argosmodel`` in ``out``: SentencePiece trained on local
    text, a random 1+1-layer Marian model converted by CTranslate2, a MiniSBD splitter, zipped in
    Argos layout. Returns the archive path."""
    import ctranslate2
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    out.mkdir(parents=True, exist_ok=True)
    work = out / "tiny-build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    spm_path = _train_sentencepiece(work, vocab_size=180)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    vocab["<pad>"] = len(vocab)
    hf_dir = work / "hf"
    hf_dir.mkdir()
    (hf_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    shutil.copy(spm_path, hf_dir / "source.spm")
    shutil.copy(spm_path, hf_dir / "target.spm")
    tokenizer = MarianTokenizer(
        str(hf_dir / "source.spm"), str(hf_dir / "target.spm"), str(hf_dir / "vocab.json"),
        source_lang=from_code, target_lang=to_code,
    )  # fmt: skip
    tokenizer.save_pretrained(hf_dir)
    torch.manual_seed(seed)
    config = MarianConfig(
        vocab_size=len(vocab), d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_position_embeddings=256, pad_token_id=vocab["<pad>"], eos_token_id=vocab["</s>"],
        decoder_start_token_id=vocab["<pad>"], share_encoder_decoder_embeddings=True, init_std=init_std,
    )  # fmt: skip
    model = MarianMTModel(config)
    # Random weights never choose to stop; a bias towards </s> ends outputs after a few dozen
    # tokens, so tests decode quickly and outputs still vary with the input.
    model.final_logits_bias[0, vocab["</s>"]] = eos_bias
    model.save_pretrained(hf_dir)

    name = f"translate-{from_code}_{to_code}-tiny"
    pkg = work / name
    pkg.mkdir()
    ctranslate2.converters.TransformersConverter(str(hf_dir)).convert(str(pkg / "model"), force=True)
    shutil.copy(spm_path, pkg / "sentencepiece.model")
    (pkg / "minisbd").mkdir()
    _minisbd_model(pkg / "minisbd" / f"{from_code}.onnx")
    metadata = {
        "package_version": version, "argos_version": "1.9", "from_code": from_code, "from_name": from_code,
        "to_code": to_code, "to_name": to_code, "type": "translate", "links": [],
    }  # fmt: skip
    (pkg / "metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    archive = out / f"{name}.argosmodel"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(pkg.rglob("*")):
            zf.write(path, path.relative_to(work).as_posix())
    shutil.rmtree(work)
    return archive


def build_tiny_mistral(out: Path, *, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    """A random Mistral-architecture causal LM with zephyr-7b-beta's real tokenizer (32,000 pieces,
    Zephyr chat template), small enough to train on a CPU in seconds."""
    import torch
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    from dataset_builder.chat.tokenizer import write_zephyr_tokenizer

    write_zephyr_tokenizer(out)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    torch.manual_seed(seed)
    config = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=1,
        eos_token_id=2, pad_token_id=2, tie_word_embeddings=False,
    )  # fmt: skip
    MistralForCausalLM(config).save_pretrained(out)
    return out
