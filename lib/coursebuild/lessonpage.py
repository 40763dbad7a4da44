"""What one lesson puts in ``build/docs/``: its page, its figures, its two downloads.

For a lesson ``NN-slug`` (page ``lessons/NN-slug/`` on the site):

- ``lessons/NN-slug.ipynb``: the notebook MkDocs renders. A copy of the executed notebook
  with its lesson links written for the site (:mod:`coursebuild.links`), its figures and
  explorer data moved to files (:mod:`coursebuild.figures`), and a downloads box after the
  first markdown cell.
- ``lessons/NN-slug/figure-N.png`` (or ``.jpeg``), ``lessons/NN-slug/explorer-K.json``.
- ``lessons/NN-slug/NN-slug.ipynb``: **Download notebook**: the executed notebook, values
  filled in, every figure embedded, lesson links written for Jupyter.
- ``lessons/NN-slug/NN-slug.py``: **Download source**: the lesson as written (jupytext
  percent format), its ``{{ name }}`` placeholders not filled in.
"""

from __future__ import annotations

import copy
from pathlib import Path

from coursebuild import figures, links

LESSONS = "lessons"
DOWNLOADS_TAG = "convlens-downloads"


def read_notebook(notebook: Path | bytes):
    import nbformat

    text = notebook.decode("utf-8") if isinstance(notebook, bytes) else \
        Path(notebook).read_text(encoding="utf-8")
    return nbformat.reads(text, as_version=4)


def write_notebook(nb) -> bytes:
    import nbformat

    return (nbformat.writes(nb) + "\n").encode()


def downloads_cell(slug: str):
    """The markdown cell with the two download buttons, for the site's copy only."""
    from nbformat.v4 import new_markdown_cell

    cell = new_markdown_cell(
        f'<div class="{DOWNLOADS_TAG}" role="group" aria-label="Downloads">\n'
        f'<p><a class="md-button md-button--primary" href="{slug}.ipynb" download>'
        'Download notebook</a> '
        f'<a class="md-button" href="{slug}.py" download>Download source</a></p>\n'
        f'<p><strong>Notebook</strong> (<code>{slug}.ipynb</code>): this page as executed, '
        'with its outputs, figures and values; it needs nothing else to open. '
        f'<strong>Source</strong> (<code>{slug}.py</code>): the lesson as written, in '
        "jupytext's percent format; its <code>{{ name }}</code> placeholders stand for the "
        'values that the build fills in, and are filled in only in the executed notebook. '
        'Run either with <code>convlens</code> installed.</p>\n</div>',
        metadata={"tags": [DOWNLOADS_TAG]})
    cell.id = DOWNLOADS_TAG  # not a random id: the same lesson gives the same page
    return cell


def index(notebooks: dict[str, object], sources: dict[str, Path]) -> dict[str, links.Anchors]:
    """Anchors of every lesson: from its executed notebook where there is one, else from
    the headings of its source (its figures are then not known, and not checked)."""
    found = {slug: links.anchors(nb) for slug, nb in notebooks.items()}
    for slug, source in sources.items():
        if slug not in found and Path(source).is_file():
            import jupytext

            found[slug] = links.anchors(jupytext.read(source))
            found[slug].figures_known = False
    return found


def lesson_files(slug: str, source: Path, nb, anchors: dict[str, links.Anchors]
                 ) -> tuple[dict[str, bytes], list[str]]:
    """``({path in build/docs: bytes}, warnings)`` of one lesson (see the module's doc);
    ``nb`` is the executed notebook, unchanged."""
    download = copy.deepcopy(nb)
    links.rewrite(download, slug, anchors, site=False)
    page = copy.deepcopy(nb)
    links.rewrite(page, slug, anchors, site=True)
    extracted, warnings = figures.externalize(page)
    first = next((i for i, c in enumerate(page.cells) if c.cell_type == "markdown"), -1)
    page.cells.insert(first + 1, downloads_cell(slug))
    folder = f"{LESSONS}/{slug}"
    files = {f"{LESSONS}/{slug}.ipynb": write_notebook(page),
             f"{folder}/{slug}.ipynb": write_notebook(download),
             f"{folder}/{slug}.py": Path(source).read_bytes()}
    files.update({f"{folder}/{name}": data for name, data in extracted.items()})
    return files, [f"{source}: {w}" for w in warnings]


def publish(notebooks: dict[str, tuple[Path, Path | bytes]], sources: dict[str, Path],
            kept: dict[str, Path]) -> tuple[dict[str, bytes], list[str], list[str]]:
    """Every lesson's files: ``notebooks`` maps slug -> (lesson .py, executed notebook);
    ``sources`` names every lesson file (for links to lessons not built now); ``kept`` maps
    a lesson kept from an earlier build to its downloadable notebook (for its anchors).
    Returns ``(files, errors, warnings)``: an error is a broken link in a lesson."""
    read = {slug: read_notebook(notebook) for slug, (_, notebook) in notebooks.items()}
    anchors = index({**{s: read_notebook(p) for s, p in kept.items() if Path(p).is_file()},
                     **read}, sources)
    files, errors, warnings = {}, [], []
    for slug, (source, _) in notebooks.items():
        errors += links.check(source, slug, read[slug], anchors)
    if errors:
        return files, errors, warnings
    for slug, (source, _) in notebooks.items():
        made, said = lesson_files(slug, source, read[slug], anchors)
        files.update(made)
        warnings += said
    return files, errors, warnings
