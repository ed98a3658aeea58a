"""The errors a run reports to its user: one message, an exit status, no traceback.

Imports nothing heavy, so the command line can catch them before JAX is loaded.
"""

from __future__ import annotations

from typing import Any

MISSING_JAX = "the JAX backend needs JAX, optax and orbax: pip install 'genaisdk[jax]'"


class TrainError(Exception):
    """A run that cannot start or go on; the message says why. `exit_code` is the CLI's:
    1 for a spec, plan, data or output problem, 2 for bad usage."""

    def __init__(self, message: str, *, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class NothingTrains(TrainError):
    """A valid plan that trains nothing (`adapt.method = prompt`): nothing is started or
    written; the message says how the model is used instead (`genai generate`, `genai
    eval`). `exit_code` is 0: `genai train` prints the message and succeeds."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=0)


class MissingExtraError(TrainError):
    def __init__(self, missing: str):
        super().__init__(f"{MISSING_JAX} ({missing} is not installed)", exit_code=2)


class TrainingFailed(TrainError):
    """A run that started and stopped without finishing (its output could not be written);
    `.result` (a `genaisdk.backend.jax.train.TrainResult`) tells what was kept."""

    def __init__(self, result: Any):
        super().__init__(result.message, exit_code=1)
        self.result = result


class TrainingDiverged(TrainingFailed):
    """The loss or gradient norm became NaN or infinite; `.result` tells what was kept."""
