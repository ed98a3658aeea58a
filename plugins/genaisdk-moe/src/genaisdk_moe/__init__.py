"""Mixture-of-experts decoders for genaisdk (the `moe-decoder` architecture and its presets).

The plugin module genaisdk loads is `genaisdk_moe.plugin`; the counting math is in
`genaisdk_moe.counting`.
"""

__version__ = "0.1.0"
