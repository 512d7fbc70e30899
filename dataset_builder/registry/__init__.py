"""The local registry of published versions: names, safe writes, diffs and the duplicates view."""
