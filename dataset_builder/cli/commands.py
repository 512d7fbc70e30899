"""``dataset-builder`` commands: parse, call, print. No logic lives here.

Heavy libraries are imported inside the command that needs them, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from dataset_builder import __version__
from dataset_builder.errors import OneLineParser, UserError, run_command


def _count(text: str) -> int:
    """A whole number >= 0, for options such as ``--show``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _registry(args: argparse.Namespace):  # -> Registry
    from dataset_builder.registry.store import Registry

    return Registry(args.registry)


def cmd_check(args: argparse.Namespace) -> int:
    import time

    from dataset_builder.cli.check import check_recipe

    start = time.monotonic()
    # `build --dry-run --set-version X` checks the version the build would publish.
    findings = check_recipe(args.recipe, _registry(args).root, version=getattr(args, "set_version", None))
    problems = [f.text for f in findings if f.problem]
    for finding in findings:
        if not finding.problem:
            print(f"note: {finding.text}")
    for text in problems:
        print(f"error: {text}", file=sys.stderr)
    took = f"checked in {time.monotonic() - start:.1f} s"
    print(
        f"{args.recipe}: {len(problems)} problem(s), {took}"
        if problems
        else f"{args.recipe}: ready to build, {took}"
    )
    return 2 if problems else 0


def cmd_build(args: argparse.Namespace) -> int:
    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import load_recipe

    if args.dry_run:
        return cmd_check(args)
    recipe = load_recipe(args.recipe)
    if args.set_version is not None:
        from dataset_builder.publishing.identity import set_version

        recipe = set_version(recipe, args.set_version)
    if args.executor is not None or args.address is not None:
        recipe = recipe.with_run(executor=args.executor, address=args.address)
    if args.trust_code:
        recipe = recipe.trusting_code()
    result = build(recipe, _registry(args), limit=args.limit, show_progress=not args.quiet)
    if result.published:
        state = "published"
    elif result.ran:
        state = "already published with identical content (no-op)"
    else:
        state = "already published from the same recipe, inputs and model (no-op, nothing rebuilt)"
    print(f"{result.ref}: {state}")
    print(f"  path: {result.path}")
    print(f"  content hash: {result.content_hash}")
    for split, meta in result.manifest["splits"].items():
        print(f"  {split}: {meta['rows']} rows")
    print(f"  rejected: {result.manifest['rejected']['rows']} rows")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.name:
        registry.check_known(args.name)
    versions = registry.versions(args.name)
    if not versions:
        print(f"no versions published in {registry.root}" + _elsewhere(args))
        return 0
    print(f"registry: {registry.root}")
    for info in versions:
        m = info.manifest
        rows = ", ".join(f"{s}={v['rows']}" for s, v in m["splits"].items())
        print(f"{info.ref}\t{m['built_at']}\t{rows}\t{m['content_hash'][:19]}")
    return 0


def _elsewhere(args: argparse.Namespace) -> str:
    """Where else to look when a registry the user did not name is empty: ``./registry``, what
    ``make demo`` builds into."""
    from pathlib import Path

    from dataset_builder.registry.store import REGISTRY_ENV

    if args.registry or os.environ.get(REGISTRY_ENV):
        return ""
    local = Path("registry")
    if local.is_dir() and any(local.glob("*/*/manifest.json")):
        return " (./registry holds versions: add --registry registry)"
    return f" (the default; choose another with --registry DIR or ${REGISTRY_ENV})"


