"""What each block of a `.genai` file may say: keys, types, units, allowed words, docs.

The grammar is generic; this table gives it meaning. For every block it lists each key,
the kind of value it takes (a registered name, a quantity of some dimension, a word from a
fixed list, a string, ...), which registry catalog validates a name, and one line of
documentation. Every field of `genaisdk.spec.model` is reached from exactly one key here
(a test checks it). Architectures add keys to `model { }` through their `extra_dims`
(`extra_keys`); plugins never add grammar.

Value kinds:
- `name`: one registered name (`registry` says which catalog), or `auto` where allowed.
- `choice`: one word from `words`.
- `word`: any one word or string (free: `domain = legal`).
- `string`: a double-quoted string.
- `bool`: `true` or `false`.
- `quantity`: a number with a unit of `dimension` (see `genaisdk.spec.units`).
- `hardware`: `64 x a100-80gb`, `auto x h100-sxm` or `a100-80gb`; a `{ ... }` map
  (`INLINE_DEVICE`) in place of the name describes a device that is not in the catalog.
- `mix`: an inline map of free words to percentages that add up to 100%.
- `sources`: a string, a word, or a list of them (files, globs, `synthetic`).
- `words`: a word or a list of words.
- `specifier`: a version specifier string (`">=0.1"`), in `requires`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from genaisdk.dims import FFN_KINDS, NORM_KINDS, POSITION_KINDS

KV_PRECISIONS = ("fp16", "bf16", "fp8", "int8")
"""Types a KV cache is stored in (vLLM's `kv_cache_dtype`: auto, fp8; LMDeploy and
TensorRT-LLM also int8)."""

VALUE_KINDS = ("name", "choice", "word", "string", "bool", "quantity", "hardware", "mix", "sources", "words", "specifier")


@attrs.frozen(kw_only=True)
class Key:
    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(VALUE_KINDS))
    doc: str
    field: str = ""
    """The attribute of the block's Spec class it fills (default: `name`)."""
    registry: str | None = None
    """For `name`: the catalog (a key of genaisdk.records.RECORD_KINDS) that validates it."""
    words: tuple[str, ...] = ()
    """For `choice`: the allowed words."""
    dimension: str | None = None
    """For `quantity`: a key of genaisdk.spec.units.DIMENSIONS."""
    integer: bool = False
    unit_required: bool = False
    """A bare number is refused (time, bytes, money and global batch need their unit)."""
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None
    """An exclusive upper limit (`held_out` is less than 100%)."""
    positive: bool = False
    """Strictly greater than zero."""
    auto: bool = False
    """`auto` is accepted: the planner fills the value."""
    none: bool = False
    """`none` is accepted and means "switched off" (stored as None)."""
    strings: bool = False
    """For `name`: a quoted string is accepted too (`preset = "flan-t5-xl"`)."""
    ops: tuple[str, ...] = ("=",)
    """Operators allowed: budgets take `<=` as well as `=`."""
    example: str = ""
    """A typical value, shown in hints (`1M tokens`)."""

    @property
    def target(self) -> str:
        return self.field or self.name

    def describe(self) -> str:
        """The expected value in words, for messages and docs."""
        from genaisdk.spec.units import DIMENSIONS

        if self.kind == "name":
            noun = singular(self.registry or "name")
            text = f"{'an' if noun[0] in 'aeiou' else 'a'} {noun} name"
        elif self.kind == "choice":
            text = " | ".join(self.words)
        elif self.kind == "quantity":
            text = DIMENSIONS[self.dimension or "count"]
            if self.integer:
                text += " (a whole number)"
        else:
            text = {
                "word": "a word",
                "string": "a string in double quotes",
                "bool": "true or false",
                "hardware": "hardware, e.g. `64 x a100-80gb`",
                "mix": "a map of percentages, e.g. `{ legal = 51%, web = 49% }`",
                "sources": "a path, a glob, `synthetic`, or a list of them",
                "words": "a word or a list of words",
                "specifier": 'a version specifier string, e.g. ">=0.1"',
            }[self.kind]
        if self.auto:
            text += ", or auto"
        return text


def singular(kind: str) -> str:
    """A catalog kind as one of its records is called (`strategies` -> `strategy`)."""
    return {
        "tasks": "task",
        "architectures": "architecture",
        "objectives": "objective",
        "precisions": "precision",
        "optimizers": "optimizer",
        "strategies": "strategy",
        "presets": "preset",
        "adaptations": "adaptation",
        "hardware": "hardware",
    }.get(kind, kind)


