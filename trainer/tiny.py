"""A tiny random Mistral-architecture model to try training and evaluation on any machine, offline.

It is the model the test suite trains (``dataset_builder.testing.build_tiny_mistral``): real
zephyr-7b-beta tokenizer (shipped by mistral-common), Mistral layers with random weights, a few MB,
trained on a CPU in seconds. Its numbers mean nothing; the code paths it runs are the real ones.
"""

from __future__ import annotations

from pathlib import Path

from dataset_builder.errors import UserError
from trainer import outdir


def make_tiny_model(
    out: str | Path, *, layers: int = 2, hidden: int = 64, seed: int = 0, overwrite: bool = False
) -> Path:
    if layers < 1:
        raise UserError(f"--layers {layers}: needs at least 1 layer")
    # The model has 4 attention heads (2 key/value heads): its width must split evenly between them.
    if hidden < 8 or hidden % 8:
        raise UserError(f"--hidden {hidden}: needs a multiple of 8, at least 8")
    out = Path(out).expanduser()
    outdir.check_out(out, "tiny-model", overwrite=overwrite)
    from dataset_builder.testing import build_tiny_mistral

    with outdir.staged(out, "tiny-model", layers=layers, hidden=hidden, seed=seed) as work:
        build_tiny_mistral(work, seed=seed, layers=layers, hidden=hidden)
    return out
