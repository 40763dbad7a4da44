"""convlens: see inside convolutional networks.

Plain functions that take a model and tensors and return tensors, one technique per module
(the equation and the paper in each module's docstring). See DEVELOPERS.md for the
conventions every function follows.

``import convlens`` is cheap: the names below load their module on first use (PEP 562), so
importing the package imports neither torch's model zoo, IPython nor pyplot, and reads no
environment variable. Modules are named for their topic and functions for what they compute
(``convlens.cam.gradcam``, ``convlens.occlusion_maps.occlusion``), so no public name is both
a module and a function.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the submodule that defines it
_FUNCTIONS = {
    "RF": "receptive_fields",
    "ReceptiveFieldError": "receptive_fields",
    "empirical_receptive_field": "receptive_fields",
    "receptive_field": "receptive_fields",
    "KernelMapConv2d": "kernel_decomposition",
    "convert_convs": "kernel_decomposition",
    "kernel_maps": "kernel_decomposition",
    "Transforms": "input_optimization",
    "Visualization": "input_optimization",
    "maximize_activation": "input_optimization",
    "ChannelObjective": "feature_visualization",
    "ClassObjective": "feature_visualization",
    "maco": "feature_visualization",
    "visualize_class": "feature_visualization",
    "accentuate": "accentuation",
    "dataset_examples": "exemplars",
    "natural_spectrum": "natural_statistics",
    "transfer_scores": "visualization_checks",
    "layer_similarity": "visualization_checks",
    "feature_maps": "features",
    "saturation": "features",
    "gradient": "saliency",
    "gradient_x_input": "saliency",
    "smoothgrad": "saliency",
    "integrated_gradients": "path_integral",
    "deconvnet": "guided",
    "guided_backprop": "guided",
    "gradcam": "cam",
    "guided_gradcam": "cam",
    "occlusion": "occlusion_maps",
}
# public submodules (the topics): ``convlens.evaluate.deletion_curve`` and so on
_MODULES = (
    "cam",
    "accentuation",
    "evaluate",
    "evidence_net",
    "exemplars",
    "feature_visualization",
    "features",
    "guided",
    "hooks",
    "images",
    "input_optimization",
    "kernel_decomposition",
    "layers",
    "models",
    "natural_statistics",
    "occlusion_maps",
    "path_integral",
    "plot",
    "receptive_fields",
    "saliency",
    "visualization_checks",
)

__all__ = sorted([*_FUNCTIONS, *_MODULES, "__version__"])


def __getattr__(name: str):
    if name in _FUNCTIONS:
        value = getattr(importlib.import_module(f"{__name__}.{_FUNCTIONS[name]}"), name)
    elif name in _MODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
