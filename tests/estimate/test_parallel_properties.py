"""Properties of the parallel-layout estimates for any model and layout (Hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from genaisdk.dims import Dimensions
from genaisdk.estimate.activations import activation_memory
from genaisdk.estimate.comm import Cluster
from genaisdk.estimate.constants import ALLOCATOR_FRAGMENTATION
from genaisdk.estimate.parallel import in_flight, micro_batches, parallel_memory
from genaisdk.estimate.steptime import step_time

SETTINGS = settings(max_examples=25, deadline=None)
A100 = Cluster(peak_flops=312e12, memory_bytes=80 * 2**30, memory_bandwidth=2039e9, intra_node_bandwidth=300e9,
               inter_node_bandwidth=25e9, devices_per_node=8)


@st.composite
def models(draw):
    """Decoders whose heads and FFN width split over up to 16 tensor-parallel ranks and whose
    layers split evenly over up to 16 stages (uneven splits give the first stages one layer
    more, which can outweigh halving the stage)."""
    heads = draw(st.sampled_from([16, 32, 48, 64]))
    head_dim = draw(st.sampled_from([64, 128]))
    kv = draw(st.sampled_from([None, 1, 4, 8]))
    return Dimensions(
        layers=draw(st.sampled_from([16, 32, 48, 64])),
        d_model=heads * head_dim,
        heads=heads,
        kv_heads=kv,
        d_ff=16 * draw(st.integers(min_value=64, max_value=2048)),
        vocab=draw(st.sampled_from([32000, 50257, 128256])),
        context=4096,
        ffn=draw(st.sampled_from(["gelu", "gated"])),
        tied_embeddings=draw(st.booleans()),
        biases=draw(st.booleans()),
    )


@st.composite
def layouts(draw):
    return dict(
        seq=draw(st.sampled_from([512, 2048, 4096])),
        global_batch=draw(st.sampled_from([64, 256, 1024])),
        micro_batch=draw(st.sampled_from([1, 2, 4])),
        data_parallel=draw(st.sampled_from([1, 2, 8])),
        zero_stage=draw(st.sampled_from([0, 1, 2, 3])),
        recompute=draw(st.sampled_from(["none", "selective", "full"])),
        sequence_parallel=draw(st.booleans()),
        flash=draw(st.booleans()),
    )


def _embedding_in_flight(dims, layout, p):
    """The first stage's in-flight embedding term (dropout mask x micro-batches in flight),
    allocator fragmentation included: the one pipeline term allowed to grow with p."""
    one = activation_memory(dims.evolve(layers=1), seq=layout["seq"], micro_batch=layout["micro_batch"],
                            recompute=layout["recompute"], flash=layout["flash"],
                            tensor_parallel=layout.get("tensor_parallel", 1),
                            sequence_parallel=layout["sequence_parallel"])
    m = micro_batches(global_batch=layout["global_batch"], data_parallel=layout["data_parallel"],
                      micro_batch=layout["micro_batch"])
    return float(one["embedding"]) * float(in_flight(pipeline_parallel=p, micro_batches=m)) * (1 + ALLOCATOR_FRAGMENTATION)


@SETTINGS
@given(models(), layouts(), st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 4]))
def test_memory_never_grows_when_t_doubles(dims, layout, t, p):
    """Same d, same global batch, twice the tensor-parallel degree (so twice the devices):
    every term per device is split further or stays whole; K/V beyond the K/V heads stay one
    head per device."""
    before = parallel_memory(dims, tensor_parallel=t, pipeline_parallel=p, **layout)
    after = parallel_memory(dims, tensor_parallel=2 * t, pipeline_parallel=p, **layout)
    assert float(after.total) <= float(before.total) * (1 + 1e-12)
    assert float(after.first.model_state) <= float(before.first.model_state) * (1 + 1e-12)


@SETTINGS
@given(models(), layouts(), st.sampled_from([1, 2, 4]), st.sampled_from([1, 2, 4, 8]))
def test_memory_never_grows_when_p_doubles_but_for_the_in_flight_embedding(dims, layout, t, p):
    """Same t and d, same global batch, a pipeline twice as deep: the stage's layers halve
    while the micro-batches in flight on the first stage at most double, so the layers'
    activations do not grow (Megatron-LM's rule: L layers' worth at the first stage); the
    weights, gradients and optimizer state of the most loaded stage do not grow. The stated
    exception is the first stage's embedding output, kept for each of min(p, m) micro-batches
    in flight."""
    before = parallel_memory(dims, tensor_parallel=t, pipeline_parallel=p, **layout)
    after = parallel_memory(dims, tensor_parallel=t, pipeline_parallel=2 * p, **layout)
    state = lambda mem: max(float(mem.first.model_state), float(mem.last.model_state))  # noqa: E731
    assert state(after) <= state(before) * (1 + 1e-12)
    allowed = _embedding_in_flight(dims, dict(layout, tensor_parallel=t), 2 * p) - _embedding_in_flight(
        dims, dict(layout, tensor_parallel=t), p)
    assert float(after.total) <= float(before.total) * (1 + 1e-12) + allowed


@SETTINGS
@given(models(), layouts(), st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2]),
       st.booleans())
def test_time_times_devices_never_below_the_compute_only_bound(dims, layout, t, p, v, overlap):
    """seconds x devices x peak >= the FLOPs the step computes (recomputation included), and so
    >= the model FLOPs: MFU and HFU never exceed 1."""
    layout = {k: val for k, val in layout.items()}
    v = v if p > 1 else 1
    step = step_time(dims, A100, tensor_parallel=t, pipeline_parallel=p, virtual_stages=v,
                     overlap_data_parallel=overlap, **layout)
    devices = t * p * layout["data_parallel"]
    work = float(step.seconds) * devices * A100.peak_flops
    assert work >= float(step.hardware_flops)
    assert work >= float(step.model_flops)
    assert 0 < float(step.mfu) <= float(step.hfu) < 1
    assert all(float(x) >= 0 for x in step.parts.values())


@SETTINGS
@given(models(), layouts(), st.sampled_from([2, 4, 8]))
def test_compute_per_device_scales_as_one_over_d(dims, layout, t):
    """Four times the data-parallel degree at the same global batch: a quarter of the
    micro-batches per device, so a quarter of the compute part; only communication grows."""
    layout = dict(layout, data_parallel=1, global_batch=256, micro_batch=1)
    one = step_time(dims, A100, tensor_parallel=t, **layout)
    layout["data_parallel"] = 4
    four = step_time(dims, A100, tensor_parallel=t, **layout)
    assert np.isclose(float(four.parts["compute"]) * 4, float(one.parts["compute"]), rtol=1e-9)
