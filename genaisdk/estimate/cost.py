"""Wall-clock time, device-hours, dollars and energy of a training run.

Time follows from the definition of model-FLOPs utilization (Chowdhery et al. 2022, PaLM,
Sec. 4.1 and App. B): MFU = achieved model FLOP/s / peak FLOP/s, so

    seconds = model_flops / (devices x peak FLOP/s of the compute dtype x MFU).

The peak is the hardware's dense figure for the precision's compute dtype (bf16 on an A100:
312e12; NVIDIA A100 datasheet). Device-hours = seconds x devices / 3600; dollars =
device-hours x price per device-hour; energy = devices x power x seconds (kWh), times a
datacenter PUE when one is given (Patterson et al. 2021, "Carbon Emissions and Large Neural
Network Training", Sec. 2: energy = hours x power x PUE); emissions = energy x the grid's
carbon intensity (the same paper, Sec. 2: tCO2e = MWh x tCO2e per MWh; Lacoste et al. 2019,
"Quantifying the Carbon Emissions of Machine Learning", the ML CO2 Impact calculator:
kg CO2eq = kWh x g per kWh / 1000, no PUE term).

Every function broadcasts over numpy arrays.
"""

from __future__ import annotations

import numpy as np

from genaisdk.estimate.constants import DEFAULT_MFU, PF_DAY, SECONDS_PER_DAY, SECONDS_PER_HOUR


def _check_positive(name: str, value) -> np.ndarray:
    value = np.asarray(value, dtype=float)
    if np.any(value <= 0):
        raise ValueError(f"{name} must be > 0")
    return value


def training_seconds(model_flops, *, devices, peak_flops, mfu=DEFAULT_MFU):
    """model_flops / (devices x peak x MFU) (Chowdhery et al. 2022, App. B)."""
    devices = _check_positive("devices", devices)
    peak = _check_positive("peak FLOP/s", peak_flops)
    mfu = _check_positive("mfu", mfu)
    if np.any(mfu > 1):
        raise ValueError("mfu is a fraction of peak and must be <= 1")
    return np.asarray(model_flops, dtype=float) / (devices * peak * mfu)


def devices_for_time(model_flops, *, seconds, peak_flops, mfu=DEFAULT_MFU):
    """Devices needed to finish within `seconds` at this MFU (the inverse, rounded up)."""
    need = np.asarray(model_flops, dtype=float) / (
        _check_positive("seconds", seconds) * _check_positive("peak FLOP/s", peak_flops) * _check_positive("mfu", mfu)
    )
    return np.maximum(1, np.ceil(need - 1e-9))


def seconds_to_days(seconds):
    return np.asarray(seconds, dtype=float) / SECONDS_PER_DAY


def device_hours(seconds, devices):
    """Device-hours (GPU-hours, TPU chip-hours) = seconds x devices / 3600."""
    return np.asarray(seconds, dtype=float) * np.asarray(devices, dtype=float) / SECONDS_PER_HOUR


def cost_usd(device_hours_, price_per_hour):
    """Dollars = device-hours x price per device-hour."""
    return np.asarray(device_hours_, dtype=float) * np.asarray(price_per_hour, dtype=float)


def energy_kwh(seconds, *, devices, power_watts, pue=1.0):
    """kWh = devices x watts x seconds / 3.6e6, x PUE (Patterson et al. 2021, Sec. 2).
    Uses the devices' rated power: an upper bound for the accelerators alone."""
    joules = np.asarray(seconds, dtype=float) * np.asarray(devices, dtype=float) * np.asarray(power_watts, dtype=float)
    return joules * np.asarray(pue, dtype=float) / 3.6e6


def co2_grams(energy_kwh_, carbon_intensity):
    """Grams of CO2-equivalent = kWh x grid intensity in g/kWh (Patterson et al. 2021, Sec. 2;
    Lacoste et al. 2019). The intensity is the grid's, so the result is what that energy emits
    there; renewable purchases and offsets are not subtracted."""
    return np.asarray(energy_kwh_, dtype=float) * np.asarray(carbon_intensity, dtype=float)


def achieved_mfu(model_flops, *, seconds, devices, peak_flops):
    """MFU a finished run achieved: model FLOPs / (seconds x devices x peak)."""
    return np.asarray(model_flops, dtype=float) / (
        np.asarray(seconds, dtype=float) * np.asarray(devices, dtype=float) * np.asarray(peak_flops, dtype=float)
    )


def flops_to_pf_days(flops):
    """1 PF-day = 8.64e19 FLOPs (Brown et al. 2020, Table D.1)."""
    return np.asarray(flops, dtype=float) / PF_DAY


def pf_days_to_flops(days):
    return np.asarray(days, dtype=float) * PF_DAY
