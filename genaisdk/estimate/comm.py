"""Communication: the cluster's figures, collective volumes, and the bandwidth of a group.

Volumes are those of the bandwidth-optimal ring algorithms (Patarasuk & Yuan 2009,
"Bandwidth optimal all-reduce algorithms for clusters of workstations"; the same factors
NCCL's performance notes use to turn a measured time into "bus bandwidth",
nccl-tests `doc/PERFORMANCE.md`): for a message of S bytes over n devices, each device
sends and receives

    all-reduce:      2·(n-1)/n · S
    reduce-scatter:  (n-1)/n · S        (S: the whole, unsharded message)
    all-gather:      (n-1)/n · S
    point-to-point:  S

and the collective takes volume / (η · bandwidth of its slowest link). Latency is left
out: every message this model sends is a layer's activations or a stage's gradients,
megabytes at least, where the per-message latency of microseconds is below the
bandwidth term's rounding.

Link efficiencies η are Calculon's (Isaev et al. 2023, system descriptions
`a100_80g.json`, `h100_80g_nvl8.json`): 0.6 of NVLink's bandwidth and 0.9 of an
InfiniBand link's. They agree with what nccl-tests measure: about 200 GB/s of all-reduce bus
bandwidth over the 300 GB/s NVLink of an A100 node (NVIDIA/nccl-tests issues 149 and 178),
and 85-96 GB/s over 4 x 200 Gb/s HDR InfiniBand (issue 119).

A group spread over several nodes (the placement `group_bandwidth` describes) is limited by
the network: NCCL runs one ring channel per network interface, each crossing every node
boundary once, so k members of the group in one node, each with its own interface of
bandwidth B, carry the ring at k·B together, capped by the in-node link.

Bandwidths are per device and per direction, in bytes/s: an A100's NVLink 3 is 600 GB/s
counting both directions, 300e9 here; one HDR InfiniBand adapter per GPU is 200 Gb/s,
25e9 here.
"""

from __future__ import annotations

import attrs
import numpy as np

INTRA_NODE_EFFICIENCY = 0.6
"""Achieved fraction of the in-node link's bandwidth (Calculon, NVLink; module docstring)."""

INTER_NODE_EFFICIENCY = 0.9
"""Achieved fraction of a network adapter's bandwidth (Calculon, InfiniBand; module docstring)."""


def _positive(instance, attribute, value) -> None:
    if np.any(np.asarray(value, dtype=float) <= 0):
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Cluster:
    """The figures of one device type in its nodes that the step-time and memory models need.

    - `peak_flops`: dense peak FLOP/s of the compute dtype (datasheet);
    - `memory_bytes`: device memory capacity;
    - `memory_bandwidth`: device memory (HBM) bandwidth, bytes/s;
    - `intra_node_bandwidth`: per device, one direction, bytes/s, to another device of the
      same node (NVLink, or PCIe where there is none);
    - `inter_node_bandwidth`: per device, one direction, bytes/s, to another node (the
      network adapters of a node divided by its devices);
    - `devices_per_node`;
    - `host_bandwidth`: per device, one direction, bytes/s, to its host's memory (PCIe x16
      or NVLink-C2C), or None where unknown: what offloading strategies move crosses it.

    Every field may be a numpy array (a grid over hardware); the efficiencies default to the
    module's constants.
    """

    peak_flops: float = attrs.field(validator=_positive)
    memory_bytes: float = attrs.field(validator=_positive)
    memory_bandwidth: float = attrs.field(validator=_positive)
    intra_node_bandwidth: float = attrs.field(validator=_positive)
    inter_node_bandwidth: float = attrs.field(validator=_positive)
    devices_per_node: int = attrs.field(validator=_positive)
    host_bandwidth: float | None = None
    intra_node_efficiency: float = attrs.field(default=INTRA_NODE_EFFICIENCY, validator=_positive)
    inter_node_efficiency: float = attrs.field(default=INTER_NODE_EFFICIENCY, validator=_positive)


def all_reduce_bytes(nbytes, n):
    """Bytes each device sends in a ring all-reduce of `nbytes` over n: 2·(n-1)/n·S."""
    n = np.asarray(n, dtype=float)
    return 2.0 * (n - 1.0) / n * np.asarray(nbytes, dtype=float)


def reduce_scatter_bytes(nbytes, n):
    """Bytes each device sends in a ring reduce-scatter of an `nbytes` message: (n-1)/n·S."""
    n = np.asarray(n, dtype=float)
    return (n - 1.0) / n * np.asarray(nbytes, dtype=float)


def all_gather_bytes(nbytes, n):
    """Bytes each device sends in a ring all-gather into an `nbytes` message: (n-1)/n·S."""
    return reduce_scatter_bytes(nbytes, n)


def group_bandwidth(cluster: Cluster, *, size, stride=1):
    """Achieved bandwidth per device (bytes/s) of a group of `size` devices whose ranks are
    `stride` apart, ranks filling nodes in order (Megatron-LM's rank order puts the tensor-
    parallel group innermost, stride 1, the data-parallel group at stride t and consecutive
    pipeline stages t·d apart).

    Within one node: η_intra · intra-node bandwidth. Across nodes, with k = the group's
    members per node: min(η_intra · intra, k · η_inter · inter-node bandwidth) (module
    docstring). A group of one device has no traffic; its bandwidth is returned as inf.
    """
    size = np.asarray(size, dtype=float)
    stride = np.asarray(stride, dtype=float)
    per_node = np.asarray(cluster.devices_per_node, dtype=float)
    intra = cluster.intra_node_efficiency * np.asarray(cluster.intra_node_bandwidth, dtype=float)
    inter = cluster.inter_node_efficiency * np.asarray(cluster.inter_node_bandwidth, dtype=float)
    members = np.clip(np.floor(per_node / stride), 1.0, size)
    spans = size * stride > per_node
    bandwidth = np.where(spans, np.minimum(intra, members * inter), intra)
    return np.where(size > 1, bandwidth, np.inf)


def point_to_point_bandwidth(cluster: Cluster, *, crosses_nodes):
    """Achieved bandwidth of one device's point-to-point transfer: its network adapter when
    the peer is in another node, the in-node link otherwise."""
    intra = cluster.intra_node_efficiency * np.asarray(cluster.intra_node_bandwidth, dtype=float)
    inter = cluster.inter_node_efficiency * np.asarray(cluster.inter_node_bandwidth, dtype=float)
    return np.where(np.asarray(crosses_nodes, dtype=bool), inter, intra)