@attrs.frozen(kw_only=True)
class BlockSchema:
    name: str
    doc: str
    keys: Mapping[str, Key] = attrs.field(factory=dict)
    blocks: tuple[str, ...] = ()
    """Blocks allowed directly inside this one."""
    label: bool = False
    """Whether the block takes (and requires) a string label: `project "name" { }`."""
    free_keys: Key | None = None
    """If set, any key is allowed and takes this kind of value (`requires`, `mix`)."""
    spec_class: str = ""
    """The class in genaisdk.spec.model this block builds."""


def _keys(*keys: Key) -> dict[str, Key]:
    return {k.name: k for k in keys}


def _count(name: str, doc: str, **kw: Any) -> Key:
    return Key(name=name, kind="quantity", dimension="count", integer=True, doc=doc, **kw)


BLOCKS: dict[str, BlockSchema] = {
    "": BlockSchema(
        name="",
        doc="The file: a `genai 1` line, an optional `requires` block and one `project` block.",
        blocks=("requires", "project"),
    ),
    "project": BlockSchema(
        name="project",
        spec_class="Project",
        label=True,
        doc='The project: `project "name" { ... }`, what it is for and how to build it.',
        blocks=("model", "data", "adapt", "train", "budget", "serve", "requires"),
        keys=_keys(
            Key(name="scope", kind="string", doc="What the project is for, in a sentence."),
            Key(name="task", kind="name", registry="tasks", doc="The task; picks the model family and objective unless set."),
            Key(name="domain", kind="word", doc="The subject area (free word), e.g. legal, finance."),
        ),
    ),
    "model": BlockSchema(
        name="model",
        spec_class="ModelSpec",
        doc="The model: family, size or preset, and any explicit dimensions.",
        keys=_keys(
            Key(name="family", kind="name", registry="architectures", auto=True,
                doc="The architecture: encoder, decoder, encoder-decoder (or a plugin's); auto follows the task."),
            Key(name="objective", kind="name", registry="objectives", auto=True,
                doc="The pretraining objective: masked-lm, causal-lm, span-corruption; auto follows the family."),
            Key(example="7B", name="size", kind="quantity", dimension="params", auto=True, positive=True,
                doc="Total parameters (`7B`); auto = compute-optimal for the budget."),
            Key(name="preset", kind="name", registry="presets", strings=True,
                doc="A published model whose dimensions to use, e.g. llama-7b."),
            Key(name="from", field="checkpoint", kind="string", example='"models/llama-3.2-1b"',
                doc="A Hugging Face checkpoint folder (config.json + model.safetensors), relative to the spec."),
            Key(example="2048 tokens", name="context", kind="quantity", dimension="tokens", integer=True, positive=True,
                auto=True, doc="Sequence length trained on, in tokens; auto = the longest that fits."),
            _count("layers", "Transformer blocks (the encoder's, for an encoder-decoder).", positive=True),
            _count("decoder_layers", "Decoder blocks of an encoder-decoder (default: `layers`).", positive=True),
            _count("d_model", "Hidden size.", positive=True),
            _count("heads", "Attention heads.", positive=True),
            _count("kv_heads", "Key/value heads: 1 = multi-query, fewer than heads = grouped-query.", positive=True),
            _count("head_dim", "Size of one head (default d_model / heads).", positive=True),
            _count("d_ff", "Feed-forward inner size.", positive=True),
            _count("vocab", "Vocabulary size.", positive=True),
            Key(name="ffn", kind="choice", words=FFN_KINDS, doc="Feed-forward kind: gelu, relu (two matrices) or gated (three)."),
            Key(name="norm", kind="choice", words=NORM_KINDS, doc="Normalization: layernorm or rmsnorm."),
            Key(name="positions", kind="choice", words=POSITION_KINDS, doc="Position encoding."),
            Key(name="tied_embeddings", kind="bool", doc="The output projection reuses the token embedding."),
            Key(name="biases", kind="bool", doc="Linear layers carry biases."),
        ),
    ),
    "data": BlockSchema(
        name="data",
        spec_class="DataSpec",
        doc="The training data: how many tokens, from where, in what mix.",
        keys=_keys(
            Key(example="60B tokens", name="tokens", kind="quantity", dimension="tokens", positive=True, doc="Training tokens (after filtering)."),
            Key(example="2T tokens", name="raw_tokens", kind="quantity", dimension="tokens", positive=True, doc="Size of the raw corpus before filtering."),
            Key(example="3%", name="keep", kind="quantity", dimension="fraction", minimum=0, maximum=1, positive=True,
                doc="Share of the raw corpus the quality filter keeps, e.g. 3%."),
            Key(name="mix", kind="mix", doc="Share of tokens per domain, e.g. { legal = 51%, web = 49% }; `genai train` samples each group (the source entries in a folder or file of that name) by its share and reports its tokens and held-out loss."),
            Key(name="source", kind="sources", doc="Files, folders, globs, JSON-lines paths (`text` documents, or `prompt`/`response` and `messages` chat examples learned on the response only) or `synthetic`, for `genai train`: relative to the spec's folder and inside it (links followed) unless the run allows more (`--allow-data-outside`)."),
            _count("vocab", "Tokenizer vocabulary size, where it differs from the model's.", positive=True),
            Key(name="tokenizer", kind="string", example='"tokenizer.json"',
                doc="A tokenizer.json or SentencePiece .model (or a folder with one) for `genai train`; default: the checkpoint's."),
            Key(example="1%", name="held_out", kind="quantity", dimension="fraction", minimum=0, below=1,
                doc="Share held out for evaluation (less than 100%)."),
        ),
    ),
    "adapt": BlockSchema(
        name="adapt",
        spec_class="AdaptSpec",
        doc="How the model is adapted: prompt, finetune, lora, qlora, pretrain, rlhf, dpo.",
        keys=_keys(
            Key(name="method", kind="name", registry="adaptations", doc="The adaptation method."),
            Key(name="base", kind="name", registry="presets", strings=True,
                doc="The preset being adapted, where it differs from model.preset."),
            _count("rank", "LoRA rank.", positive=True),
            Key(name="targets", kind="words", doc="Modules that get adapters, e.g. [q, v] or [attention, mlp]."),
            Key(example="16", name="alpha", kind="quantity", dimension="count", positive=True,
                doc="LoRA's alpha: the adapters' update is scaled by alpha / rank (default: the rank; qlora: 16)."),
            Key(example="5%", name="dropout", kind="quantity", dimension="fraction", minimum=0, below=1,
                doc="Dropout on the adapters' input, e.g. 10% (default 0; qlora: 10%)."),
            Key(name="frozen_precision", kind="name", registry="precisions",
                doc="Quantize the frozen base: int4 (4-bit NormalFloat, qlora's default) or int8."),
        ),
    ),
    "train": BlockSchema(
        name="train",
        spec_class="TrainSpec",
        doc="How training runs: precision, optimizer, sharding, parallel layout, batch, recomputation.",
        keys=_keys(
            Key(name="precision", kind="name", registry="precisions", auto=True, doc="Training precision, e.g. bf16."),
            Key(name="optimizer", kind="name", registry="optimizers", doc="The optimizer, e.g. adamw."),
            Key(name="optimizer_state", kind="choice", words=("fp32", "bf16", "int8"),
                doc="Dtype of the optimizer's moments: fp32, bf16 (what a bf16 PyTorch model's AdamW keeps) or int8 "
                "(block-wise 8-bit); default: the optimizer's and precision's records."),
            Key(name="sharding", kind="name", registry="strategies", auto=True,
                doc="Distribution strategy: ddp, zero1, zero2, fsdp (+ offload variants), or auto."),
            Key(example="1M tokens", name="batch", kind="quantity", dimension="tokens", unit_required=True, positive=True,
                doc="Global batch in tokens, e.g. 1M tokens."),
            _count("micro_batch", "Sequences per data-parallel replica per step; auto = the fastest that fits.", auto=True, positive=True),
            Key(name="recompute", kind="choice", words=("none", "selective", "full"), auto=True,
                doc="Activation recomputation: none, selective or full."),
            _count("tensor", "Tensor-parallel degree: each layer split over this many devices of a node; auto = searched.",
                   auto=True, positive=True),
            _count("pipeline", "Pipeline-parallel stages: the layers cut into this many stages; auto = searched.",
                   auto=True, positive=True),
            Key(name="sequence_parallel", kind="bool", auto=True,
                doc="Also split the norm and dropout activations over the tensor-parallel devices (needs tensor > 1)."),
            _count("virtual_stages", "Chunks of layers per pipeline stage (interleaved schedule); 1 = plain 1F1B; auto = searched.",
                   auto=True, positive=True),
            Key(name="attention", kind="choice", words=("flash", "materialized"),
                doc="Attention kernel: flash (no score matrix kept) or materialized."),
            Key(name="framework", kind="choice", words=("megatron-lm", "hf-trainer", "megatron-deepspeed", "gpt-neox"),
                doc="Training software the step time is for: megatron-lm (default), hf-trainer (Hugging Face Trainer, "
                "measured at 0.72 of Megatron-LM's throughput), megatron-deepspeed or gpt-neox (DeepSpeed's pipeline "
                "engine, 0.73)."),
            Key(example="40%", name="mfu", kind="quantity", dimension="fraction", minimum=0, maximum=1, positive=True,
                doc="Model-FLOPs utilization to assume instead of the step-time model's, e.g. 40%."),
            Key(example="3e-4", name="learning_rate", kind="quantity", dimension="count", positive=True, doc="Peak learning rate, e.g. 3e-4."),
            _count("warmup", "Warmup steps.", minimum=0),
            _count("steps", "Optimizer steps to run (JAX backend).", positive=True),
            _count("seed", "Random seed.", minimum=0),
            Key(example="1.0", name="grad_clip", kind="quantity", dimension="count", positive=True, none=True,
                doc="Global gradient-norm clip, or none."),
            Key(example="0.1", name="weight_decay", kind="quantity", dimension="count", minimum=0, doc="Decoupled weight decay."),
            _count("eval_every", "Evaluate every N steps.", positive=True),
            _count("checkpoint_every", "Save a checkpoint every N steps.", positive=True),
        ),
    ),
    "budget": BlockSchema(
        name="budget",
        spec_class="BudgetSpec",
        doc="What the project may spend: hardware, time, money, compute.",
        keys=_keys(
            Key(name="hardware", kind="hardware", registry="hardware",
                doc="Devices: `64 x a100-80gb`, `auto x h100-sxm` (as many as the time allows), `a100-80gb`, or a device described inline: `2 x { memory = 48 GB, bf16 = 150 TFLOP/s }`."),
            _count("devices", "How many devices, or auto (as many as the time budget needs).", auto=True, positive=True),
            Key(example="30 days", name="time", kind="quantity", dimension="seconds", unit_required=True, positive=True, ops=("=", "<="),
                doc="Wall-clock limit, e.g. `time <= 30 days`."),
            Key(example="$250k", name="cost", kind="quantity", dimension="usd", unit_required=True, positive=True, ops=("=", "<="),
                doc="Money limit, e.g. `cost <= $250k`."),
            Key(example="3640 pf-days", name="compute", kind="quantity", dimension="flops", unit_required=True, positive=True, ops=("=", "<="),
                doc="Training compute limit, e.g. `compute <= 3640 pf-days`."),
            Key(example="$2.50", name="price_per_hour", kind="quantity", dimension="usd", unit_required=True, positive=True,
                doc="USD per device-hour, overriding the hardware record's price, e.g. $2.50."),
            Key(example="400 g/kWh", name="carbon_intensity", kind="quantity", dimension="carbon_intensity", unit_required=True,
                positive=True, doc="Grid carbon intensity in g CO2-eq per kWh, for the model card's emissions, e.g. 400 g/kWh."),
            Key(example="256 GB", name="host_memory", kind="quantity", dimension="bytes", unit_required=True, positive=True,
                doc="Host (CPU) memory per device that offload may use, overriding the hardware record's, e.g. 256 GB "
                "(a node's memory divided by its devices)."),
        ),
    ),
    "serve": BlockSchema(
        name="serve",
        spec_class="ServeSpec",
        doc="How the model is served: precision, context, batch, KV cache and prefill chunk.",
        keys=_keys(
            Key(name="precision", kind="name", registry="precisions", doc="Serving precision of the weights, e.g. int8."),
            Key(example="4096 tokens", name="context", kind="quantity", dimension="tokens", integer=True, positive=True,
                doc="Longest sequence served, in tokens (sets the KV cache)."),
            _count("batch", "Sequences served at once.", positive=True),
            Key(name="kv_precision", kind="choice", words=KV_PRECISIONS,
                doc="Type of the KV cache: fp16, bf16, fp8 or int8 (default: the serving activations' 16-bit type)."),
            Key(example="2048 tokens", name="prefill_tokens", kind="quantity", dimension="tokens", integer=True, positive=True,
                doc="Tokens one serving step processes at most (chunked prefill; default 2048, vLLM's max_num_batched_tokens)."),
        ),
    ),
    "requires": BlockSchema(
        name="requires",
        spec_class="Requirement",
        doc='Plugin distributions this spec needs: `genaisdk-moe = ">=0.1"`.',
        free_keys=Key(name="*", kind="specifier", doc="A distribution name and a version specifier (\"\" for any)."),
    ),
}
"""Block name -> schema. "" is the file itself."""

