"""Every diagnostic code genaisdk emits, with its one severity and its meaning.

Prefixes: `GS` the spec language (`GS0xx` syntax, `GS1xx` structure, `GS2xx` values,
`GS3xx` names and consistency, `GS4xx` requirements, `GS5xx` likely mistakes, `GS6xx`
`--set` overrides), `GP` the planner, `GR` the plugin registry, `GJ` the JAX backend.

A code never changes meaning and is never reused; tools match on it. A condition has one
code wherever it is found (`genai check`, `genai plan`, a Spec built in code), and a code has
one severity: `diagnostic(code, ...)` takes it from this table, so no caller can disagree.
Codes that were merged into another are listed in `RETIRED` and never emitted again.
`docs/plan-json.md` documents the planner's codes and a test keeps it in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.diagnostics import Diagnostic, Span

# -- the spec language: syntax ---------------------------------------------------------------
UNEXPECTED_CHARACTER = "GS001"
UNTERMINATED_STRING = "GS002"
UNCLOSED_BRACKET = "GS003"
UNMATCHED_CLOSER = "GS004"
MISSING_VALUE = "GS005"
MISSING_EQUALS = "GS006"
MISSING_SEPARATOR = "GS007"
UNEXPECTED_TOKEN = "GS008"
BAD_VERSION_LINE = "GS009"
UNREADABLE = "GS010"
TOO_LARGE = "GS011"
TOO_DEEP = "GS012"
BAD_ESCAPE = "GS013"
UNQUOTED_LABEL = "GS014"
# -- structure
MISSING_VERSION = "GS101"
UNSUPPORTED_VERSION = "GS102"
UNKNOWN_BLOCK = "GS103"
DUPLICATE = "GS104"
UNKNOWN_KEY = "GS105"
MISPLACED = "GS106"
MISSING_PROJECT = "GS107"
LABEL = "GS108"
OPERATOR = "GS109"
BLOCK_OR_KEY = "GS110"
SCHEMA_MISMATCH = "GS199"
# -- values
WRONG_DIMENSION = "GS201"
BAD_QUANTITY = "GS202"
NOT_INTEGER = "GS203"
OUT_OF_RANGE = "GS204"
WRONG_TYPE = "GS205"
UNKNOWN_WORD = "GS206"
MIX_TOTAL = "GS207"
CONFLICT = "GS208"
MISSING_UNIT = "GS209"
INCONSISTENT_DIMS = "GS210"
MISSING_FIGURE = "GS211"
# -- names and consistency
UNKNOWN_NAME = "GS301"
OBJECTIVE_FAMILY = "GS302"
PRESET_FAMILY = "GS303"
NOT_TRAINABLE = "GS304"
EXTRA_DIM = "GS305"
NO_PEAK_FOR_PRECISION = "GS306"
NO_TRAINING_FORMAT = "GS307"
STATE_FORMAT = "GS308"
# -- requirements
NOT_INSTALLED = "GS401"
WRONG_VERSION = "GS402"
BAD_SPECIFIER = "GS403"
PLUGIN_FAILED = "GS404"
PLUGIN_DISABLED = "GS405"
# -- likely mistakes
IGNORED_SIZE = "GS501"
IGNORED_FOR_FAMILY = "GS502"
NOTHING_TRAINS = "GS504"
IGNORED_ADAPTER = "GS505"
NO_TASK = "GS507"
BATCH_BELOW_CONTEXT = "GS508"
IGNORED_STATE = "GS509"
# -- overrides
BAD_OVERRIDE = "GS601"
# -- the planner
DEFAULT_HARDWARE = "GP003"
NOTHING_TO_SIZE = "GP005"
ADJUSTED_VALUE = "GP007"
PLUGIN_RAISED = "GP008"
CHECKPOINT = "GP009"
UNDER_TRAINED = "GP101"
DATA_BELOW_OPTIMUM = "GP102"
REPEATED_DATA = "GP103"
TOO_MANY_EPOCHS = "GP104"
NO_DATA = "GP105"
LOSS_EXTRAPOLATED = "GP106"
FP16_OVERFLOW = "GP201"
DOES_NOT_FIT = "GP202"
FIXED_SETTINGS_DO_NOT_FIT = "GP203"
SERVING_DOES_NOT_FIT = "GP204"
OFFLOAD_ONLY = "GP205"
HOST_UNCHECKED = "GP206"
LAYOUT_CANNOT_RUN = "GP210"
FRAMEWORK_LAYOUT = "GP211"
FINETUNE_WOULD_DO = "GP301"
DOMAIN_PRETRAINING_PAYS = "GP302"
PROMPT_ONLY = "GP303"
OVER_TIME = "GP401"
OVER_COST = "GP402"
NO_PRICE = "GP403"
OVER_COMPUTE = "GP404"
BUDGET_UNDERUSED = "GP405"
NO_THROUGHPUT = "GP406"
NO_STEP_TIME_MODEL = "GP410"
# -- the registry
VALIDATE_RAISED = "GR001"
VALIDATE_NOT_A_DIAGNOSTIC = "GR002"
# -- the JAX backend
REPLICATED = "GJ201"

CODES: dict[str, tuple[str, str]] = {
    # code: (severity, meaning)
    "GS001": ("error", "a character the language does not use"),
    "GS002": ("error", "a string that is not closed on its line"),
    "GS003": ("error", "a `{`, `[` that is never closed"),
    "GS004": ("error", "a `}` or `]` that closes nothing, or the wrong bracket"),
    "GS005": ("error", "a key with `=` and no value"),
    "GS006": ("error", "a key and its value without `=` between them, or a name standing alone"),
    "GS007": ("error", "two statements or entries run together"),
    "GS008": ("error", "a token the grammar does not expect here"),
    "GS009": ("error", "a malformed `genai N` version line"),
    "GS010": ("error", "the file cannot be read, or is not UTF-8"),
    "GS011": ("error", "a spec larger than the size limit ($GENAISDK_MAX_SPEC_SIZE)"),
    "GS012": ("error", "blocks, lists or maps nested deeper than the limit"),
    "GS013": ("error", "an unknown escape in a string"),
    "GS014": ("error", "a block's name (the project's) written without quotes"),
    "GS101": ("warning", "the file does not say which language version it is written in"),
    "GS102": ("error", "a language version this genaisdk does not read"),
    "GS103": ("error", "an unknown block"),
    "GS104": ("error", "a key or block given twice"),
    "GS105": ("error", "an unknown key"),
    "GS106": ("error", "a key or block in the wrong place"),
    "GS107": ("error", "no `project` block"),
    "GS108": ("error", "a missing, empty or unexpected block label"),
    "GS109": ("error", "a comparison (`<=`) where only `=` makes sense"),
    "GS110": ("error", "a block written as a key, or a key as a block"),
    "GS199": ("error", "internal: the schema and the Spec classes disagree"),
    "GS201": ("error", "a quantity of the wrong dimension (days where tokens belong)"),
    "GS202": ("error", "a number or unit that cannot be read"),
    "GS203": ("error", "a fraction where a whole number belongs"),
    "GS204": ("error", "a value out of its range"),
    "GS205": ("error", "a value of the wrong type"),
    "GS206": ("error", "a word that is not one of the key's choices"),
    "GS207": ("error", "the shares of a data mix do not add up to 100%"),
    "GS208": ("error", "two keys that contradict each other"),
    "GS209": ("error", "a quantity without its unit"),
    "GS210": ("error", "model dimensions that do not fit together (heads and kv_heads, d_model and heads)"),
    "GS211": ("error", "a device described inline without a figure the spec needs (its memory; a throughput to size by time)"),
    "GS301": ("error", "a name that is not registered (task, family, precision, hardware, LoRA target, ...)"),
    "GS302": ("error", "the objective does not train the model family"),
    "GS303": ("error", "the preset is of another family than the spec's"),
    "GS304": ("error", "the training precision cannot train (int8, int4 hold frozen or served weights)"),
    "GS305": ("error", "a dimension of another architecture"),
    "GS306": ("warning", "the hardware quotes no throughput for the precision's compute type: time uses the nearest it quotes"),
    "GS307": ("error", "`precision = auto` on hardware that quotes no bf16, fp16 or fp32 throughput"),
    "GS308": ("error", "an optimizer-state dtype the optimizer cannot keep"),
    "GS401": ("error", "a required plugin is not installed"),
    "GS402": ("error", "a required plugin is installed at another version"),
    "GS403": ("error", "a version specifier that cannot be read"),
    "GS404": ("error", "a required plugin failed to load"),
    "GS405": ("warning", "a required plugin is installed but not loaded"),
    "GS501": ("warning", "`size` next to a preset (the preset decides)"),
    "GS502": ("warning", "a key the model family ignores"),
    "GS504": ("warning", "a `train` block for a method that trains nothing"),
    "GS505": ("warning", "LoRA settings for a method that trains every weight"),
    "GS507": ("warning", "`family = auto` with no task and no preset to go on"),
    "GS508": ("warning", "a global batch of fewer tokens than one sequence"),
    "GS509": ("warning", "`optimizer_state` for an optimizer that keeps no state"),
    "GS601": ("error", "a `--set` override that cannot be read"),
    "GP003": ("info", "the spec names no hardware; the plan assumes a default device"),
    "GP005": ("error", "`size = auto` has nothing to size from: no budget and no data"),
    "GP007": ("warning", "a spec value the planner had to change (e.g. context longer than a preset's position table)"),
    "GP008": ("error", "a plugin's architecture code raised while the plan was computed"),
    "GP009": ("error", "the checkpoint that model.from names cannot be read, or the spec contradicts it"),
    "GP101": ("warning", "under-trained: far fewer tokens per parameter than compute-optimal (Chinchilla)"),
    "GP102": ("warning", "the data is smaller than the compute-optimal amount for the budget"),
    "GP103": ("info", "training repeats the usable data (more than one epoch)"),
    "GP104": ("warning", "training repeats the data more than about four times"),
    "GP105": ("info", "data.tokens is not given: no training time or cost"),
    "GP106": ("info", "the predicted loss is extrapolated outside the ranges the loss fit was made on"),
    "GP201": ("warning", "fp16 training can overflow (max 65,504): dynamic loss scaling is required"),
    "GP202": ("error", "the model does not fit in device memory at any setting searched"),
    "GP203": ("warning", "the settings fixed in the spec do not fit, but other settings would"),
    "GP204": ("warning", "one serving replica does not fit on one device"),
    "GP205": ("info", "the plan fits only with host offload, which is slow"),
    "GP206": ("warning", "an offload strategy's host memory is not known: its fit on the host is unchecked"),
    "GP210": ("error", "the spec's tensor / pipeline settings cannot run this model on these devices"),
    "GP211": ("warning", "the plan's layout splits layers over devices, which train.framework cannot do"),
    "GP301": ("warning", "pretraining from scratch where fine-tuning a pretrained model would do"),
    "GP302": ("info", "domain pretraining pays: a large in-domain share of the data (BloombergGPT)"),
    "GP303": ("info", "prompting only: nothing trains, the plan is the serving footprint"),
    "GP401": ("warning", "the time budget is exceeded"),
    "GP402": ("warning", "the cost budget is exceeded"),
    "GP403": ("info", "no price per device-hour is known: the plan has no cost"),
    "GP404": ("warning", "the compute budget is exceeded"),
    "GP405": ("info", "the run uses a small fraction of the budget"),
    "GP406": ("info", "the device quotes no throughput for the precision: the plan has no time or cost"),
    "GP410": ("warning", "the hardware record lacks figures the step-time model needs: time from an MFU instead"),
    "GR001": ("warning", "a plugin's genaisdk_validate hook raised, timed out or tried to exit; its checks were skipped"),
    "GR002": ("warning", "a plugin's genaisdk_validate hook returned something other than a Diagnostic"),
    "GJ201": ("warning", "an array is replicated over a mesh axis its dimensions do not divide"),
}

RETIRED: dict[str, str] = {
    # code: the code its condition is reported under now
    "GP001": "GS301",
    "GP002": "GS304",
    "GP004": "GS302",
    "GP006": "GS306",
    "GS503": "GS306",
}
"""Codes whose conditions were merged into another (one code per condition); never reused."""


def severity(code: str) -> str:
    """The one severity of `code`; KeyError for a code not in the table."""
    return CODES[code][0]


def diagnostic(code: str, message: str, span: Span | None = None, hint: str | None = None) -> Diagnostic:
    """A Diagnostic of `code`, at the table's severity."""
    from genaisdk.diagnostics import Diagnostic

    return Diagnostic(code=code, severity=severity(code), message=message, span=span, hint=hint)
