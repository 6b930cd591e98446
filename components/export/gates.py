"""The export stage's checks: fp32 parity (a hard gate) and whether the int8 model ships.

A graph that disagrees with PyTorch is a bug: nothing is written. An int8 model that loses too
much accuracy, or is not faster than fp32 on the device, is not shipped: the bundle carries the
fp32 model alone and says why. ``export.int8`` chooses: ``auto`` (ship int8 when it passes),
``off`` (fp32 only, not even tried), ``required`` (a device that runs int8 only: a refused int8
stops the stage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.errors import EdgelearnError
from components.export.verify import Parity


class ExportCheckError(EdgelearnError):
    """An exported graph failed a hard check (parity, or a required int8); nothing was written."""


@dataclass(frozen=True)
class Int8Decision:
    shipped: bool
    reasons: tuple[str, ...]  # why it was not shipped (empty when shipped)
    not_checked: tuple[str, ...] = ()  # gates that could not be applied here, and why

    def to_dict(self) -> dict[str, object]:
        return {"shipped": self.shipped, "refused_because": list(self.reasons),
                "not_checked": list(self.not_checked)}  # fmt: skip


def check_parity(result: Parity, atol: float, min_agreement_pct: float) -> None:
    if result.max_abs_diff > atol or result.label_agreement_pct < min_agreement_pct:
        raise ExportCheckError(
            f"ONNX Runtime and PyTorch disagree on {result.clips} test clips: max |difference| of "
            f"the scores {result.max_abs_diff:.3g} (export.parity_atol {atol:g}), same label on "
            f"{result.label_agreement_pct:.2f}% (export.parity_min_agreement_pct "
            f"{min_agreement_pct:g}); the graph was not written"
        )


def decide_int8(
    fp32_acc: float, int8_acc: float, fp32_ms: float, int8_ms: float, max_drop: float,
    min_speedup: float, timed: bool = True,
) -> Int8Decision:  # fmt: skip
    """Ship int8 only if its test accuracy is at most ``max_drop`` points below fp32 and it runs
    at least ``min_speedup`` times as fast as fp32 on the device profile. A device the pipeline
    cannot reach (``timed`` False: its latency table was imported) gets the accuracy gate only;
    the decision says that the speed gate was not applied, for the device to time both graphs."""
    reasons = []
    drop = fp32_acc - int8_acc
    if not drop <= max_drop:  # a NaN accuracy is a refusal too
        reasons.append(
            f"int8 test accuracy {int8_acc:.2f}% is {drop:.2f} points below fp32 ({fp32_acc:.2f}%),"
            f" more than export.int8_max_acc_drop = {max_drop:g}"
        )
    if not timed:
        return Int8Decision(not reasons, tuple(reasons), (SPEED_NOT_CHECKED,))
    speedup = fp32_ms / int8_ms if int8_ms > 0 else math.nan
    if not speedup >= min_speedup:
        reasons.append(
            f"int8 runs at {speedup:.2f}x the speed of fp32 on the device profile ({int8_ms:.4f} vs"
            f" {fp32_ms:.4f} ms), below export.int8_min_speedup = {min_speedup:g}"
        )
    return Int8Decision(not reasons, tuple(reasons))


SPEED_NOT_CHECKED = (
    "export.int8_min_speedup: the device was measured elsewhere (its latency table imported), "
    "so neither graph was timed here; time both on the device (edgelearn probe) and keep the "
    "faster"
)


def refused(reason: str) -> Int8Decision:
    return Int8Decision(False, (reason,))


def require_int8(decision: Int8Decision, mode: str) -> None:
    """With ``export.int8: required`` a refused int8 model stops the stage."""
    if mode == "required" and not decision.shipped:
        raise ExportCheckError(
            "export.int8 is 'required' but the int8 model was refused: "
            + "; ".join(decision.reasons)
            + "; try another export.calibration_method, more export.calibration_clips, or "
            "export.int8: auto to ship fp32"
        )
