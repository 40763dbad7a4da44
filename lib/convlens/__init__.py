"""convlens: see inside convolutional networks.

Plain functions that take a model and tensors and return tensors, one technique
per module. See DEVELOPERS.md for the conventions every function follows.
"""

from . import hooks, images, models, plot
from .features import feature_maps
from .gradcam import gradcam, guided_gradcam
from .guided import deconvnet, guided_backprop
from .input_optimization import Transforms, Visualization, maximize_activation
from .kernel_maps import KernelMapConv2d, convert_convs, kernel_maps
from .occlusion import occlusion
from .receptive_field import RF, ReceptiveFieldError, empirical_receptive_field, receptive_field
from .saliency import gradient, smoothgrad

__version__ = "0.1.0"

__all__ = [
    "RF",
    "KernelMapConv2d",
    "ReceptiveFieldError",
    "Transforms",
    "Visualization",
    "__version__",
    "convert_convs",
    "deconvnet",
    "empirical_receptive_field",
    "feature_maps",
    "gradcam",
    "gradient",
    "guided_backprop",
    "guided_gradcam",
    "hooks",
    "images",
    "kernel_maps",
    "maximize_activation",
    "models",
    "occlusion",
    "plot",
    "receptive_field",
    "smoothgrad",
]
