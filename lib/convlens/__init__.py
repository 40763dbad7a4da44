"""convlens: see inside convolutional networks.

Plain functions that take a model and tensors and return tensors, one technique
per module. See DEVELOPERS.md for the conventions every function follows.
"""

from . import images, models, plot

__version__ = "0.1.0"

__all__ = ["images", "models", "plot", "__version__"]
