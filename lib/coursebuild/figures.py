"""A lesson page's figures and interactive figures as files of their own.

The executed notebook is the one truth: it embeds every figure (base64) and every
explorer's data, so the downloaded ``.ipynb`` works anywhere. The site page is made from a
copy of it in which, per code cell output,

- an image (``image/png``, ``image/jpeg``, ``image/gif``, ``image/svg+xml``) becomes a file
  ``figure-N.<ext>`` beside the page and an HTML ``<figure id="figure-N">`` holding an
  ``<img>`` with ``loading="lazy"``, its ``width`` and ``height``, and alt text: the caption
  given to ``lesson.show(fig, caption)`` (read from the output's ``FIGURE_METADATA``). The
  caption output ``show`` printed under it becomes the ``<figcaption>``, whose "Figure N."
  links to the anchor. An image that did not come through ``show`` gets the alt text
  "Output of code cell C" and a warning (use ``lesson.show``);
- an explorer's data (``data-convlens-data``, :mod:`convlens_course.explore`) becomes a
  file ``explorer-K.json``; the element keeps its kind as ``data-convlens-pending`` and
  names the file in ``data-convlens-src`` (``javascripts/explorer-data.js`` fetches it and
  hands it to the explorer).

So the page's HTML stays small, every figure is cached and loaded lazily by the browser, and
prose can link to ``#figure-N``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re

from convlens_course.protocol import FIGURE_METADATA

IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif",
               "image/svg+xml": "svg"}
EXPLORER = re.compile(r'data-convlens-explorer="([a-z-]+)"(\s+)data-convlens-data="([^"]*)"')


def image_size(data: bytes, kind: str) -> tuple[int | None, int | None]:
    """Pixel width and height of an image (``None`` for an SVG without them)."""
    if kind == "svg":
        head = data[:2000].decode("utf-8", "replace")
        found = [re.search(rf'\b{k}="([\d.]+)(pt|px)?"', head) for k in ("width", "height")]
        return tuple(round(float(m.group(1)) * (4 / 3 if m.group(2) == "pt" else 1))
                     if m else None for m in found)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _image(output) -> tuple[str, bytes] | None:
    data = output.get("data", {}) if output.get("output_type") in (
        "display_data", "execute_result") else {}
    for mime, kind in IMAGE_TYPES.items():
        if mime in data:
            value = data[mime]
            value = "".join(value) if isinstance(value, list) else value
            return kind, (value.encode() if kind == "svg" else base64.b64decode(value))
    return None


def figure_html(src: str, number: int | None, alt: str, size, caption_html: str) -> str:
    width, height = size
    dims = "".join(f' {k}="{v}"' for k, v in (("width", width), ("height", height)) if v)
    anchor = f' id="figure-{number}"' if number else ""
    return (f'<figure class="convlens-figure"{anchor}>'
            f'<img src="{html.escape(src)}" alt="{html.escape(alt, quote=True)}"{dims} '
            'loading="lazy" decoding="async">'
            + (f'<figcaption class="convlens-caption">{caption_html}</figcaption>'
               if caption_html else "") + "</figure>")


def caption_html(about: dict) -> str:
    number = about["number"]
    return (f'<a class="convlens-figure-number" href="#figure-{number}"><strong>Figure '
            f"{number}.</strong></a> {html.escape(about['caption'])} <em>(model: "
            f"{html.escape(str(about.get('model', '')))}; device: "
            f"{html.escape(str(about.get('device', '')))})</em>")


def _html_output(text: str) -> dict:
    from nbformat.v4 import new_output

    return new_output("display_data", data={"text/html": text})


def externalize(nb) -> tuple[dict[str, bytes], list[str]]:
    """Turn ``nb`` (in place) into the site's copy: images and explorer data out, as files
    named relative to the page; return ``({name: bytes}, warnings)``."""
    files: dict[str, bytes] = {}
    warnings: list[str] = []
    explorers = 0
    for index, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        kept, unnamed = [], 0
        for output in cell.get("outputs", []):
            about = output.get("metadata", {}).get(FIGURE_METADATA) or {}
            if about.get("role") == "caption":
                continue  # its text is the <figcaption> of the figure before it
            found = _image(output)
            if found:
                kind, data = found
                if about.get("number"):
                    name, alt = f"figure-{about['number']}.{kind}", about["caption"]
                    caption = caption_html(about)
                else:
                    unnamed += 1
                    name = f"cell-{index}-{unnamed}.{kind}"
                    alt, caption = f"Output of code cell {index}", ""
                    warnings.append(f"code cell {index} displays an image without a caption "
                                    "(use lesson.show(fig, caption)): its alt text is "
                                    f"{alt!r}")
                files[name] = data
                kept.append(_html_output(figure_html(name, about.get("number"), alt,
                                                     image_size(data, kind), caption)))
                continue
            data = output.get("data", {})
            page = data.get("text/html")
            page = "".join(page) if isinstance(page, list) else page
            if page and "data-convlens-data=" in page:
                def move(match):
                    nonlocal explorers
                    explorers += 1
                    name = f"explorer-{explorers}.json"
                    files[name] = html.unescape(match.group(3)).encode()
                    json.loads(files[name])  # fails loudly on data that is not JSON
                    return (f'data-convlens-pending="{match.group(1)}"{match.group(2)}'
                            f'data-convlens-src="{name}"')
                data["text/html"] = EXPLORER.sub(move, page)
            kept.append(output)
        cell.outputs = kept
    return files, warnings
