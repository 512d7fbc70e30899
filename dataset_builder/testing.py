"""Tiny real models built offline, for tests and for benchmarks of the code paths around them.

Nothing here is a stand-in for a component: each builder makes a real, tiny instance of the format
the toolkit consumes (an Argos Translate package with a CTranslate2 model, SentencePiece model and
MiniSBD sentence splitter), with random weights, from local text only.
"""

from __future__ import annotations

import json
import random
import shutil
import zipfile
from pathlib import Path

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