DEVICE_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
"""The dtypes an inline device may quote a dense peak for (genaisdk.records.DTYPES, less int4)."""

DEVICE_EXAMPLES = {"fp32": "40 TFLOP/s", "tf32": "75 TFLOP/s", "bf16": "150 TFLOP/s", "fp16": "150 TFLOP/s",
                   "fp8": "300 TFLOP/s", "int8": "300 TOP/s"}

INLINE_DEVICE = BlockSchema(
    name="device",
    spec_class="DeviceSpec",
    doc=(
        "A device that is not in the catalog, described inline as the `hardware` of the budget: "
        "`hardware = 2 x { memory = 48 GB, bf16 = 150 TFLOP/s }`. Only `memory` is required; a plan "
        "without a throughput figure has no time or cost, and without a price no cost."
    ),
    keys=_keys(
        Key(name="name", kind="word", example="rtx-a6000-ada", doc="What to call it in the plan (default `inline-device`)."),
        Key(example="48 GB", name="memory", kind="quantity", dimension="bytes", unit_required=True, positive=True,
            doc="Memory of one device (required)."),
        *(
            Key(example=DEVICE_EXAMPLES[dtype], name=dtype, kind="quantity", dimension="flop_rate", unit_required=True, positive=True,
                doc=f"Dense peak {dtype} throughput of one device (no 2:4 sparsity)" + (", in TOP/s." if dtype == "int8" else "."))
            for dtype in DEVICE_DTYPES
        ),
        Key(example="768 GB/s", name="bandwidth", kind="quantity", dimension="byte_rate", unit_required=True, positive=True,
            doc="Memory bandwidth of one device."),
        Key(example="300 GB/s", name="link", kind="quantity", dimension="byte_rate", unit_required=True, positive=True,
            doc="Link between devices of one node, per device and direction (half a bidirectional figure)."),
        Key(example="50 GB/s", name="network", kind="quantity", dimension="byte_rate", unit_required=True, positive=True,
            doc="Network between nodes per device and direction: a node's NIC line rate / its devices (400 Gb/s per 8 GPUs: 6.25 GB/s)."),
        Key(example="8", name="node", kind="quantity", dimension="count", integer=True, positive=True,
            doc="Devices per node (sharing the link; the network between nodes)."),
        Key(example="256 GiB", name="host_memory", kind="quantity", dimension="bytes", unit_required=True, positive=True,
            doc="Host (CPU) memory per device, the room offloading has."),
        Key(example="32 GB/s", name="host_link", kind="quantity", dimension="byte_rate", unit_required=True, positive=True,
            doc="The device's link to host memory, per direction (PCIe Gen4 x16: 32 GB/s)."),
        Key(example="$0.80", name="price_per_hour", kind="quantity", dimension="usd", unit_required=True, positive=True,
            doc="USD per device-hour."),
    ),
)
"""The map a `hardware` value may give instead of a catalog name (not a block: it has no
place of its own in a file)."""

