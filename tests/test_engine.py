"""The translation engine's batching: every input once, within its limits, and translations the
same as CTranslate2 gives one sentence at a time, whatever the batches."""

from __future__ import annotations

import os
import random

import pytest

from dataset_builder.translation.engine import DecodeSettings, Engine, RuntimeSettings, batches


def test_batches_cover_every_input_within_limits() -> None:
    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.randint(1, 60) for _ in range(rng.randint(0, 120))]
        examples, tokens = rng.choice([0, 1, 5, 32]), rng.choice([40, 100, 2048])
        found = batches(lengths, examples, tokens)
        flat = [i for b in found for i in b]
        assert sorted(flat) == list(range(len(lengths)))
        # Longest first, ties in input order.
        assert flat == sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
        for batch in found:
            widest = max(lengths[i] for i in batch)
            assert len(batch) == 1 or widest * len(batch) <= tokens
            assert not examples or len(batch) <= examples
        # Greedy: a batch was closed only because the next input did not fit.
        for batch in found[:-1]:
            widest = lengths[batch[0]]
            assert (examples and len(batch) == examples) or widest * (len(batch) + 1) > tokens


def _sentences(n: int) -> list[str]:
    rng = random.Random(1)
    words = ["the", "list", "sort", "value", "function", "returns", "a", "new", "string", "of", "keys"]
    return [
        " ".join(rng.choice(words) for _ in range(rng.randint(1, 15))).capitalize() + "." for _ in range(n)
    ]


@pytest.mark.parametrize("beam", [4, 1])
def test_engine_translates_as_one_sentence_at_a_time(tiny_argos: dict, beam: int) -> None:
    import ctranslate2
    import sentencepiece as spm

    package = tiny_argos["package"]
    sentences = _sentences(150)
    sp = spm.SentencePieceProcessor(model_file=str(package.path / "sentencepiece.model"))
    # compute_type "auto", as the engine's default: int8 where the CPU has it.
    alone = ctranslate2.Translator(
        str(package.path / "model"), device="cpu", compute_type="auto", inter_threads=1, intra_threads=1
    )
    expected = []
    encoded = sp.encode(sentences, out_type=str)
    # Inputs over max_input_tokens would be translated in pieces: not what this test is about.
    assert max(map(len, encoded)) <= DecodeSettings().max_input_tokens
    for tokens in encoded:
        (result,) = alone.translate_batch(
            [tokens], beam_size=beam, length_penalty=0.2, replace_unknowns=True, max_decoding_length=256
        )
        text = sp.decode_pieces(result.hypotheses[0]).replace("\u2581", " ")
        expected.append(text[1:] if text.startswith(" ") else text)
    decode = DecodeSettings(beam_size=beam)
    for runtime in (
        RuntimeSettings(device="cpu"),
        RuntimeSettings(device="cpu", batch_examples=3, batch_tokens=64, inter_threads=3),
        RuntimeSettings(device="cpu", batch_examples=0, batch_tokens=100_000, inter_threads=1),
    ):
        assert Engine(package, decode, runtime).translate(sentences) == expected, runtime
    assert any(expected)


def test_cpu_defaults_one_translator_per_core(tiny_argos: dict) -> None:
    engine = Engine(tiny_argos["package"], runtime=RuntimeSettings(device="cpu"))
    assert engine.translator.num_translators == (os.cpu_count() or 1)
    assert engine.batch_examples == 32  # 128 hypotheses at beam 4
    greedy = Engine(tiny_argos["package"], DecodeSettings(beam_size=1), RuntimeSettings(device="cpu"))
    assert greedy.batch_examples == 128
