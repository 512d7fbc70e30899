"""The real zephyr-7b-beta tokenizer, offline.

zephyr-7b-beta uses Mistral-7B-v0.1's SentencePiece model, which the ``mistral-common`` package
ships as ``data/tokenizer.model.v1``. Put beside a ``tokenizer_config.json`` that names
``LlamaTokenizer`` and carries Zephyr's chat template, ``AutoTokenizer.from_pretrained`` loads it
as the Hub's tokenizer would be loaded, with no network.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from dataset_builder.chat.templates import ZEPHYR_TEMPLATE
from dataset_builder.errors import UserError

MISTRAL_V1_SHA256 = "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055"

ZEPHYR_TOKENIZER_CONFIG: dict[str, Any] = {
    "tokenizer_class": "LlamaTokenizer",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "</s>",
    "add_bos_token": True,
    "add_eos_token": False,
    "legacy": True,
    "clean_up_tokenization_spaces": False,
    "model_max_length": 1_000_000_000_000_000_019_884_624_838_656,
    "chat_template": ZEPHYR_TEMPLATE,
}


def mistral_v1_model() -> Path:
    try:
        import mistral_common
    except ImportError:
        raise UserError(
            "the Zephyr tokenizer needs the 'mistral-common' package (pip install mistral-common)"
        ) from None
    path = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not path.is_file():
        raise UserError(f"{path}: not found in this mistral-common release")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MISTRAL_V1_SHA256:
        raise UserError(f"{path}: sha256 {digest} is not Mistral-7B-v0.1's tokenizer")
    return path


def write_zephyr_tokenizer(folder: Path) -> Path:
    """A tokenizer folder equal to zephyr-7b-beta's: SentencePiece model plus config."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(mistral_v1_model(), folder / "tokenizer.model")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(ZEPHYR_TOKENIZER_CONFIG, indent=2), encoding="utf-8"
    )
    (folder / "special_tokens_map.json").write_text(
        json.dumps(
            {k: ZEPHYR_TOKENIZER_CONFIG[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
        ),
        encoding="utf-8",
    )
    return folder


@lru_cache(maxsize=4)
def load_tokenizer(name_or_path: str):  # -> transformers.PreTrainedTokenizerBase
    """``"zephyr"`` for the built-in Zephyr tokenizer, or a local tokenizer folder."""
    from transformers import AutoTokenizer

    if name_or_path == "zephyr":
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="zephyr-tokenizer-"))
        return AutoTokenizer.from_pretrained(str(write_zephyr_tokenizer(folder)))
    return AutoTokenizer.from_pretrained(name_or_path)
