"""`genaisdk.train(spec, ...)`: train the spec'd model with the JAX backend, and say how it went.

    >>> result = genaisdk.train("specs/tiny-gpt.genai", steps=40, out="runs/tiny")
    >>> result.final_loss, result.tokens_per_s, result.checkpoint_dir

The options are those of `genaisdk.backend.jax.options.TrainOptions`, given as one object,
as keywords, or both (keywords win). The run is `genaisdk.backend.jax.train.train`; this
function adds the summary at the end (`genaisdk.render.run.train_summary`), unless
`quiet=True`, on the primary process only. It lives above both the backend and the
renderers, which do not import each other.
"""

from __future__ import annotations

import sys
from typing import Any


def train(spec: Any, options: Any = None, /, **fields: Any) -> Any:
    """Train `spec` (a path, spec text or a Spec) as its plan says.

    `options`: a `TrainOptions`; `fields`: TrainOptions fields (`steps`, `out`, `resume`,
    `overrides`, `checkpoint_every`, `eval_every`, `devices`, `tensor_parallel`,
    `sequence_parallel`, `precision`, `adaptation`,
    `device_memory`, `allow_data_outside`, `quiet`, `progress`, `stream`, ...).

    Returns a `TrainResult`. Raises `TrainingDiverged` / `TrainingFailed` (with `.result`)
    when the run stopped without finishing, `NothingTrains` (a `TrainError` with exit status
    0) for a plan that trains nothing (`adapt.method = prompt`; nothing is written, the
    message says how to use the model), `TrainError` for settings that cannot run,
    `genaisdk.SpecError` for an invalid spec; see `genaisdk.backend.jax.train.train`.
    """
    from genaisdk.backend.jax import train as backend
    from genaisdk.backend.jax.options import TrainOptions
    from genaisdk.render.run import train_summary

    if options is None:
        options = TrainOptions(**fields)
    elif fields:
        options = options.evolve(**fields)
    try:
        result = backend.train(spec, options)
    except backend.TrainingFailed as exc:
        _summary(exc.result, options, train_summary)
        raise
    _summary(result, options, train_summary)
    return result


def _summary(result: Any, options: Any, words: Any) -> None:
    if options.quiet or result.process_index != 0:
        return
    print(words(result), file=options.stream or sys.stdout, flush=True)
