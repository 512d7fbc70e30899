"""Executors: where a build's stages run. A stage never knows which one runs it.

``local`` (the default) runs every stage in this process; ``ray`` spreads row-wise stages over the
workers of a Ray cluster and runs the stages that must see every row on the driver. Both feed the
same publish step, so the same recipe publishes the same content hash under either.
"""

from __future__ import annotations

from dataset_builder.executors.base import BuildRun, Executor
from dataset_builder.recipe.schema import RunSection

__all__ = ["BuildRun", "Executor", "executor_for"]


def executor_for(settings: RunSection) -> Executor:
    """The executor a recipe's ``[run]`` section names (Ray is imported only when asked for)."""
    if settings.executor == "ray":
        from dataset_builder.executors.ray import RayExecutor

        return RayExecutor(settings)
    from dataset_builder.executors.local import LocalExecutor

    return LocalExecutor()
