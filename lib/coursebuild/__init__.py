"""coursebuild: execute the lessons, cache them by content, assemble ``build/docs/``.

``python -m coursebuild`` runs every ``lessons/NN-slug.py`` whose cache key changed, with
nbclient, and lays out the MkDocs source tree. MkDocs (``mkdocs build``) never executes
anything: it only renders the notebooks this package leaves in ``build/docs/lessons/``.

Modules: ``keys`` (what a lesson's output depends on), ``execute`` (run one lesson, write
its cache entry atomically), ``prose`` (fill ``{{ name }}`` from ``record``, collect the
``expect`` notes), ``catalog`` (titles and summaries of the lessons: nav and home page),
``assemble`` (lay out ``build/docs/``), ``pipeline`` (plan, run, report, and the command
line), ``mkdocs_hooks`` (the generated Lessons nav, the version in the site's footer).
"""

from coursebuild.pipeline import BuildFailed, build, main

__all__ = ["BuildFailed", "build", "main"]
