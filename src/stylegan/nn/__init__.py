"""Layers with equalized learning rate, named like the papers; the `Runtime` the networks pass down."""
from .layers import (NOISE_MODES, Conv2d, FullyConnected, MinibatchStd, ModulatedConv2d, NoiseInput,
                     NoiseMode, ToRGB)
from .precision import PRECISIONS, Precision, current_precision, precision_problem, precision_scope
from .runtime import Runtime
from .weight_cache import WeightCache, weight_cache

__all__ = ["NOISE_MODES", "Conv2d", "FullyConnected", "MinibatchStd", "ModulatedConv2d", "NoiseInput",
           "NoiseMode", "PRECISIONS", "Precision", "Runtime", "ToRGB", "current_precision", "precision_problem",
           "precision_scope", "WeightCache", "weight_cache"]
