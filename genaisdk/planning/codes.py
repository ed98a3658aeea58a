"""Stable codes of the planner's diagnostics (`GP` = genaisdk planner).

A code never changes meaning; tools match on it. docs/plan-json.md lists them all and a test
checks that it does.
"""

from __future__ import annotations

CODES: dict[str, tuple[str, str]] = {
    # code: (severity, meaning)
    "GP001": ("error", "a name in the spec is not registered (task, family, precision, hardware, ...)"),
    "GP002": ("error", "the training precision cannot train (int8, int4 are for frozen or served weights)"),
    "GP003": ("info", "the spec names no hardware; the plan assumes a default device"),
    "GP004": ("warning", "the objective does not suit the model family"),
    "GP005": ("error", "`size = auto` has nothing to size from: no budget and no data"),
    "GP006": ("error", "the hardware has no peak throughput for the precision's compute type"),
    "GP007": ("warning", "a spec value the planner had to change (e.g. context longer than a preset's position table)"),
    "GP008": ("error", "a plugin's architecture code raised while the plan was computed"),
    "GP009": ("error", "the checkpoint that model.from names cannot be read, or the spec contradicts it"),
    "GP101": ("warning", "under-trained: far fewer tokens per parameter than compute-optimal (Chinchilla)"),
    "GP102": ("warning", "the data is smaller than the compute-optimal amount for the budget"),
    "GP103": ("info", "training repeats the usable data (more than one epoch)"),
    "GP104": ("warning", "training repeats the data more than about four times"),
    "GP105": ("info", "data.tokens is not given: no training time or cost"),
    "GP201": ("warning", "fp16 training can overflow (max 65,504): dynamic loss scaling is required"),
    "GP202": ("error", "the model does not fit in device memory at any setting searched"),
    "GP203": ("warning", "the settings fixed in the spec do not fit, but other settings would"),
    "GP204": ("warning", "one serving replica does not fit on one device"),
    "GP205": ("info", "the plan fits only with host offload, which is slow"),
    "GP301": ("warning", "pretraining from scratch where fine-tuning a pretrained model would do"),
    "GP302": ("info", "domain pretraining pays: a large in-domain share of the data (BloombergGPT)"),
    "GP303": ("info", "prompting only: nothing trains, the plan is the serving footprint"),
    "GP401": ("warning", "the time budget is exceeded"),
    "GP402": ("warning", "the cost budget is exceeded"),
    "GP403": ("info", "no price per device-hour is known: the plan has no cost"),
    "GP404": ("warning", "the compute budget is exceeded"),
    "GP405": ("info", "the run uses a small fraction of the budget"),
}

UNKNOWN_NAME = "GP001"
UNTRAINABLE_PRECISION = "GP002"
DEFAULT_HARDWARE = "GP003"
OBJECTIVE_FAMILY = "GP004"
NOTHING_TO_SIZE = "GP005"
UNSUPPORTED_DTYPE = "GP006"
ADJUSTED_VALUE = "GP007"
PLUGIN_RAISED = "GP008"
CHECKPOINT = "GP009"
UNDER_TRAINED = "GP101"
DATA_BELOW_OPTIMUM = "GP102"
REPEATED_DATA = "GP103"
TOO_MANY_EPOCHS = "GP104"
NO_DATA = "GP105"
FP16_OVERFLOW = "GP201"
DOES_NOT_FIT = "GP202"
FIXED_SETTINGS_DO_NOT_FIT = "GP203"
SERVING_DOES_NOT_FIT = "GP204"
OFFLOAD_ONLY = "GP205"
FINETUNE_WOULD_DO = "GP301"
DOMAIN_PRETRAINING_PAYS = "GP302"
PROMPT_ONLY = "GP303"
OVER_TIME = "GP401"
OVER_COST = "GP402"
NO_PRICE = "GP403"
OVER_COMPUTE = "GP404"
BUDGET_UNDERUSED = "GP405"


def severity(code: str) -> str:
    return CODES[code][0]
