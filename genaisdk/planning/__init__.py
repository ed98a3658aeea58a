"""The planner's parts: resolving the spec's names (`resolve`), choosing the model
(`model`), the senior-engineer checks (`advice`), the derivations `genai explain` prints
(`derive`), the defaults it falls back on (`defaults`) and `--sweep` (`sweep`).

`genaisdk.planner.plan` ties them together; none of them has a formula of its own: the
numbers come from `genaisdk.estimate` and the registry's records.
"""
