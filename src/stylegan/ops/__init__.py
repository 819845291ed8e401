"""Pure tensor functions: resampling filters, bias/activation, (modulated) convolution, norms."""
from .bias_act import DEFAULT_GAIN, activate, bias_act
from .conv import conv2d_resample, conv2d_resample_reference, modulated_conv2d
from .filters import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d
from .misc import adain, instance_norm, normalize_2nd_moment

__all__ = [
    "DEFAULT_GAIN", "activate", "bias_act", "conv2d_resample", "conv2d_resample_reference",
    "modulated_conv2d", "downsample2d", "filter2d", "setup_filter", "upfirdn2d", "upsample2d",
    "adain", "instance_norm", "normalize_2nd_moment",
]
