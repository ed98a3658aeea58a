"""Evaluation metrics that need no JAX: language-model figures (perplexity, bits per byte)
and the task metrics (ROUGE, BLEU, chrF, accuracy, F1), with the map from a task to its
metric. The model side (losses, generations) is `genaisdk.backend.jax.evaluate`."""
