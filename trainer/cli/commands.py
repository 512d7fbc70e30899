"""``qlora-trainer`` commands: parse, call, print. Heavy libraries load inside the commands.

Each command is a ``cmd_*`` function plus an ``add_*`` function that declares its options; a new
command adds one pair and one line in ``build_parser``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from dataset_builder.errors import OneLineParser, run_command
from trainer.cli.downstream_command import add_benchmark
from trainer.training.config import TrainConfig

# TrainConfig fields that may come from the TOML instead of a flag, so argparse cannot require them.
_REQUIRED_SETTINGS = ("dataset", "base", "out")
_MODEL_HELP = "a local model folder or a Hub id (ORG/NAME, from the Hugging Face cache when offline)"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Marks required options and shows defaults, so ``--help`` alone is enough to run a command."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.required and action.option_strings:
            text += " (required)"
        default = action.default
        if (
            action.option_strings
            and "default:" not in text
            and default is not None
            and default is not False
            and default is not argparse.SUPPRESS
        ):
            text += f" (default: {default})"
        return text


class _VersionAction(argparse.Action):
    """``--version``: this tool's version and the libraries that decide how training runs, read
    from package metadata so nothing heavy is imported."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from trainer.outdir import tool_version
        from trainer.versions import installed

        names = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets")
        libraries = [f"{name} {v or 'not installed'}" for name, v in installed(names).items()]
        print(f"qlora-trainer {tool_version()} ({', '.join(libraries)})")
        parser.exit()