def cmd_show(args: argparse.Namespace) -> int:
    info = _registry(args).get(args.ref)
    m = info.manifest
    if args.json:
        print(json.dumps(m, ensure_ascii=False, indent=2))
        return 0
    print(f"{info.ref}  ({info.path})")
    print(f"content hash: {m['content_hash']}")
    print(f"built at: {m['built_at']}  after: {m.get('previous_version') or '-'}")
    print("\nstages:")
    print(f"  {'stage':<16}{'in':>9}{'out':>9}{'secs':>9}  dropped")
    for st in m["stages"]:
        dropped = ", ".join(f"{k}={v}" for k, v in st["dropped"].items()) or "-"
        print(f"  {st['stage']:<16}{st['rows_in']:>9}{st['rows_out']:>9}{st['seconds']:>9.2f}  {dropped}")
    for st in m["stages"]:
        simple = {k: v for k, v in st["counters"].items() if isinstance(v, int | float | str)}
        if simple:
            print(f"  {st['stage']}: " + ", ".join(f"{k}={v}" for k, v in simple.items()))
    print("\nsplits:")
    for split, meta in m["splits"].items():
        per_source = ", ".join(f"{k}={v}" for k, v in meta["per_source"].items())
        print(f"  {split:<8}{meta['rows']:>8} rows  [{per_source}]")
    print(f"\nrejected: {m['rejected']['rows']} rows")
    for reason, n in sorted(m["rejected"]["by_stage_reason"].items()):
        print(f"  {reason:<40}{n:>8}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    registry = _registry(args)
    ref = registry.get(args.ref).ref  # NAME@latest -> the version it names
    problems = registry.verify(ref)
    if problems:
        for p in problems:
            print(f"{ref}: {p}", file=sys.stderr)
        return 4
    print(f"{ref}: OK, every file matches the manifest")
    return 0


def cmd_dups(args: argparse.Namespace) -> int:
    from dataset_builder.registry.duplicates import clusters, render

    info = _registry(args).get(args.ref)
    found = clusters(info, top=args.top)
    if not found:
        print(f"{info.ref}: no near-duplicate clusters")
        return 0
    for cluster in found:
        print(render(cluster, width=args.width))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from dataset_builder.publishing.report_page import report_path

    path = report_path(_registry(args).get(args.ref))
    if args.open:
        import webbrowser

        if not webbrowser.open(path.as_uri()):
            raise UserError(f"{path}: no browser to open it with; open the file yourself")
    print(path)
    return 0


def cmd_models_install(args: argparse.Namespace) -> int:
    from dataset_builder.translation import packages

    if len(args.what) == 1:
        pkg = packages.install(args.what[0], args.packages_dir)
    elif len(args.what) == 2:
        pkg = packages.fetch_from_index(args.what[0], args.what[1], args.packages_dir)
    else:
        raise UserError(
            "models install: give PATH.argosmodel, or FROM TO language codes to fetch from the index"
        )
    print(
        f"installed {pkg.code} {pkg.version} ({pkg.from_code}->{pkg.to_code}) sha256 {pkg.sha256[:16]} in {pkg.path}"
    )
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from dataset_builder.translation import packages

    found = packages.installed(args.packages_dir)
    if not found:
        print(f"no packages in {packages.packages_dir(args.packages_dir)}")
    for pkg in found:
        print(f"{pkg.from_code}->{pkg.to_code}\t{pkg.code}\t{pkg.version}\t{pkg.sha256[:16]}\t{pkg.path}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from dataset_builder.registry.diff import diff, render

    registry = _registry(args)
    old, new = registry.get(args.old), registry.get(args.new)
    print(render(old, new, diff(old, new), show=args.show, width=args.width))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from dataset_builder.hub.transfer import naming_note, push

    registry = _registry(args)
    info = registry.get(args.ref)
    problems = registry.verify(info.ref)
    if problems:
        raise UserError(f"{info.ref}: {problems[0]}; refusing to push a version that fails verification")
    commit = push(info, args.repo, private=args.private)
    print(f"{info.ref} -> {args.repo}@{info.version} (commit {commit[:12]})")
    print(f"  load with: datasets.load_dataset({args.repo!r}, revision={info.version!r})")
    if note := naming_note(args.repo, info):
        print(note)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from dataset_builder.hub.transfer import pull

    info = pull(args.ref, _registry(args), as_name=args.as_name)
    print(f"{args.ref} -> {info.ref} in {info.path} (every checksum verified)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="dataset-builder",
        description="Build, version and publish the Russian Python instruction corpus.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--registry",
        default=None,
        help="registry folder (default: $DATASET_BUILDER_REGISTRY or ~/.local/share/dataset-builder/registry)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        # accepted after the command too: `dataset-builder build R --registry DIR`
        p.add_argument("--registry", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return p

    p = add("build", cmd_build, "run a recipe and publish NAME@VERSION")
    p.add_argument("recipe", help="recipe TOML file")
    p.add_argument(
        "--limit", type=int, default=None, help="read at most N rows per source (published as VERSION+limitN)"
    )
    p.add_argument(
        "--set-version",
        default=None,
        metavar="VERSION",
        help="publish as VERSION instead of the recipe's dataset.version (a published version never changes)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true", help="only check the recipe and its inputs (as `check`)")
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="allow Python code the recipe names to run (engine = 'python:...' other than a registered "
        "installed translator); read the recipe and its folder first",
    )
    p.add_argument(
        "--executor",
        choices=["local", "ray"],
        default=None,
        help="where the stages run (default: the recipe's [run] executor, else local)",
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to join, e.g. auto or ray://HOST:10001 (default: $RAY_ADDRESS, else a local Ray)",
    )

    p = add(
        "check", cmd_check, "check a recipe, its input files, Argos package and eval sets, building nothing"
    )
    p.add_argument("recipe", help="recipe TOML file")

    p = add("list", cmd_list, "list published versions")
    p.add_argument("name", nargs="?", default=None, help="only this dataset (an unknown name is an error)")

    p = add("show", cmd_show, "counts per stage, split, source and drop reason")
    p.add_argument("ref", metavar="NAME@VERSION", help="a version, or NAME@latest")
    p.add_argument("--json", action="store_true", help="print the whole manifest")

    p = add("diff", cmd_diff, "rows added, removed and changed between two versions, and every statistic")
    p.add_argument("old", metavar="NAME@A")
    p.add_argument("new", metavar="NAME@B")
    p.add_argument(
        "--show",
        type=_count,
        default=10,
        help="rows to list per kind, changed rows side by side, old | new (default 10; 0: counts only)",
    )
    p.add_argument(
        "--width", type=_count, default=60, help="column width of the side-by-side view (default 60)"
    )

    p = add("push", cmd_push, "upload a version to a Hub dataset repo and tag it with its version")
    p.add_argument("ref", metavar="NAME@VERSION", help="a version, or NAME@latest")
    p.add_argument("--repo", required=True, metavar="ORG/NAME")
    p.add_argument("--private", action="store_true")

    p = add("pull", cmd_pull, "download ORG/NAME@VERSION from the Hub into the local registry, verified")
    p.add_argument(
        "ref", metavar="ORG/NAME@VERSION", help="a version tag, or ORG/NAME@latest (the newest tag)"
    )
    p.add_argument(
        "--as",
        dest="as_name",
        default=None,
        metavar="NAME",
        help="publish under NAME (needed when the version's manifest names a dataset other than the repo's NAME)",
    )

    p = add("dups", cmd_dups, "show the largest near-duplicate clusters, kept and removed rows side by side")
    p.add_argument("ref", metavar="NAME@VERSION")
    p.add_argument("--top", type=_count, default=10, help="how many clusters (default 10)")
    p.add_argument("--width", type=_count, default=60, help="column width (default 60)")

    p = add("report", cmd_report, "print the path of a version's report.html (--open: open it in a browser)")
    p.add_argument("ref", metavar="NAME@VERSION", help="a version, or NAME@latest")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")

    models = sub.add_parser("models", help="Argos Translate packages", description="Argos Translate packages")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    for name, func, text in (
        (
            "install",
            cmd_models_install,
            "install PATH.argosmodel, or FROM TO from the Argos index (needs a network)",
        ),
        ("list", cmd_models_list, "list installed packages"),
    ):
        p = models_sub.add_parser(name, help=text, description=text)
        p.set_defaults(func=func)
        p.add_argument(
            "--packages-dir",
            default=None,
            help="default: $DATASET_BUILDER_ARGOS_DIR or ~/.local/share/dataset-builder/argos-packages",
        )
        if name == "install":
            p.add_argument("what", nargs="+", metavar="PATH | FROM TO")

    p = add("verify", cmd_verify, "re-hash a version's files against its manifest")
    p.add_argument("ref", metavar="NAME@VERSION", help="a version, or NAME@latest")
    return parser


def _configure_logging() -> None:
    import logging

    class CurrentStderr(logging.StreamHandler):
        """Writes to ``sys.stderr`` as it is when a line is logged, not as it was when the first
        command of the process ran: a caller running commands in-process may replace it between them."""

        @property  # type: ignore[override]
        def stream(self) -> TextIO:
            return sys.stderr

        @stream.setter
        def stream(self, _value: TextIO) -> None:
            pass

    log = logging.getLogger("dataset_builder")
    if not log.handlers:
        handler = CurrentStderr()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("DATASET_BUILDER_DEBUG") == "1"
    _configure_logging()
    return run_command(args.func, args, debug)


if __name__ == "__main__":
    sys.exit(main())
