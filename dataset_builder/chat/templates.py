"""Chat templates and their rendering, the way transformers renders ``apply_chat_template``.

transformers compiles a tokenizer's ``chat_template`` with jinja2's ``ImmutableSandboxedEnvironment``
(``trim_blocks=True, lstrip_blocks=True``) and renders it with ``messages``, ``add_generation_prompt``
and the tokenizer's special tokens. Doing the same here gives text byte-identical to what the model's
tokenizer produces, without loading the tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Verbatim from HuggingFaceH4/zephyr-7b-beta tokenizer_config.json.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
    "{% endfor %}"
)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Alpaca-style prompt (Stanford Alpaca's "no input" wording), one instruction/response pair per turn.
ALPACA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\n' + message['content'] + eos_token + '\n\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"
)


@dataclass(frozen=True)
class ChatFormat:
    name: str
    template: str
    bos_token: str = "<s>"
    eos_token: str = "</s>"

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        return _compiled(self.template).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )

    def prompt_completion(self, messages: list[dict[str, str]]) -> tuple[str, str, str]:
        """``(text, prompt, completion)``: prompt is everything up to and including the last
        assistant header, completion the rest, and ``prompt + completion == text``."""
        text = self.render(messages)
        if not messages or messages[-1]["role"] != "assistant":
            return text, text, ""
        prompt = self.render(messages[:-1], add_generation_prompt=True)
        if not text.startswith(prompt):
            raise ValueError(f"template {self.name!r} does not render the prompt as a prefix of the text")
        return text, prompt, text[len(prompt) :]


BUILTIN_FORMATS = {
    "zephyr": ChatFormat("zephyr", ZEPHYR_TEMPLATE),
    "chatml": ChatFormat("chatml", CHATML_TEMPLATE, bos_token="", eos_token="<|im_end|>"),
    "alpaca": ChatFormat("alpaca", ALPACA_TEMPLATE),
}


def _raise_exception(message: str) -> None:
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, **kwargs: Any) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, **kwargs)


@lru_cache(maxsize=16)
def _compiled(template: str) -> Any:
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    return env.from_string(template)
