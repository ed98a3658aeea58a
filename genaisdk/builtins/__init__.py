"""The built-in catalogs.

Each module here is an ordinary plugin: it implements registration hooks from
`genaisdk.hookspecs` with `@hookimpl` and nothing else. The registry registers them before
any installed plugin, through the same checks, so a third-party plugin can do everything a
built-in can (and cannot reuse a built-in's name).
"""

BUILTIN_PLUGINS: tuple[str, ...] = tuple(
    f"genaisdk.builtins.{module}"
    for module in (
        "tasks",
        "architectures",
        "objectives",
        "precisions",
        "optimizers",
        "strategies",
        "hardware",
        "presets",
        "adaptations",
    )
)
"""Modules registered as plugins, in this order (the order only matters for error messages)."""
