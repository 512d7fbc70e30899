"""A published dataset version into tokenized examples with loss on the answers only.

Each conversation is rendered with the tokenizer's chat template (Zephyr's when it has none) and
tokenized as one text, exactly as at inference; labels are -100 everywhere except the tokens of
assistant turns, each turn's closing EOS included (without it the model never learns to stop).
Which tokens belong to an assistant turn is found from character offsets, so the tokenization is
the real one of the whole text, not a concatenation of separately tokenized pieces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dataset_builder.api import ZEPHYR_TEMPLATE, ChatFormat

IGNORE = -100


def chat_format(tokenizer: Any) -> ChatFormat:
    template = getattr(tokenizer, "chat_template", None) or ZEPHYR_TEMPLATE
    return ChatFormat("tokenizer", template, tokenizer.bos_token or "", tokenizer.eos_token or "")


def assistant_spans(fmt: ChatFormat, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans the loss covers: each assistant turn's content
    through its closing EOS."""
    text = fmt.render(messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(fmt.render(messages[:i], add_generation_prompt=True))
        end = len(fmt.render(messages[: i + 1]))
        if not text.startswith(fmt.render(messages[: i + 1])):
            raise ValueError("the chat template does not render conversations prefix by prefix")
        eos = text.rfind(fmt.eos_token, start, end) if fmt.eos_token else -1
        spans.append((start, eos + len(fmt.eos_token) if eos >= 0 else end))
    return text, spans


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


def tokenize(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> Example | None:
    """One conversation as ids and labels; None when no answer token survives truncation."""
    fmt = chat_format(tokenizer)
    text, spans = assistant_spans(fmt, messages)
    enc = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=max_length)
    labels = []
    for token_id, (start, end) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
        inside = end > start and any(s <= start and end <= e for s, e in spans)
        labels.append(token_id if inside else IGNORE)
    if all(label == IGNORE for label in labels):
        return None
    return Example(list(enc["input_ids"]), labels)


def tokenize_split(tokenizer: Any, dataset: Any, max_length: int) -> tuple[list[Example], int]:
    """Examples of a ``datasets.Dataset`` with a ``messages`` column, and how many were dropped."""
    out, dropped = [], 0
    for messages in dataset["messages"]:
        example = tokenize(tokenizer, messages, max_length)
        if example is None:
            dropped += 1
        else:
            out.append(example)
    return out, dropped


class Collator:
    """Right-pads a batch: ids with the pad token, labels with -100."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = [b["input_ids"] + [self.pad_id] * (width - len(b["input_ids"])) for b in batch]
        labels = [b["labels"] + [IGNORE] * (width - len(b["labels"])) for b in batch]
        mask = [[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch]
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }
