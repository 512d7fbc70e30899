"""A batch's conversations as flat columns of turns, for stages that work on whole columns.

A ``messages`` column is a list of ``{role, content}`` structs per row. Read as flat columns (every
turn's role, every turn's content, and how many turns each row has), a stage can look at all turns
of a batch with Arrow compute or one list comprehension instead of building a dict per turn and
per row, and build the column back from the same three parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataset_builder.rows import MESSAGE_TYPE, MESSAGES_TYPE


@dataclass(frozen=True)
class Turns:
    """Turn ``j`` of row ``r`` is ``roles[starts[r] + j]`` / ``contents[starts[r] + j]``."""

    counts: np.ndarray  # turns per row (int64)
    roles: pa.StringArray
    contents: pa.StringArray

    @classmethod
    def of(cls, column: pa.ChunkedArray | pa.Array) -> Turns | None:
        """The turns of a ``messages`` column, or None when it is not the canonical type or holds
        a null (a missing list, turn, role or content): such a batch takes the row-by-row path,
        which treats those as it always has."""
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if array.type != MESSAGES_TYPE or array.null_count:
            return None
        items = array.flatten()
        roles, contents = items.field("role"), items.field("content")
        if items.null_count or roles.null_count or contents.null_count:
            return None
        counts = pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(counts, roles, contents)

    @property
    def starts(self) -> np.ndarray:
        """Where each row's turns start; ``starts[r + 1]`` is where they end (one more than rows)."""
        out = np.zeros(len(self.counts) + 1, dtype=np.int64)
        np.cumsum(self.counts, out=out[1:])
        return out

    @property
    def row_of(self) -> np.ndarray:
        """The row each turn belongs to."""
        return np.repeat(np.arange(len(self.counts), dtype=np.int64), self.counts)

    def column(self) -> pa.ListArray:
        """The ``messages`` column these turns make."""
        values = pa.StructArray.from_arrays(
            [self.roles, self.contents], fields=[MESSAGE_TYPE.field(0), MESSAGE_TYPE.field(1)]
        )
        return pa.ListArray.from_arrays(pa.array(self.starts, pa.int32()), values, type=MESSAGES_TYPE)

    def keep(self, mask: np.ndarray) -> Turns:
        """Only the turns where ``mask`` is true (rows keep their place, with fewer turns)."""
        if mask.all():
            return self
        counts = np.bincount(self.row_of[mask], minlength=len(self.counts)).astype(np.int64)
        chosen = pa.array(mask, pa.bool_())
        return Turns(counts, self.roles.filter(chosen), self.contents.filter(chosen))

    def with_first(self, role: str, content: str) -> Turns:
        """One turn ``{role, content}`` put first in every row."""
        rows = len(self.counts)
        counts = self.counts + 1
        starts = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        # Each new position takes an old turn, or the added one (index len(old) of the extended column).
        take = np.empty(int(starts[-1]), dtype=np.int64)
        added = np.zeros(len(take), dtype=bool)
        added[starts[:-1]] = True
        take[added] = len(self.roles)
        take[~added] = np.arange(len(self.roles), dtype=np.int64)
        indices = pa.array(take, pa.int64())
        roles = pa.concat_arrays([self.roles, pa.array([role], pa.string())]).take(indices)
        if content:
            contents = pa.concat_arrays([self.contents, pa.array([content], pa.string())]).take(indices)
        else:
            contents = _with_empty_strings(self.contents, self.starts[:-1])
        return Turns(counts, roles, contents)


def _with_empty_strings(strings: pa.StringArray, before: np.ndarray) -> pa.StringArray:
    """``strings`` with an empty string put before each index in ``before`` (ascending; an index
    may repeat, and equal ``len(strings)`` for the end): new offsets, the same bytes."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[
        strings.offset : strings.offset + len(strings) + 1
    ]
    widened = np.insert(offsets, before, offsets[before])
    return pa.StringArray.from_buffers(
        len(strings) + len(before), pa.py_buffer(widened), strings.buffers()[2], null_count=0
    )
