"""Pure tensor functions: resampling filters, bias/activation, (modulated) convolution, norms."""
from .bias_act import DEFAULT_GAIN, activate, bias_act
from .conv import PreparedWeight, conv2d_resample, conv2d_resample_reference, modulated_conv2d, prepare_weight
from .filtered_lrelu import filtered_lrelu
from .filters import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d
from .lowpass import design_lowpass_filter
from .misc import adain, instance_norm, normalize_2nd_moment

__all__ = [
    "DEFAULT_GAIN", "activate", "bias_act", "conv2d_resample", "conv2d_resample_reference",
    "modulated_conv2d", "PreparedWeight", "prepare_weight", "downsample2d", "filter2d", "setup_filter", "upfirdn2d", "upsample2d",
    "filtered_lrelu", "design_lowpass_filter",
    "adain", "instance_norm", "normalize_2nd_moment",
]
