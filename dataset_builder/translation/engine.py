"""CTranslate2 + SentencePiece straight from an installed Argos package, many sentences per call.

The defaults are argostranslate's own decoding settings (beam 4, length penalty 0.2, unknown
tokens replaced from the source, the package's target prefix), so a sentence translates exactly as
``argostranslate.translate`` would; the difference is that thousands of sentences go to
``translate_batch`` at once, and that decoding does not turn every ``_`` into a space.

Batching and threading were chosen by measurement (``benchmarks/engine.py``). On CPU each core runs
its own translator thread on its own batches (``inter_threads`` = cores, one intra thread each),
and the engine makes the batches itself: inputs sorted longest first, at most ``batch_examples``
inputs (128 hypotheses: 32 inputs at beam 4, 128 greedy) and ``batch_tokens`` padded tokens each,
all submitted at once so the threads take them as they free up. A few large token batches (what
CTranslate2's own token batching makes of a length-sorted chunk) leave a thread idle at the end of
every beam-search call; greedy decoding, cheap per step, wants the larger batches. On CUDA one
thread drives the device and batches are bounded by tokens only, as large as the budget allows.
Batch composition does not change a translation: padding is masked, and on CPU with one intra
thread per translator the arithmetic of each input is the same in any batch (checked on 1,024 real
sentences, greedy and beam 4, by the benchmark, and on a tiny model by ``tests/test_engine.py``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from dataset_builder.translation.packages import InstalledPackage

if TYPE_CHECKING:
    import ctranslate2

# Hypotheses (inputs x beam) per batch on CPU: 32 inputs at beam 4; 16 or 64 were slower, and
# greedy decoding wants larger batches (benchmarks/engine.py).
CPU_BATCH_HYPOTHESES = 128


@dataclass(frozen=True)
class DecodeSettings:
    beam_size: int = 4
    length_penalty: float = 0.2
    max_decoding_length: int = 256
    replace_unknowns: bool = True
    # Longer inputs are cut at word starts into pieces translated one by one: a Marian model has
    # no position encodings past its training length (CTranslate2 fails the whole batch), and
    # an output is cut at max_decoding_length, so a piece stays well inside both.
    max_input_tokens: int = 128

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class RuntimeSettings:
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    inter_threads: int = 0  # 0: one per core on CPU, 1 on GPU
    intra_threads: int = 0  # 0: 1 on CPU when inter_threads > 1 (two small batches beat one big)
    batch_tokens: int = 2048
    batch_examples: int = 0  # 0: 128 // beam_size on CPU (measured), no limit on CUDA


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """``auto`` on a GPU is int8 weights with float16 arithmetic (Argos models ship int8; float16 is
    what GPU kernels are fast at); on a CPU it stays CTranslate2's own choice, which is what
    argostranslate uses, so outputs stay identical to it."""
    if compute_type == "auto" and device == "cuda":
        return "int8_float16"
    return compute_type


class Engine:
    def __init__(
        self,
        package: InstalledPackage,
        decode: DecodeSettings | None = None,
        runtime: RuntimeSettings | None = None,
    ) -> None:
        import ctranslate2
        import sentencepiece as spm

        self.package = package
        self.decode = decode or DecodeSettings()
        self.runtime = runtime or RuntimeSettings()
        self.device = resolve_device(self.runtime.device)
        cores = os.cpu_count() or 1
        inter = self.runtime.inter_threads or (1 if self.device == "cuda" else cores)
        intra = self.runtime.intra_threads or (0 if self.device == "cuda" else max(1, cores // inter))
        self.translator = ctranslate2.Translator(
            str(package.path / "model"),
            device=self.device,
            compute_type=resolve_compute_type(self.runtime.compute_type, self.device),
            inter_threads=inter,
            intra_threads=intra,
        )
        self.sp = spm.SentencePieceProcessor(model_file=str(package.path / "sentencepiece.model"))
        self.batch_examples = self.runtime.batch_examples or (
            0 if self.device == "cuda" else max(1, CPU_BATCH_HYPOTHESES // self.decode.beam_size)
        )

    def translate(self, sentences: list[str]) -> list[str]:
        """Translate sentences; empty ones stay empty. Order is kept."""
        todo = [i for i, s in enumerate(sentences) if s.strip()]
        out = [""] * len(sentences)
        if not todo:
            return out
        pieces: list[list[str]] = []
        owners: list[int] = []
        for i, tokens in zip(todo, self.sp.encode([sentences[i] for i in todo], out_type=str), strict=True):
            for piece in _windows(tokens, self.decode.max_input_tokens):
                pieces.append(piece)
                owners.append(i)
        results = self._translate_pieces(pieces)
        for i, result in zip(owners, results, strict=True):
            text = self._detokenize(result.hypotheses[0])
            out[i] = f"{out[i]} {text}" if out[i] else text
        return out

    def _translate_pieces(self, pieces: list[list[str]]) -> list[ctranslate2.TranslationResult]:
        """Translate token lists in :func:`batches`, all submitted at once; results in input order."""
        prefix = self.package.target_prefix
        options = {
            "beam_size": self.decode.beam_size,
            "num_hypotheses": 1,
            "length_penalty": self.decode.length_penalty,
            "replace_unknowns": self.decode.replace_unknowns,
            "max_decoding_length": self.decode.max_decoding_length,
        }
        pending = []
        lengths = [len(p) for p in pieces]
        for batch in batches(lengths, self.batch_examples, self.runtime.batch_tokens):
            inputs = [pieces[i] for i in batch]
            futures = self.translator.translate_batch(
                inputs,
                target_prefix=[[prefix]] * len(inputs) if prefix else None,
                max_batch_size=0,
                asynchronous=True,
                **options,
            )
            pending.append((batch, futures))
        results: list = [None] * len(pieces)
        for batch, futures in pending:
            for i, future in zip(batch, futures, strict=True):
                results[i] = future.result()
        return results

    def _detokenize(self, pieces: list[str]) -> str:
        value = self.sp.decode_pieces(pieces).replace("\u2581", " ")
        prefix = self.package.target_prefix
        if prefix and value.startswith(prefix):
            value = value[len(prefix) :]
        return value[1:] if value.startswith(" ") else value


def batches(lengths: list[int], max_examples: int, max_tokens: int) -> list[list[int]]:
    """Indices of inputs of the given lengths in batches, longest inputs first: at most
    ``max_examples`` inputs (0: any number) and ``max_tokens`` padded tokens (longest x count)
    per batch; an input longer than ``max_tokens`` is a batch of its own."""
    out: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: (-lengths[k], k)):
        # Longest first: the batch's first input sets its padded width.
        full = bool(current) and (
            (max_examples and len(current) >= max_examples)
            or lengths[current[0]] * (len(current) + 1) > max_tokens
        )
        if full:
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return out


def _windows(tokens: list[str], size: int) -> list[list[str]]:
    """``tokens`` in pieces of at most ``size``, each cut where a word starts when one can be."""
    out: list[list[str]] = []
    while len(tokens) > size:
        cut = max((k for k in range(1, size + 1) if tokens[k].startswith("\u2581")), default=size)
        out.append(tokens[:cut])
        tokens = tokens[cut:]
    out.append(tokens)
    return out
