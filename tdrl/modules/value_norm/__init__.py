"""Running normalisers of value targets (TorchRL's ``torchrl.modules.value_norm``), one per file."""
from tdrl.modules.value_norm.base import ValueNorm
from tdrl.modules.value_norm.percentile import PercentileValueNorm
from tdrl.modules.value_norm.popart import PopArtValueNorm
from tdrl.modules.value_norm.running import RunningValueNorm

__all__ = ["ValueNorm", "PopArtValueNorm", "RunningValueNorm", "PercentileValueNorm"]
