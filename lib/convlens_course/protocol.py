"""What the course runtime and the build agree on, importable without torch.

A lesson's :func:`convlens_course.lesson.record` and :func:`~convlens_course.lesson.expect`
leave display outputs of these private MIME types; ``coursebuild.prose`` reads them after
the lesson ran and strips them from the published notebook. ``ENVIRONMENT`` lists every
variable the runtime reads: the build sets them, and every one is part of a lesson's cache
key. ``FIGURE_METADATA`` marks the figures :func:`~convlens_course.lesson.show` displays.

``EXPLORER_SCHEMA`` is the one description of the interactive figures' data (JSON Schema):
:mod:`convlens_course.explore` takes its format version and kinds from it, the build copies
it next to the site's explorer modules (which refuse data of another version), and the tests
validate every explorer's data against it.
"""

import json
from pathlib import Path

RECORD_MIME = "application/vnd.convlens.record+json"
EXPECT_MIME = "application/vnd.convlens.expect+json"
# an operation that ran without a deterministic kernel (CUDA backward passes of some ops)
NONDETERMINISTIC_MIME = "application/vnd.convlens.nondeterministic+json"
# cuBLAS reads this at its first use: the build sets it in each kernel's environment
CUBLAS_WORKSPACE_CONFIG = ":4096:8"

# ``show(fig, caption)`` marks its two outputs with this key of the output's metadata: the
# image with ``{"number": N, "caption": caption, "model": ..., "device": ...}``, the caption
# under it with ``{"number": N, "role": "caption"}``. The build reads it to publish each
# figure as its own file, with the caption as alt text and the anchor ``#figure-N``.
FIGURE_METADATA = "convlens/figure"

# The environment variables the runtime reads (convlens_course.lesson.setup and strict).
ENVIRONMENT = (
    "CONVLENS_MODEL",
    "CONVLENS_WEIGHTS",
    "CONVLENS_LABELS",
    "CONVLENS_LAYERS",
    "CONVLENS_PREPROCESS",
    "CONVLENS_DEVICE",
    "CONVLENS_SEED",
    "CONVLENS_STRICT",
)

EXPLORER_SCHEMA = Path(__file__).with_name("explorer_schema.json")
_schema = json.loads(EXPLORER_SCHEMA.read_text(encoding="utf-8"))
EXPLORER_VERSION: int = _schema["properties"]["version"]["const"]
EXPLORER_KINDS: tuple[str, ...] = tuple(_schema["properties"]["kind"]["enum"])
del _schema
