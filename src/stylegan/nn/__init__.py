"""Layers with equalized learning rate, named like the papers."""
from .layers import (NOISE_MODES, Conv2d, FullyConnected, MinibatchStd, ModulatedConv2d, NoiseInput,
                     NoiseMode, ToRGB)

__all__ = ["NOISE_MODES", "Conv2d", "FullyConnected", "MinibatchStd", "ModulatedConv2d", "NoiseInput",
           "NoiseMode", "ToRGB"]
