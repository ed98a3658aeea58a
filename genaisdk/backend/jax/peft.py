"""PEFT's LoRA adapter folder, written (`write_peft`) and read back onto a base (`read_peft`,
`apply_peft`).

PEFT (Hugging Face's parameter-efficient fine-tuning library) saves a LoRA adapter as a
folder of two files: ``adapter_config.json`` (`peft_type` LORA, `r`, `lora_alpha`,
`target_modules`, ...) and ``adapter_model.safetensors``, whose tensors are named
``base_model.model.<module>.lora_A.weight`` [r, in] and ``...lora_B.weight`` [out, r],
`<module>` being the Hugging Face module path of the adapted weight (``model.layers.0.self_attn.q_proj``).
PEFT's adapted forward pass is W·x + scale·B·(A·x) with scale = lora_alpha / r, or
lora_alpha / sqrt(r) with `use_rslora` (Kalajdzievski 2023, "A Rank Stabilization Scaling
Factor for Fine-Tuning with LoRA", Sec. 3); `rank_pattern` and `alpha_pattern` give single
modules their own r and alpha (a key matches a module whose path ends with it, PEFT's
`get_pattern_key`). GPT-2's Conv1D modules store their weight [in, out]; PEFT's
`fan_in_fan_out` only transposes the merged update for them, the adapter tensors have the
Linear layout either way.

One map serves both directions: `peft_modules` gives, for each Hugging Face module that
holds adaptable genaisdk kernels (attention q, k, v, o and the feed-forward's gate, up,
down; `genaisdk.backend.jax.lora.TARGET_LEAVES`), the kernels it holds and where, from the
family's parameter map (`genaisdk.checkpoints.hf_map`). A kernel [*in, *out] with adapters
A [*in, r], B [r, *out] has the update A·B [in, out] = (B_peft·A_peft)ᵀ, so lora_A = Aᵀ and
lora_B = Bᵀ, flattened; a fused module (GPT-2's c_attn = [q | k | v] along its output) gives
each kernel the module's lora_A and its own rows of lora_B.

Reading builds the adapters in genaisdk's stacked layout: one `AdapterConfig` whose rank is
the largest module's; a module of lower rank, or a layer without an adapter, is zero-padded
(zero rank columns add nothing to A·B); a module whose scale differs from the config's has
the ratio folded into its B. `apply_peft` merges them into the base (W + scale·A·B in fp32,
cast to the base's dtype), which generation and evaluation then run.

Refused, each with one line naming the file and the key or tensor: a pickled
``adapter_model.bin`` (convert it to safetensors), `peft_type` other than LORA, DoRA
(`use_dora`), trained biases (`bias` other than "none", `lora_bias`), `modules_to_save`,
other LoRA variants (`layer_replication`, `trainable_token_indices`, `target_parameters`,
aLoRA, QALoRA, ...), an initialization that changes the base weights (PiSSA, OLoRA, CorDA,
LoftQ), an adapter of a module the base does not have or that genaisdk does not adapt
(embeddings, the output head, a pooler), a tensor whose shape does not match its module and
rank, a module selected by `target_modules` without its tensors, and tensors it does not select.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import jax
import numpy as np

from genaisdk.backend.jax.lora import A, B, TARGET_LEAVES, Adapters, iter_pairs
from genaisdk.backend.jax.model import is_spec
from genaisdk.checkpoints import CheckpointFormatError
from genaisdk.checkpoints.hf_config import read_json_object

PEFT_CONFIG_FILE = "adapter_config.json"
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"
PEFT_PICKLE_FILE = "adapter_model.bin"
PEFT_PREFIX = "base_model.model."
"""PEFT's prefix of every tensor name (PeftModel.base_model = LoraModel, .model = the base)."""
PEFT_TASKS = {"decoder": "CAUSAL_LM", "encoder_decoder": "SEQ_2_SEQ_LM", "encoder": None}
"""PEFT's `task_type` for each family (an encoder's masked-LM head has none)."""

_TENSOR = re.compile(re.escape(PEFT_PREFIX) + r"(?P<module>.+)\.lora_(?P<which>[AB])\.weight")
_TARGET_NAMES = {pair: target for target, pairs in TARGET_LEAVES.items() for pair in pairs}
"""(block, leaf) of a kernel -> its LoRA target name (q, k, v, o, gate, up, down)."""

