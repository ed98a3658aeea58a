"""The train step: every family trains under every strategy, and the strategies agree."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from genaisdk.backend.jax.step import Trainer  # noqa: E402

FAMILIES = ("decoder", "encoder", "encoder-decoder")
STRATEGIES = ("ddp", "zero1", "zero2", "fsdp")
STEPS = 8


@pytest.fixture(scope="module")
def runs(make_config, run_steps):
    """(family, strategy) -> (trainer, losses, final state), computed once per family."""
    cache: dict = {}

    def get(family: str, strategy: str):
        key = (family, strategy)
        if key not in cache:
            trainer = Trainer(make_config(family, strategy=strategy))
            losses, state, _ = run_steps(trainer, STEPS)
            cache[key] = (trainer, losses, state)
        return cache[key]

    return get


@pytest.mark.parametrize("family", FAMILIES)
def test_every_strategy_trains_and_all_give_the_same_losses(runs, family):
    reference = None
    for strategy in STRATEGIES:
        _, losses, _ = runs(family, strategy)
        assert np.all(np.isfinite(losses))
        assert losses[-1] < 0.8 * losses[0], f"{family}/{strategy} did not learn: {losses}"
        if reference is None:
            reference = losses
        else:
            np.testing.assert_allclose(losses, reference, rtol=0, atol=1e-5, err_msg=f"{family}/{strategy} vs ddp")


def _shard_shapes(array) -> set[tuple[int, ...]]:
    return {tuple(shard.data.shape) for shard in array.addressable_shards}


def test_fsdp_gives_each_device_an_eighth_of_every_sharded_parameter(runs):
    trainer, _, state = runs("decoder", "fsdp")
    sharded = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]:
        spec = leaf.sharding.spec
        shapes = _shard_shapes(leaf)
        assert len(shapes) == 1, f"uneven shards for {path}"
        (shard_shape,) = shapes
        if any(axis is not None for axis in spec):
            sharded += 1
            assert np.prod(shard_shape) * 8 == leaf.size, f"{path}: shard {shard_shape} of {leaf.shape}"
        else:
            assert shard_shape == leaf.shape
    # Every matrix of the tiny model has a dimension divisible by 8, so every one is sharded.
    matrices = [leaf for leaf in jax.tree.leaves(state.params) if leaf.ndim >= 2]
    assert sharded >= len(matrices) > 0


def test_zero1_shards_optimizer_state_but_not_weights(runs):
    trainer, _, state = runs("decoder", "zero1")
    for leaf in jax.tree.leaves(state.params):
        assert _shard_shapes(leaf) == {leaf.shape}
    moments = [leaf for leaf in jax.tree.leaves(state.opt_state) if leaf.ndim >= 2]
    assert moments
    for leaf in moments:
        (shape,) = _shard_shapes(leaf)
        assert np.prod(shape) * 8 == leaf.size


def test_optimizer_state_shardings_mirror_the_parameters(runs):
    for strategy in ("zero1", "fsdp"):
        trainer, _, state = runs("decoder", strategy)
        adam = trainer.state_shardings.opt_state[0]  # optax.adamw: (ScaleByAdamState, ...)
        mu = jax.tree.map(lambda s: s.spec, adam.mu)
        assert jax.tree.structure(adam.mu) == jax.tree.structure(state.params)
        assert jax.tree.map(lambda s: s.spec, adam.nu) == mu
        assert adam.count.spec == jax.sharding.PartitionSpec()
        if strategy == "fsdp":  # weights and moments share one rule table: same layout
            assert mu == jax.tree.map(lambda s: s.spec, trainer.state_shardings.params)
        else:  # every moment of a matrix is split over the 8 devices
            for path, spec in jax.tree_util.tree_flatten_with_path(mu)[0]:
                assert spec != jax.sharding.PartitionSpec() or "norm" in jax.tree_util.keystr(path)
        assert jax.tree.map(lambda x: x.sharding.spec, state.opt_state[0].mu) == mu


def test_jit_and_shard_map_data_parallelism_agree(runs, make_config, run_steps):
    _, jit_losses, _ = runs("decoder", "ddp")
    trainer = Trainer(make_config("decoder", strategy="ddp", dp_impl="shard_map"))
    losses, _, _ = run_steps(trainer, STEPS)
    np.testing.assert_allclose(losses, jit_losses, rtol=0, atol=1e-5)


def test_accumulation_over_micro_steps_equals_one_big_step(runs, make_config, run_steps):
    """2 micro-steps of 1 sequence per device == 1 step of 2 sequences per device."""
    _, accumulated, _ = runs("encoder", "ddp")
    trainer = Trainer(make_config("encoder", strategy="ddp", micro_batch=2, accumulation=1))
    losses, _, _ = run_steps(trainer, STEPS)
    np.testing.assert_allclose(losses, accumulated, rtol=0, atol=1e-5)


def test_eval_step_reports_mean_loss_and_token_count(runs, rows_for):
    trainer, losses, state = runs("decoder", "ddp")
    batch = trainer.make_batch(rows_for(trainer, 99), 0)
    result = {k: float(v) for k, v in trainer.eval_step(state, batch).items()}
    assert result["tokens"] == float(batch["weights"].sum())
    assert 0 < result["loss"] < losses[0]


def test_metrics_are_scalars_with_the_documented_names(runs, rows_for):
    trainer, _, state = runs("encoder-decoder", "ddp")
    batch = trainer.make_batch(rows_for(trainer, 5), 0)
    state, metrics = trainer.train_step(state, batch)
    assert {"loss", "grad_norm", "lr", "loss_scale", "skipped"} <= set(metrics)
    assert all(np.ndim(v) == 0 for v in metrics.values())
    assert int(state.step) == STEPS + 1
    assert float(metrics["lr"]) == pytest.approx(float(trainer.schedule(STEPS)))


def test_abstract_state_matches_the_real_one(runs):
    trainer, _, state = runs("decoder", "fsdp")
    abstract = trainer.abstract_state()
    real = jax.tree.map(lambda x: (x.shape, x.dtype, x.sharding.spec), state)
    assumed = jax.tree.map(lambda x: (x.shape, x.dtype, x.sharding.spec), abstract)
    assert real == assumed


def test_flops_per_step_is_the_records_per_token_figure_times_tokens(runs):
    trainer, _, _ = runs("decoder", "ddp")
    config = trainer.config
    per_token = config.architecture.flops_per_token(config.dims, config.seq_len)
    assert trainer.flops_per_step == pytest.approx(per_token * config.global_batch * config.seq_len)
