"""The train step: every family trains under every strategy, and the strategies agree."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from genaisdk.backend.jax.sharding import ShardingWarning  # noqa: E402
from genaisdk.backend.jax.step import Trainer  # noqa: E402

FAMILIES = ("decoder", "encoder", "encoder-decoder")
STRATEGIES = ("ddp", "zero1", "zero2", "fsdp")
STEPS = 8


def _shard_shapes(array) -> set[tuple[int, ...]]:
    return {tuple(shard.data.shape) for shard in array.addressable_shards}


def check_fsdp_gives_each_device_an_eighth_of_every_sharded_parameter(state):
    sharded = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]:
        shapes = _shard_shapes(leaf)
        assert len(shapes) == 1, f"uneven shards for {path}"
        (shard_shape,) = shapes
        if any(axis is not None for axis in leaf.sharding.spec):
            sharded += 1
            assert np.prod(shard_shape) * 8 == leaf.size, f"{path}: shard {shard_shape} of {leaf.shape}"
        else:
            assert shard_shape == leaf.shape
    # Every matrix of the tiny models has a dimension divisible by 8, so every one is sharded.
    matrices = [leaf for leaf in jax.tree.leaves(state.params) if leaf.ndim >= 2 and leaf.shape[-1] % 8 == 0]
    assert sharded >= len(matrices) > 0


def check_zero1_shards_optimizer_state_but_not_weights(state):
    for leaf in jax.tree.leaves(state.params):
        assert _shard_shapes(leaf) == {leaf.shape}
    moments = [leaf for leaf in jax.tree.leaves(state.opt_state) if leaf.ndim >= 2 and leaf.shape[-1] % 8 == 0]
    assert moments
    for leaf in moments:
        (shape,) = _shard_shapes(leaf)
        assert np.prod(shape) * 8 == leaf.size


def check_optimizer_state_mirrors_the_parameters(trainer, state, strategy):
    adam = trainer.state_shardings.opt_state[0]  # optax.adamw: (ScaleByAdamState, ...)
    mu = jax.tree.map(lambda s: s.spec, adam.mu)
    assert jax.tree.structure(adam.mu) == jax.tree.structure(state.params)
    assert jax.tree.map(lambda s: s.spec, adam.nu) == mu
    assert adam.count.spec == jax.sharding.PartitionSpec()
    assert jax.tree.map(lambda x: x.sharding.spec, state.opt_state[0].mu) == mu
    if strategy == "fsdp":  # weights and moments share one rule table: the same layout
        assert mu == jax.tree.map(lambda s: s.spec, trainer.state_shardings.params)


def check_abstract_state_matches(trainer, state):
    real = jax.tree.map(lambda x: (x.shape, x.dtype, x.sharding.spec), state)
    assumed = jax.tree.map(lambda x: (x.shape, x.dtype, x.sharding.spec), trainer.abstract_state())
    assert real == assumed


def check_every_strategy_trains_and_all_agree(make_config, run_steps, family):
    """Train under ddp, zero1, zero2 and fsdp; return {strategy: (trainer, losses, state)}."""
    runs = {}
    for strategy in STRATEGIES:
        if family == "encoder-decoder" and strategy != "ddp":
            # T5's relative-bias tables (32 buckets x 4 heads) cannot be split 8 ways: said, not hidden.
            with pytest.warns(ShardingWarning, match="relative_bias .* replicated"):
                trainer = Trainer(make_config(family, strategy=strategy))
        else:
            trainer = Trainer(make_config(family, strategy=strategy))
        losses, state, _ = run_steps(trainer, STEPS)
        assert np.all(np.isfinite(losses))
        assert losses[-1] < 0.8 * losses[0], f"{family}/{strategy} did not learn: {losses}"
        np.testing.assert_allclose(
            losses, runs.get("ddp", (None, losses))[1], rtol=0, atol=1e-5, err_msg=f"{family}/{strategy} vs ddp"
        )
        check_abstract_state_matches(trainer, state)
        runs[strategy] = (trainer, losses, state)
    check_zero1_shards_optimizer_state_but_not_weights(runs["zero1"][2])
    check_fsdp_gives_each_device_an_eighth_of_every_sharded_parameter(runs["fsdp"][2])
    return runs


# Each family's test trains its four strategies once and checks everything on those runs,
# so that no compiled step is built twice (test workers do not share them).


def test_decoder_every_strategy_same_losses_sharded_as_the_rules_say_and_shard_map_agrees(make_config, run_steps):
    runs = check_every_strategy_trains_and_all_agree(make_config, run_steps, "decoder")
    for strategy in ("zero1", "fsdp"):
        trainer, _, state = runs[strategy]
        check_optimizer_state_mirrors_the_parameters(trainer, state, strategy)
    # Data parallelism written with shard_map and an explicit psum gives the jit path's losses.
    trainer = Trainer(make_config("decoder", strategy="ddp", dp_impl="shard_map"))
    losses, _, _ = run_steps(trainer, STEPS)
    np.testing.assert_allclose(losses, runs["ddp"][1], rtol=0, atol=1e-5)
    # flops_per_step: the record's per-token figure times the tokens of a step.
    trainer, _, _ = runs["ddp"]
    config = trainer.config
    per_token = config.architecture.flops_per_token(config.dims, config.seq_len)
    assert trainer.flops_per_step == pytest.approx(per_token * config.global_batch * config.seq_len)


def test_encoder_every_strategy_same_losses_and_accumulation_equals_one_big_step(make_config, run_steps, rows_for):
    runs = check_every_strategy_trains_and_all_agree(make_config, run_steps, "encoder")
    # 2 micro-steps of 1 sequence per device == 1 step of 2 sequences per device.
    trainer = Trainer(make_config("encoder", strategy="ddp", micro_batch=2, accumulation=1))
    losses, _, _ = run_steps(trainer, STEPS)
    np.testing.assert_allclose(losses, runs["ddp"][1], rtol=0, atol=1e-5)
    # eval_step: the mean loss of the loss-carrying tokens, and their count.
    trainer, train_losses, state = runs["zero2"]
    batch = trainer.make_batch(rows_for(trainer, 99), 0)
    result = {k: float(v) for k, v in trainer.eval_step(state, batch).items()}
    assert result["tokens"] == float(batch["weights"].sum())
    assert 0 < result["loss"] < train_losses[0]


def test_encoder_decoder_every_strategy_same_losses_and_metrics_are_scalars(make_config, run_steps, rows_for):
    runs = check_every_strategy_trains_and_all_agree(make_config, run_steps, "encoder-decoder")
    trainer, _, state = runs["fsdp"]
    state, metrics = trainer.train_step(state, trainer.make_batch(rows_for(trainer, 5), 0))
    assert {"loss", "grad_norm", "lr", "loss_scale", "skipped", "tokens"} <= set(metrics)
    assert all(np.ndim(v) == 0 for v in metrics.values())
    assert int(state.step) == STEPS + 1
    assert float(metrics["lr"]) == pytest.approx(float(trainer.schedule(STEPS)))
    assert float(metrics["skipped"]) == 0.0 and float(metrics["loss_scale"]) == 1.0
