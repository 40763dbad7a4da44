"""What the course runtime and the build agree on, importable without torch.

A lesson's :func:`convlens_course.lesson.record` and :func:`~convlens_course.lesson.expect`
leave display outputs of these private MIME types; ``coursebuild.prose`` reads them after
the lesson ran and strips them from the published notebook. ``ENVIRONMENT`` lists every
variable the runtime reads: the build sets them, and every one is part of a lesson's cache
key.
"""

RECORD_MIME = "application/vnd.convlens.record+json"
EXPECT_MIME = "application/vnd.convlens.expect+json"

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
    "CONVLENS_CACHE_DIR",
)
