"""How a program ended, in words the sandbox chooses: a worker's answer is read field by field
and described from a fixed vocabulary (built-in exception names, errno, exit codes, signals), never
copied from the program's output, so a program cannot put what it read into a report."""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import signal
from dataclasses import dataclass
from typing import Any, Literal

_EXCEPTION_NAMES = frozenset(
    name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)
)
_EXIT_CODE = re.compile(r"-?[0-9]{1,10}")

Status = Literal["passed", "failed", "timeout"]


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str  # from a fixed vocabulary: exception type, errno, exit code, signal, or the timeout
    returncode: int | None
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def outcome(result: dict[str, Any], timeout: float) -> Outcome:
    """A worker's answer for one program, checked field by field: nothing of the program's own
    text passes into ``detail``."""
    seconds = float(result["seconds"])
    returncode = result["returncode"] if isinstance(result["returncode"], int) else None
    if result["timed_out"] is True:
        return Outcome("timeout", f"timed out after {timeout:g} s", None, seconds)
    report = result["report"] if isinstance(result["report"], str) else ""
    if report == "passed":
        return Outcome("passed", "", returncode, seconds)
    words = report.split(" ")
    if words[0] == "setup":  # checked at every worker's start, so not expected; still only words
        return Outcome(
            "failed", f"the sandbox could not prepare it: {_failure(words[1:], None)}", returncode, seconds
        )
    return Outcome("failed", _failure(words, returncode), returncode, seconds)


def _failure(words: list[str], returncode: int | None) -> str:
    words = words or [""]
    if (
        words[0] == "exit"
        and len(words) == 2
        and (words[1] in ("none", "other") or _EXIT_CODE.fullmatch(words[1]))
    ):
        code = {"none": "None", "other": "a code that is not an integer"}.get(words[1], words[1])
        return (
            f"ended early: SystemExit({code})"
            if words[1] != "other"
            else f"ended early: SystemExit with {code}"
        )
    if (
        words[0] == "raised" and len(words) == 4 and words[1] in _EXCEPTION_NAMES
        and words[2] in ("0", "1") and words[3].isdigit() and len(words[3]) <= 4
    ):  # fmt: skip
        text = words[1]
        if words[3] != "0":
            text += f": [Errno {int(words[3])}] {os.strerror(int(words[3]))}"
        return text + (" (a subclass)" if words[2] == "1" else "")
    if returncode is not None and returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name} before the check finished"
        return f"killed by signal {-returncode} before the check finished"
    if words != [""]:
        return "ended with a report the sandbox does not recognise"
    return f"ended before the check finished (exit status {returncode})"
