"""Pure estimation math: parameters, FLOPs, memory, scaling, time and cost, inference.

No I/O and no JAX. Every function cites its source (paper, equation or table) in its
docstring. The memory and time functions accept numpy arrays for their numeric arguments and
broadcast them, so that the planner can evaluate a whole configuration grid in one call.

Modules: `params` (exact counts), `flops`, `activations`, `memory`, `inference`,
`adaptation`, `scaling`, `cost`, `data`, `sizing`, `constants`; for tensor, pipeline,
sequence and data parallelism: `parallel` (memory per device and stage), `efficiency`
(achievable fractions of peak), `comm` (the cluster's figures, collectives), `steptime`
(seconds per step and MFU), `layouts` (the vectorized layout search), `derivations` (their
named terms for explanations).
"""