_VARIANTS = (
    "use_dora", "lora_bias", "use_qalora", "alora_invocation_tokens", "layer_replication", "trainable_token_indices",
    "target_parameters", "use_bdlora", "arrow_config", "kasa_config", "velora_config", "monteclora_config",
)
"""adapter_config.json keys of LoRA variants whose forward pass is not W·x + scale·B·A·x."""
_BASE_CHANGING_INIT = ("pissa", "olora", "corda", "loftq", "lora_ga")
"""`init_lora_weights` values that rewrite the base weights as they initialize the adapter."""
_MERGE_ADVICE = "merge it into the base with PEFT (merge_and_unload, save_pretrained) and load that folder instead"


@attrs.frozen(kw_only=True)
class Slot:
    """One adaptable genaisdk kernel's place in a Hugging Face module."""

    path: str
    """The kernel's parameter path ('decoder/layers/attn/q')."""
    layer: int | None
    """Its index along the stacked 'layers' axis (None: not stacked)."""
    rule: Any
    """The `genaisdk.checkpoints.hf_map.Rule` of the kernel."""

    @property
    def in_features(self) -> int:
        """The module's input width (a Linear stores [out, in], GPT-2's Conv1D [in, out])."""
        return self.rule.hf_shape[1] if self.rule.transpose else self.rule.hf_shape[0]

    @property
    def out_features(self) -> int:
        """The whole module's output width (all the parts of a fused module)."""
        return self.rule.hf_shape[0] if self.rule.transpose else self.rule.hf_shape[1]

    @property
    def rows(self) -> slice:
        """This kernel's rows of the module's output (all of them unless fused)."""
        if self.rule.split is None:
            return slice(None)
        _, index, parts = self.rule.split
        width = self.out_features // parts
        return slice(index * width, (index + 1) * width)


def _fused_along_input(rule: Any) -> bool:
    return rule.split is not None and rule.split[0] != (0 if rule.transpose else 1)


def peft_modules(model_type: str, dims: Any) -> dict[str, list[Slot]]:
    """Hugging Face module path -> the adaptable genaisdk kernels it holds (several for a
    fused module, in the order of its output parts), for a `model_type` model of `dims`:
    the one map from genaisdk's adapters to PEFT's tensor names and back. Module paths are
    those transformers' model classes use (GPT-2's 'transformer.', BERT's 'bert.' prefix)."""
    from genaisdk.checkpoints.hf_map import param_map

    modules: dict[str, list[Slot]] = {}
    for rule in param_map(model_type, dims).rules:
        parts = rule.path.split("/")
        if len(parts) != 4 or parts[1] != "layers" or (parts[2], parts[3]) not in _TARGET_NAMES:
            continue
        if _fused_along_input(rule):
            continue  # no family fuses along the input; such a module could not hold one adapter per kernel
        for layer, name in enumerate(rule.names()):
            modules.setdefault(name.removesuffix(".weight"), []).append(
                Slot(path=rule.path, layer=layer if rule.layers else None, rule=rule)
            )
    for slots in modules.values():
        slots.sort(key=lambda s: 0 if s.rule.split is None else s.rule.split[1])
    return modules


def _other_modules(model_type: str, dims: Any) -> set[str]:
    """Modules of the base with a matrix genaisdk does not adapt (embeddings, output head,
    pooler, masked-LM transform)."""
    from genaisdk.checkpoints.hf_map import param_map

    pmap = param_map(model_type, dims)
    adaptable = set(peft_modules(model_type, dims))
    names = {n for rule in pmap.rules if len(rule.hf_shape) == 2 for n in rule.names()} | set(pmap.aliases)
    return {n.removesuffix(".weight") for n in names if n.endswith(".weight")} - adaptable


# ----------------------------------------------------------------------------- writing


