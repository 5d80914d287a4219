"""The controller's actions (a closed vocabulary, stdlib-only so the CLI can list them)."""

from __future__ import annotations

from typing import Literal, get_args

# What the controller (or a person, through the same path) does to an experiment.
Action = Literal[
    "advance",
    "rollback",
    "ship",
    "stop",
    "pause",
    "resume",
    "propose-rollback",
    "propose-ship",
    "propose-stop",
]
ACTIONS: tuple[Action, ...] = get_args(Action)
MANUAL_ACTIONS: tuple[Action, ...] = ("pause", "resume", "rollback", "ship", "stop")
# Actions after which the current ramp stage starts counting its minimum again.
STAGE_STARTS: tuple[Action, ...] = ("advance", "resume")
