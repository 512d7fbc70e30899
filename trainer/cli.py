"""``qlora-trainer`` commands: parse, call, print. Heavy libraries load inside the commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import get_args, get_origin

from dataset_builder.errors import run_command
from trainer.config import TrainConfig

_MAIN = ("dataset", "base", "out")


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per TrainConfig field, so any setting can be overridden on the command line."""
    for name, field in TrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        annotation = field.annotation
        origin = get_origin(annotation)
        args = [a for a in get_args(annotation) if a is not type(None)]
        kind = args[0] if origin is not None and args else annotation
        help_text = (
            field.description or ""
        ) + f" (default: {field.default if field.default_factory is None else field.default_factory()})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif get_origin(kind) is list or kind is list:
            parser.add_argument(flag, type=lambda s: [x for x in s.split(",") if x], default=None,
                                metavar="A,B", help=help_text)  # fmt: skip
        elif kind in (int, float):
            parser.add_argument(flag, type=kind, default=None, help=help_text)
        else:
            parser.add_argument(flag, default=None, help=help_text)


def _config(args: argparse.Namespace) -> TrainConfig:
    overrides = {name: getattr(args, name) for name in TrainConfig.model_fields if hasattr(args, name)}
    return TrainConfig.load(args.config, overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from trainer.qlora import train

    record = train(_config(args), resume=args.resume)
    m = record["metrics"]
    print(f"adapter: {args.out or record['training_config']['out']}")
    print(
        f"dataset: {record['dataset']['name']}@{record['dataset']['version']} {record['dataset']['content_hash']}"
    )
    print(f"train loss {m['train_loss']:.4f} after {m['global_step']} steps"
          + (f"; eval loss {m['eval_loss']:.4f}" if "eval_loss" in m else ""))  # fmt: skip
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from trainer.merge import merge

    out = merge(args.base, args.adapter, args.out, dtype=args.dtype)
    print(f"merged model: {out}")
    return 0


def cmd_perplexity(args: argparse.Namespace) -> int:
    from trainer.perplexity import EvalSettings, run_evaluation

    settings = EvalSettings(
        max_length=args.max_length, stride=args.stride, bos=args.bos, batch_size=args.batch_size,
        per_document=args.per_document, load_in_4bit=args.load_in_4bit, device=args.device,
        limit=args.limit,
    )  # fmt: skip
    report = run_evaluation(
        args.base, args.adapter or [], args.eval, args.out, settings, registry=args.registry
    )
    print(report["markdown"])
    print(f"\nwritten: {', '.join(report['files'])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qlora-trainer", description="QLoRA training and evaluation on published dataset versions."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="QLoRA-train an adapter on NAME@VERSION",
        description="QLoRA-train an adapter on a dataset version",
    )
    p.set_defaults(func=cmd_train)
    p.add_argument("--config", default=None, help="training TOML (e.g. recipes/train-zephyr-python-ru.toml)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    _add_overrides(p)

    p = sub.add_parser(
        "merge",
        help="merge an adapter into its base (fp16)",
        description="merge an adapter into its base model",
    )
    p.set_defaults(func=cmd_merge)
    p.add_argument("--base", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])

    p = sub.add_parser("perplexity", help="perplexity of a base model and adapters on eval sets",
                       description="perplexity of a base model and any number of adapters on eval sets")  # fmt: skip
    p.set_defaults(func=cmd_perplexity)
    p.add_argument("--base", required=True)
    p.add_argument("--adapter", action="append", help="adapter folder (repeatable)")
    p.add_argument("--eval", action="append", required=True,
                   help="eval sets: a TOML file of [[sets]], or NAME@VERSION:SPLIT (repeatable)")  # fmt: skip
    p.add_argument("--out", required=True)
    p.add_argument("--registry", default=None)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--stride", type=int, default=512)
    p.add_argument("--bos", choices=["first", "every", "none"], default="first",
                   help="BOS before the first window only (the guide's convention), before every window, or never")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    p.add_argument("--per-document", action="store_true", help="also score each document on its own")
    p.add_argument("--load-in-4bit", action="store_true")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--limit", type=int, default=None, help="at most N documents per set")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("DATASET_BUILDER_DEBUG") == "1"
    return run_command(args.func, args, debug)


if __name__ == "__main__":
    sys.exit(main())