def peft_tensors(
    adapters: Mapping, config: Any, dims: Any, model_type: str
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The adapters ({kernel path: {'lora_a', 'lora_b'}}, `config` an `AdapterConfig`) as
    PEFT's LoRA tensors, and the per-module settings they need.

    A fused Hugging Face module (GPT-2's c_attn = [q | k | v]) holds several of genaisdk's
    kernels: its adapter is exact at rank (parts adapted)·r, the parts' A stacked and their
    B placed block-diagonally (zeros for the parts without adapters); `rank_pattern` and
    `alpha_pattern` give that module its rank and an alpha that keeps the scale alpha/r.
    `target_modules` names the modules' last path component (q_proj), or their whole paths
    where a last component would select modules without adapters too.

    Returns ({tensor name: array (fp32)}, {'rank_pattern', 'alpha_pattern', 'fan_in_fan_out',
    'target_modules'}). Raises CheckpointFormatError when a kernel has no Hugging Face module."""
    r = config.rank
    by_path: dict[str, list[tuple[str, Slot]]] = {}
    for module, slots in peft_modules(model_type, dims).items():
        for slot in slots:
            by_path.setdefault(slot.path, []).append((module, slot))
    pieces: dict[str, list[tuple[Slot, np.ndarray, np.ndarray]]] = {}
    conv1d = False
    for path, pair in iter_pairs(adapters):
        name = "/".join(path)
        if name not in by_path:
            raise CheckpointFormatError(f"{name} has no {model_type} module: its adapters cannot be written for PEFT")
        a = np.asarray(jax.device_get(pair[A]), np.float32)
        b = np.asarray(jax.device_get(pair[B]), np.float32)
        for module, slot in by_path[name]:
            a_l, b_l = (a, b) if slot.layer is None else (a[slot.layer], b[slot.layer])
            conv1d = conv1d or not slot.rule.transpose
            pieces.setdefault(module, []).append((slot, a_l.reshape(-1, r).T, b_l.reshape(r, -1).T))
    tensors: dict[str, np.ndarray] = {}
    rank_pattern: dict[str, int] = {}
    alpha_pattern: dict[str, float] = {}
    targets = set()
    for module, parts in pieces.items():
        leaf = module.rsplit(".", 1)[-1]
        targets.add(leaf)
        if len(parts) == 1 and parts[0][0].rule.split is None:
            _, lora_a, lora_b = parts[0]
        else:
            lora_a = np.concatenate([p[1] for p in parts], axis=0)
            lora_b = np.zeros((parts[0][0].out_features, r * len(parts)), np.float32)
            for k, (slot, _, b_piece) in enumerate(parts):
                lora_b[slot.rows, k * r : (k + 1) * r] = b_piece
            rank_pattern[leaf] = r * len(parts)
            alpha = config.alpha * len(parts)
            alpha_pattern[leaf] = int(alpha) if float(alpha).is_integer() else alpha
        tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = np.ascontiguousarray(lora_a)
        tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = np.ascontiguousarray(lora_b)
    # PEFT selects a module when its path ends with a listed name: where a name would also
    # select modules without adapters (BERT's "dense" is the pooler's too, GPT-2's "c_proj"
    # the FFN's), the modules are listed by their whole paths instead.
    names = sorted(targets)
    linear = set(peft_modules(model_type, dims)) | _other_modules(model_type, dims)
    if any(m not in pieces and any(m == t or m.endswith(f".{t}") for t in names) for m in linear):
        names = sorted(pieces)
    settings = {
        "target_modules": names,
        "rank_pattern": rank_pattern,
        "alpha_pattern": alpha_pattern,
        "fan_in_fan_out": conv1d,
    }
    return tensors, settings


def write_peft(
    out: Any, adapters: Mapping, config: Any, *, dims: Any, family: str, model_type: str,
    base: str | None = None, dtype: Any = None,
) -> list[Path]:
    """Writes PEFT's LoRA adapter folder `out`: adapter_config.json and
    adapter_model.safetensors (`peft_tensors`; ``{"format": "pt"}`` metadata), which
    `peft.PeftModel.from_pretrained(base_model, out)` loads over the base model. A QLoRA
    run's config says nothing of quantization: PEFT's adapters are the same over a 16-bit
    or a 4-bit base (bitsandbytes' quantization is chosen when the base is loaded).
    `base`: the base model's folder, recorded as `base_model_name_or_path`. Returns the files."""
    from genaisdk.checkpoints.safetensors_files import save_tensors

    tensors, settings = peft_tensors(adapters, config, dims, model_type)
    if dtype is not None:
        from genaisdk.backend.jax.hf import _host_dtype

        tensors = {k: v.astype(_host_dtype(dtype)) for k, v in tensors.items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    peft_config = {
        "peft_type": "LORA",
        "task_type": PEFT_TASKS.get(family),
        "base_model_name_or_path": base,
        "r": config.rank,
        "lora_alpha": int(config.alpha) if float(config.alpha).is_integer() else config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": settings["target_modules"],
        "rank_pattern": settings["rank_pattern"],
        "alpha_pattern": settings["alpha_pattern"],
        "fan_in_fan_out": settings["fan_in_fan_out"],
        "bias": "none",
        "modules_to_save": None,
        "init_lora_weights": True,
        "inference_mode": True,
        "use_rslora": False,
        "use_dora": False,
        "layers_to_transform": None,
        "layers_pattern": None,
        "revision": None,
    }
    weights = out / PEFT_WEIGHTS_FILE
    save_tensors(tensors, weights, metadata={"format": "pt"})
    config_file = out / PEFT_CONFIG_FILE
    config_file.write_text(json.dumps(peft_config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [config_file, weights]


# ----------------------------------------------------------------------------- reading


@attrs.frozen(kw_only=True)
class PeftAdapter:
    """A PEFT LoRA adapter folder read for one base model, in genaisdk's layout."""

    folder: Path
    config: Any
    """The `AdapterConfig`: rank = the largest module's, scale = the adapter's `lora_alpha`
    over r (or sqrt(r) with rsLoRA), targets the projections it adapts."""
    adapters: dict = attrs.field(repr=False)
    """{kernel path: {'lora_a' [layers, *in, rank], 'lora_b' [layers, rank, *out]}} (fp32
    NumPy), zero where a layer or rank column has no adapter."""
    modules: int
    """Hugging Face modules adapted."""
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        c = self.config
        return (
            f"PEFT adapters {self.folder} merged into the base: {self.modules} modules ({', '.join(c.targets)}), "
            f"rank {c.rank}, scale {c.scale:g}"
        )


def _pattern_key(patterns: Mapping[str, Any], module: str) -> str | None:
    """The first key of a `rank_pattern` / `alpha_pattern` that names `module`: the key, as
    a regular expression, matches the end of the module path after a dot (PEFT's
    `get_pattern_key`)."""
    for key in patterns:
        try:
            if re.match(rf"(.*\.)?({key})$", module):
                return key
        except re.error:
            continue
    return None


def _layer_index(module: str, layers_pattern: Any) -> int | None:
    """The layer index of a module path, as PEFT finds it for `layers_to_transform`: the
    first number after `layers_pattern` (any name when unset)."""
    if not layers_pattern:
        match = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", module)
    else:
        match = None
        for pattern in [layers_pattern] if isinstance(layers_pattern, str) else layers_pattern:
            match = re.match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", module)
            if match:
                break
    return int(match.group("idx")) if match else None


def _selects(config: Mapping[str, Any], module: str, linear: set[str], output: str | None) -> bool:
    """Whether adapter_config.json's target_modules (with exclude_modules, layers_to_transform
    and layers_pattern) select `module`, by PEFT's matching rules: a string is a regular
    expression matched against the whole path ('all-linear': every matrix but the output
    head), a list names modules by their path or its last components."""
    exclude = config.get("exclude_modules")
    if exclude:
        if isinstance(exclude, str) and re.fullmatch(exclude, module):
            return False
        if isinstance(exclude, list) and (module in exclude or any(module.endswith(f".{e}") for e in exclude)):
            return False
    targets = config.get("target_modules")
    if isinstance(targets, str):
        if targets.lower() == "all-linear":
            return module in linear and module != output
        return re.fullmatch(targets, module) is not None
    if not targets:
        return False
    if module in targets:
        return True
    if not any(module.endswith(f".{t}") for t in targets):
        return False
    layers = config.get("layers_to_transform")
    if layers is None or layers == []:
        return True
    index = _layer_index(module, config.get("layers_pattern"))
    if index is None:
        return False
    return index == layers if isinstance(layers, int) else index in layers


def _number(config: Mapping[str, Any], key: str, where: Path, *, integer: bool) -> Any:
    value = config.get(key)
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value <= 0:
        raise CheckpointFormatError(f"{where}: {key} = {json.dumps(value)} is not a positive {'integer' if integer else 'number'}")
    return value


def _check_config(config: Mapping[str, Any], where: Path) -> None:
    """Refuse, naming the key, what is not plain LoRA over unchanged base weights."""
    kind = config.get("peft_type")
    if kind != "LORA":
        raise CheckpointFormatError(
            f"{where}: peft_type = {json.dumps(kind)}: genaisdk reads LoRA adapters (peft_type \"LORA\") only"
        )
    if config.get("use_dora"):
        raise CheckpointFormatError(
            f"{where}: use_dora = true: DoRA rescales each weight's columns, which plain LoRA does not; {_MERGE_ADVICE}"
        )
    bias = config.get("bias", "none")
    if bias not in (None, "none"):
        raise CheckpointFormatError(
            f"{where}: bias = {json.dumps(bias)}: the adapter trained the base's biases, which genaisdk's LoRA does not "
            f"hold; {_MERGE_ADVICE}"
        )
    if config.get("modules_to_save"):
        raise CheckpointFormatError(
            f"{where}: modules_to_save = {json.dumps(config['modules_to_save'])}: the adapter replaces whole modules, "
            f"which a LoRA adapter cannot carry here; {_MERGE_ADVICE}"
        )
    for key in _VARIANTS:
        value = config.get(key)
        if value not in (None, False, [], {}):
            raise CheckpointFormatError(
                f"{where}: {key} = {json.dumps(value)}: a LoRA variant genaisdk does not read; {_MERGE_ADVICE}"
            )
    init = config.get("init_lora_weights")
    if isinstance(init, str) and init.lower().replace("-", "_").startswith(_BASE_CHANGING_INIT):
        raise CheckpointFormatError(
            f"{where}: init_lora_weights = {json.dumps(init)} changes the base weights as it initializes the adapter, so "
            "the adapter does not fit the original base; save it with PEFT's path_initial_model_for_weight_conversion, "
            f"or {_MERGE_ADVICE}"
        )
    for key in ("rank_pattern", "alpha_pattern"):
        if not isinstance(config.get(key) or {}, Mapping):
            raise CheckpointFormatError(f"{where}: {key} must be an object of module pattern -> number")


def read_peft(folder: str | Path, model: Any, *, dims: Any, model_type: str) -> PeftAdapter:
    """The PEFT LoRA adapter folder `folder` (adapter_config.json + adapter_model.safetensors)
    read for a base `model` (a `Transformer`) of `dims` (the real vocabulary) and Hugging
    Face `model_type` (module docstring). Reads only the adapter's files: call it before
    loading the base's weights to refuse a bad adapter early.

    Raises CheckpointFormatError (one line naming the file and the key or tensor) for what
    the module docstring lists."""
    from genaisdk.backend.jax.config import AdapterConfig, BackendError
    from genaisdk.checkpoints.safetensors_files import FLOAT_DTYPES, TensorReader, read_header

    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointFormatError(f"{folder}: no such adapter folder")
    config_file, weights = folder / PEFT_CONFIG_FILE, folder / PEFT_WEIGHTS_FILE
    if not config_file.is_file():
        raise CheckpointFormatError(f"{folder}: holds no {PEFT_CONFIG_FILE}, so it is not a PEFT adapter folder")
    config = read_json_object(config_file)
    _check_config(config, config_file)
    if not weights.is_file():
        if (folder / PEFT_PICKLE_FILE).is_file():
            raise CheckpointFormatError(
                f"{folder / PEFT_PICKLE_FILE}: a pickled PyTorch file, which genaisdk does not read (unpickling can run "
                "code); convert it to adapter_model.safetensors: load it with PEFT and save_pretrained(out, "
                "safe_serialization=True)"
            )
        raise CheckpointFormatError(f"{folder}: holds no {PEFT_WEIGHTS_FILE}")
    r = _number(config, "r", config_file, integer=True)
    alpha = _number(config, "lora_alpha", config_file, integer=False)
    rslora = bool(config.get("use_rslora"))
    rank_pattern = dict(config.get("rank_pattern") or {})
    alpha_pattern = dict(config.get("alpha_pattern") or {})

    modules = peft_modules(model_type, dims)
    others = _other_modules(model_type, dims)
    output = next((m for m in others if m.endswith("lm_head") or m.endswith("predictions.decoder")), None)
    headers, _ = read_header(weights)

    # Every tensor names an adaptable module of the base.
    found: dict[str, dict[str, str]] = {}
    for name in sorted(headers):
        match = _TENSOR.fullmatch(name)
        if match is None:
            raise CheckpointFormatError(
                f"{weights}: unexpected tensor {name}: a PEFT LoRA adapter holds {PEFT_PREFIX}<module>.lora_A.weight "
                "and .lora_B.weight only"
            )
        module = match.group("module")
        if module not in modules:
            if module in others:
                raise CheckpointFormatError(
                    f"{weights}: tensor {name} adapts {module}, which genaisdk's LoRA does not adapt (it adapts the "
                    f"attention and feed-forward matrices: {', '.join(TARGET_LEAVES)}); {_MERGE_ADVICE}"
                )
            raise CheckpointFormatError(
                f"{weights}: tensor {name} adapts {module}, which the base model ({model_type}) does not have: "
                "the adapter was trained on another model"
            )
        if headers[name].dtype not in FLOAT_DTYPES:
            raise CheckpointFormatError(f"{weights}: tensor {name} is {headers[name].dtype}; adapters must be F32, F16 or BF16")
        found.setdefault(module, {})[match.group("which")] = name

    # target_modules selects exactly the modules that have tensors, each with both.
    linear = set(modules) | others
    selected = {m for m in linear if _selects(config, m, linear, output)}
    if not selected:
        raise CheckpointFormatError(
            f"{config_file}: target_modules = {json.dumps(config.get('target_modules'))} selects no module of the "
            f"base model ({model_type}): the adapter was trained on another model"
        )
    for module in sorted(selected | set(found)):
        have = found.get(module, {})
        if module not in selected:
            raise CheckpointFormatError(
                f"{weights}: unexpected tensor {next(iter(have.values()))}: {PEFT_CONFIG_FILE}'s target_modules does "
                f"not select {module}"
            )
        if module not in modules:
            raise CheckpointFormatError(
                f"{config_file}: target_modules selects {module}, which genaisdk's LoRA does not adapt (it adapts the "
                f"attention and feed-forward matrices: {', '.join(TARGET_LEAVES)}); {_MERGE_ADVICE}"
            )
        for which in "AB":
            if which not in have:
                raise CheckpointFormatError(
                    f"{weights}: tensor {PEFT_PREFIX}{module}.lora_{which}.weight is missing ({PEFT_CONFIG_FILE}'s "
                    "target_modules selects that module)"
                )
    notes = []
    if isinstance(config.get("target_modules"), list):
        unmatched = [t for t in config["target_modules"] if not any(m == t or m.endswith(f".{t}") for m in linear)]
        if unmatched:
            notes.append(f"target_modules {', '.join(unmatched)} name no module of the base model; PEFT ignores them too")

    # Ranks, scales and shapes, per module.
    plan: dict[str, tuple[int, float]] = {}
    for module in sorted(found):
        key = _pattern_key(rank_pattern, module)
        r_m = rank_pattern[key] if key is not None else r
        source = f"rank_pattern[{json.dumps(key)}]" if key is not None else "r"
        if isinstance(r_m, bool) or not isinstance(r_m, int) or r_m <= 0:
            raise CheckpointFormatError(f"{config_file}: {source} = {json.dumps(r_m)} is not a positive integer")
        akey = _pattern_key(alpha_pattern, module)
        alpha_m = alpha_pattern[akey] if akey is not None else alpha
        if isinstance(alpha_m, bool) or not isinstance(alpha_m, (int, float)) or alpha_m <= 0:
            raise CheckpointFormatError(f"{config_file}: alpha_pattern[{json.dumps(akey)}] = {json.dumps(alpha_m)} is not a positive number")
        slot = modules[module][0]
        for which, expected in (("A", (r_m, slot.in_features)), ("B", (slot.out_features, r_m))):
            name = found[module][which]
            shape = tuple(headers[name].shape)
            if shape != expected:
                layout = "[r, in]" if which == "A" else "[out, r]"
                raise CheckpointFormatError(
                    f"{weights}: tensor {name} has shape {list(shape)}, expected {layout} = {list(expected)} "
                    f"(r = {r_m} from {PEFT_CONFIG_FILE}'s {source}, the base's {module} is "
                    f"{slot.in_features} -> {slot.out_features})"
                )
        plan[module] = (r_m, float(alpha_m) / (math.sqrt(r_m) if rslora else r_m))

    # genaisdk's layout: one rank (the largest), one scale (the adapter's own r and alpha's).
    rank = max(r_m for r_m, _ in plan.values())
    scale = float(alpha) / (math.sqrt(r) if rslora else r)
    paths = {slot.path for m in plan for slot in modules[m]}
    targets = tuple(t for t in TARGET_LEAVES if any(_TARGET_NAMES[tuple(p.split("/")[2:])] == t for p in paths))
    dropout = config.get("lora_dropout") or 0.0
    try:
        adapter = AdapterConfig(
            method="lora",
            rank=rank,
            alpha=float(alpha) if (rank == r and not rslora) else scale * rank,
            dropout=float(dropout) if 0.0 <= float(dropout) < 1.0 else 0.0,
            targets=targets,
        )
        layout = Adapters(model, adapter)
    except (BackendError, TypeError, ValueError) as exc:
        raise CheckpointFormatError(f"{config_file}: {exc}") from None
    tree = jax.tree.map(lambda s: np.zeros(s.shape, np.float32), layout.specs(), is_leaf=is_spec)
    flat = {"/".join(path): pair for path, pair in iter_pairs(tree)}
    with TensorReader(headers) as reader:
        for module, (r_m, scale_m) in plan.items():
            lora_a = np.asarray(reader.get(found[module]["A"]), np.float32)
            lora_b = np.asarray(reader.get(found[module]["B"]), np.float32)
            ratio = scale_m / adapter.scale
            if ratio != 1.0:
                lora_b = (lora_b.astype(np.float64) * ratio).astype(np.float32)
            for slot in modules[module]:
                pair = flat[slot.path]
                a_dest = pair[A] if slot.layer is None else pair[A][slot.layer]
                b_dest = pair[B] if slot.layer is None else pair[B][slot.layer]
                a_dest[..., :r_m] = lora_a.T.reshape(*a_dest.shape[:-1], r_m)
                b_dest[:r_m] = lora_b[slot.rows].T.reshape(r_m, *b_dest.shape[1:])
    return PeftAdapter(folder=folder, config=adapter, adapters=tree, modules=len(plan), notes=tuple(notes))


def apply_peft(loaded: Any, adapter: PeftAdapter | str | Path) -> Any:
    """`loaded` (a `genaisdk.backend.jax.load.LoadedModel`) with a PEFT adapter merged into
    its parameters: W + scale·A·B at every adapted matrix, in fp32, cast to the parameters'
    dtype and placed in their sharding. `adapter`: a folder or a `read_peft` result. The
    result carries the adapter (`adapter`, `adapters`), so `genai export --adapters` writes
    it again. Raises CheckpointFormatError for a bad adapter, or a base that is itself an
    adapter run (its adapters are merged already)."""
    if loaded.adapter is not None:
        raise CheckpointFormatError(
            f"{loaded.source} is an adapter run whose adapters are merged already; apply PEFT adapters to its base "
            "model, or export the run (--merge) and apply them to that folder"
        )
    if not isinstance(adapter, PeftAdapter):
        from genaisdk.checkpoints.hf_config import hf_model_type

        real = loaded.dims.evolve(vocab=loaded.vocab)
        adapter = read_peft(adapter, loaded.model, dims=real, model_type=loaded.model_type or hf_model_type(real, loaded.family))
    layout = Adapters(loaded.model, adapter.config)
    dtype = jax.tree.leaves(loaded.params)[0].dtype
    merged = layout.merge(loaded.params, adapter.adapters, dtype=dtype)
    merged = jax.tree.map(lambda x, p: jax.device_put(x, p.sharding), merged, loaded.params)
    return attrs.evolve(
        loaded,
        params=merged,
        adapter=adapter.config,
        adapters=adapter.adapters,
        base_source=str(loaded.source),
        notes=(*loaded.notes, adapter.describe(), *adapter.notes),
    )