MIX_ENTRY = Key(name="*", kind="quantity", dimension="fraction", minimum=0, maximum=1,
                doc="Share of the training tokens from this domain.")

EXTRA_KINDS: dict[str, dict[str, Any]] = {
    "count": {"kind": "quantity", "dimension": "count", "integer": True, "positive": True},
    "number": {"kind": "quantity", "dimension": "count"},
    "fraction": {"kind": "quantity", "dimension": "fraction", "minimum": 0, "maximum": 1},
    "name": {"kind": "word"},
}
"""DimensionField.kind -> Key settings, for architecture `extra_dims`."""


def extra_keys(architecture: Any) -> dict[str, Key]:
    """The keys an architecture record adds to `model { }` (its `extra_dims`)."""
    keys = {}
    for field in getattr(architecture, "extra_dims", ()) or ():
        settings = EXTRA_KINDS.get(field.kind, EXTRA_KINDS["number"])
        keys[field.name] = Key(name=field.name, doc=field.description or f"{field.name} ({architecture.name})", **settings)
    return keys


def homes_of(key: str) -> list[str]:
    """The blocks in which `key` is valid (for "belongs in `train`" messages)."""
    return [name for name, block in BLOCKS.items() if key in block.keys]


def parent_of(block: str) -> str | None:
    """The block a block belongs directly inside (`model` -> `project`)."""
    for name, schema in BLOCKS.items():
        if block in schema.blocks and name != "":
            return name
    return "" if block in BLOCKS[""].blocks else None
