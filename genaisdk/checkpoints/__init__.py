"""Pretrained checkpoints on disk, read without JAX.

- `genaisdk.checkpoints.safetensors_files`: safetensors headers, the sharded index, and
  which file holds which tensor (pure Python: the planner can read a checkpoint's shapes);
- `genaisdk.checkpoints.hf_config`: a Hugging Face `config.json` as a model family,
  `Dimensions` and token ids (`read_checkpoint`), and back (`to_hf_config`, for export);
- `genaisdk.checkpoints.hf_map`: the parameter map of each family, Hugging Face tensor name
  and layout <-> genaisdk parameter path and layout, in NumPy.

Placing the weights on devices is the JAX backend's (`genaisdk.backend.jax.hf`).
"""

from __future__ import annotations


class CheckpointFormatError(ValueError):
    """A checkpoint that cannot be read as the model it claims to be. The message is one line
    that names the file (and the tensor or key) and what to do; the CLI prints it and exits 1."""
