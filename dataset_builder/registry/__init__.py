"""The local registry of published versions: names as paths, writes that never follow a link, diffs, the duplicates view."""
