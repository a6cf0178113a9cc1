"""The gap between the trained and the deployed model's validation error, and the one-line warning
when deploying costs more than a small threshold. Plain data (no torch): ``eval`` of an .onnx file
uses it on a board.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONVERT_REMEDY", "TRAIN_REMEDY", "WARN_POINTS", "DeployGap"]

# Deploying may cost at most this many points of top-1 error before a warning is printed.
WARN_POINTS = 1.0


@dataclass
class DeployGap:
    """Top-1/top-5 validation error (percent) of the trained and the deployed model on one data set."""

    data: str
    trained_err1: float
    trained_err5: float
    deployed_err1: float
    deployed_err5: float

    @property
    def cost(self) -> float:
        """Points of top-1 error deploying adds (negative: the deployed model does better)."""
        return self.deployed_err1 - self.trained_err1

    def describe(self) -> str:
        return f"val err {self.trained_err1:.2f} -> {self.deployed_err1:.2f} % ({self.cost:+.2f} points)"

    def warning(self, remedy: str) -> str | None:
        """One line when deploying costs more than ``WARN_POINTS``; ``remedy`` says what to do."""
        if self.cost <= WARN_POINTS:
            return None
        return (f"warning: deploying costs {self.cost:.2f} points of top-1 error on {self.data} "
                f"({self.trained_err1:.2f} -> {self.deployed_err1:.2f} %); {remedy}")


# what to do when the deployed model is worse than the trained one: from a checkpoint, and from training
CONVERT_REMEDY = ("convert with --classifier full (every input kept) or finetune (the kept half retrained), "
                  "or train with --classifier condense")
TRAIN_REMEDY = ("train with --classifier condense (the half-drop adapted in training) or full, or convert "
                "with --classifier full or finetune")
