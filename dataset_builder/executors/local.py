"""The local executor: every stage in this process, batches streaming through generators."""

from __future__ import annotations

from dataset_builder.executors.base import Executor


class LocalExecutor(Executor):
    name = "local"
