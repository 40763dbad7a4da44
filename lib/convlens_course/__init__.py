"""The course's runtime: what a lesson calls, on top of the :mod:`convlens` library.

- :mod:`convlens_course.lesson`: ``setup()`` (the model, device and seeds the build asks
  for), ``show(fig, caption)`` for every figure, ``record``/``expect`` for every number and
  claim of the prose, and the course's class choices for its photos;
- :mod:`convlens_course.explore`: the data of the interactive figures, drawn in the page by
  ``site_assets/javascripts/explorers``;
- :mod:`convlens_course.protocol`: the constants the build (``coursebuild``) reads, without
  importing torch.

The arrows point one way: ``coursebuild`` -> ``convlens_course`` -> ``convlens``. The library
never imports this package. Submodules load on first use.
"""

from __future__ import annotations

import importlib

__all__ = ["explore", "lesson", "protocol"]


def __getattr__(name: str):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
