"""The card as the Hub shows it: the built card with a Hub load snippet at its marked place, and
the way back to the card the manifest hashes when a version is pulled."""

from __future__ import annotations

from pathlib import Path

from dataset_builder.publishing.card import LOAD_ANCHOR, LOAD_HEADING

_HUB_BEGIN = "<!-- dataset-builder:hub-load -->\n"
_HUB_END = "<!-- /dataset-builder:hub-load -->\n"


def _hub_snippet(repo_id: str, revision: str) -> str:
    return (
        f"From the Hub, this version is the tag `{revision}` of `{repo_id}`:\n\n"
        f'```python\nimport datasets\n\nds = datasets.load_dataset("{repo_id}", revision="{revision}")\n```\n\n'
        "or, with every file checked against the manifest and kept in a local registry:\n\n"
        f'```python\nimport dataset_builder\n\nds = dataset_builder.load("{repo_id}@{revision}")\n```\n\n'
    )


def hub_card(card: str, repo_id: str, revision: str) -> str:
    """The card as uploaded to ``repo_id`` at tag ``revision``: the local card with a Hub load
    snippet inserted after the load heading. A card without the marked place (built before it
    existed) is uploaded as it is."""
    anchor = LOAD_HEADING + "\n" + LOAD_ANCHOR
    if card.count(anchor) != 1:
        return card
    return card.replace(anchor, anchor + _HUB_BEGIN + _hub_snippet(repo_id, revision) + _HUB_END)


def local_card(card: str) -> str:
    """Undo :func:`hub_card`: the card as built, which is what the manifest hashes. A card with
    no Hub insertion is returned unchanged; the manifest's sha256 judges the result either way."""
    begin = LOAD_ANCHOR + _HUB_BEGIN
    start = card.find(begin)
    if start < 0:
        return card
    end = card.find(_HUB_END, start + len(begin))
    if end < 0:
        return card
    return card[: start + len(LOAD_ANCHOR)] + card[end + len(_HUB_END) :]


def card_for_hub(path: Path, repo_id: str, revision: str) -> bytes:
    """The bytes to upload for the built card at ``path`` (see :func:`hub_card`)."""
    return hub_card(path.read_bytes().decode("utf-8"), repo_id, revision).encode("utf-8")


def restore_built_card(path: Path) -> None:
    """Rewrite a card downloaded from the Hub as it was built (see :func:`local_card`). Bytes that
    are not a card are left as they are, for the manifest's sha256 to refuse."""
    raw = path.read_bytes()
    try:
        built = local_card(raw.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:
        return
    if built != raw:
        path.unlink()  # a new file, never written through whatever the download left there
        path.write_bytes(built)