def _kind(annotation: Any) -> Any:
    """The type behind ``X | None``."""
    if get_origin(annotation) in (Union, UnionType):
        return _kind(next(a for a in get_args(annotation) if a is not type(None)))
    return annotation


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per TrainConfig field, so any setting can be overridden on the command line."""
    for name, field in TrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kind = _kind(field.annotation)
        default = field.default if field.default_factory is None else field.default_factory()
        shown = ",".join(default) if isinstance(default, list) else "none" if default is None else default
        help_text = field.description or ""
        if name in _REQUIRED_SETTINGS:
            help_text += " (required: here or in --config)"
        elif "default:" not in help_text:
            help_text += f" (default: {shown})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif get_origin(kind) is list:
            parser.add_argument(flag, type=lambda s: [x for x in s.split(",") if x], default=None,
                                metavar="A,B", help=help_text)  # fmt: skip
        elif kind in (int, float):
            parser.add_argument(flag, type=kind, default=None, help=help_text)
        elif get_origin(kind) is Literal:
            parser.add_argument(flag, choices=get_args(kind), default=None, help=help_text)
        else:
            parser.add_argument(flag, default=None, help=help_text)


def _config(args: argparse.Namespace) -> TrainConfig:
    overrides = {name: getattr(args, name) for name in TrainConfig.model_fields if hasattr(args, name)}
    return TrainConfig.load(args.config, overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from trainer.training.qlora import train

    record = train(_config(args), resume=args.resume, overwrite=args.overwrite)
    m = record["metrics"]
    print(f"adapter: {record['training_config']['out']}")
    print(
        f"dataset: {record['dataset']['name']}@{record['dataset']['version']} {record['dataset']['content_hash']}"
    )
    print(f"train loss {m['train_loss']:.4f} after {m['global_step']} steps"
          + (f"; eval loss {m['eval_loss']:.4f}" if "eval_loss" in m else ""))  # fmt: skip
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from trainer.training.merge import merge

    out = merge(args.base, args.adapter, args.out, dtype=args.dtype, overwrite=args.overwrite)
    print(f"merged model: {out}")
    return 0


def cmd_perplexity(args: argparse.Namespace) -> int:
    from trainer.evaluation.perplexity import EvalSettings
    from trainer.evaluation.perplexity_run import run_evaluation

    settings = EvalSettings(
        max_length=args.max_length, stride=args.stride, bos=args.bos, batch_size=args.batch_size,
        per_document=args.per_document, load_in_4bit=args.load_in_4bit, device=args.device,
        limit=args.limit,
    )  # fmt: skip
    report = run_evaluation(
        args.base, args.adapter or [], args.eval, args.out, settings, registry=args.registry,
        overwrite=args.overwrite,
    )  # fmt: skip
    print(report["markdown"])
    print(f"\nwritten: {', '.join(report['files'])}")
    return 0


def cmd_tiny_model(args: argparse.Namespace) -> int:
    from trainer.tiny import make_tiny_model

    out = make_tiny_model(
        args.out, layers=args.layers, hidden=args.hidden, seed=args.seed, overwrite=args.overwrite
    )
    print(f"tiny model: {out}")
    return 0


def _overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out written by an earlier qlora-trainer command")  # fmt: skip


def add_train(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add(
        "train",
        cmd_train,
        "QLoRA-train an adapter on a published dataset version (NAME@VERSION)",
        "example: qlora-trainer train --config recipes/train-paper-analog.toml \\\n"
        "    --dataset python-ru-sample@0.1.0 --registry registry \\\n"
        "    --base HuggingFaceH4/zephyr-7b-beta --out adapters/sample\n\n"
        "Every setting above can also be set in the --config TOML (flags win).",
    )
    p.add_argument("--config", default=None, metavar="FILE",
                   help="training TOML with any of the settings below (e.g. recipes/train-paper-analog.toml)")  # fmt: skip
    run = p.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last checkpoint (same dataset, base and LoRA settings)")  # fmt: skip
    run.add_argument("--overwrite", action="store_true",
                     help="delete the earlier run in --out first, so checkpoints of two runs never mix")  # fmt: skip
    _add_overrides(p)


def add_merge(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add(
        "merge",
        cmd_merge,
        "merge an adapter into its base model and save it (fp16 safetensors by default)",
        "example: qlora-trainer merge --base HuggingFaceH4/zephyr-7b-beta \\\n"
        "    --adapter adapters/sample --out merged/sample",
    )
    p.add_argument("--base", required=True, metavar="MODEL", help=f"the adapter's base model: {_MODEL_HELP}")
    p.add_argument("--adapter", required=True, metavar="ADAPTER",
                   help="adapter folder written by train (or a Hub id of a PEFT adapter)")  # fmt: skip
    p.add_argument(
        "--out", required=True, metavar="DIR", help="folder for the merged model (must be empty or new)"
    )
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                   help="dtype of the saved weights")  # fmt: skip
    _overwrite(p)


def add_perplexity(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add(
        "perplexity",
        cmd_perplexity,
        "perplexity and bits per byte of a base model and any number of adapters on eval sets",
        "example: qlora-trainer perplexity --base HuggingFaceH4/zephyr-7b-beta --adapter adapters/sample \\\n"
        "    --eval python-ru-sample@0.1.0:test --registry registry --out reports/sample",
    )
    p.add_argument("--base", required=True, metavar="MODEL", help=f"base model: {_MODEL_HELP}")
    p.add_argument("--adapter", action="append", metavar="ADAPTER",
                   help="adapter folder to score on the same sets (repeatable)")  # fmt: skip
    p.add_argument("--eval", action="append", required=True, metavar="SETS",
                   help="eval sets: a TOML file of [[sets]] (e.g. recipes/eval-paper.toml), or NAME@VERSION:SPLIT (repeatable)")  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for perplexity.json, .md and .png (must be empty or new)")  # fmt: skip
    p.add_argument("--registry", default=None, metavar="DIR",
                   help="registry of NAME@VERSION sets (default: $DATASET_BUILDER_REGISTRY or ~/.local/share/dataset-builder/registry)")  # fmt: skip
    p.add_argument("--max-length", type=int, default=1024, help="tokens per window")
    p.add_argument("--stride", type=int, default=512, help="tokens a window moves by (at most --max-length)")
    p.add_argument("--bos", choices=["first", "every", "none"], default="first",
                   help="BOS before the first window only (the guide's convention), before every window, or never")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    p.add_argument("--per-document", action="store_true", help="also score each document on its own")
    p.add_argument("--load-in-4bit", action="store_true", help="load the base in 4-bit NF4 (bitsandbytes)")
    p.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda when available"
    )
    p.add_argument("--limit", type=int, default=None, help="at most N documents per set")
    _overwrite(p)


def add_tiny_model(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add(
        "tiny-model",
        cmd_tiny_model,
        "write a tiny random Mistral-architecture model (real Zephyr tokenizer) to try every command offline",
        "example: qlora-trainer tiny-model --out models/tiny-mistral\n\n"
        "Its numbers mean nothing; the code it runs is the real one. See docs/training.md, 'Try it offline'.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the model (must be empty or new)")
    p.add_argument("--layers", type=int, default=2, help="decoder layers")
    p.add_argument("--hidden", type=int, default=64, help="hidden size (a multiple of 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    _overwrite(p)


COMMANDS = (add_train, add_merge, add_perplexity, add_tiny_model, add_benchmark)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="qlora-trainer",
        description="QLoRA training and evaluation on published dataset versions.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print the version and the libraries' versions"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], summary: str, epilog: str = ""
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=summary, description=summary, epilog=epilog, formatter_class=_HelpFormatter
        )
        p.set_defaults(func=func)
        # accepted after the command too: `qlora-trainer train ... --debug`
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return p

    for add_command in COMMANDS:
        add_command(sub, add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("DATASET_BUILDER_DEBUG") == "1"
    return run_command(args.func, args, debug)


if __name__ == "__main__":
    sys.exit(main())
