"""Lesson pages in lighter markup (coursebuild.slimhtml): the code a reader sees is unchanged."""

import html
import re

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from coursebuild.slimhtml import ICON_ID, code_classes, slim_lesson

CODE = '''import torch.nn.functional as F
from convlens import occlusion_maps

maps = occlusion_maps.occlusion(model, x, target=281, window=(32, 32), stride=8)
print(f"{maps.shape} {maps.max():.3f}")  # the hottest window
if a <= b and not c: total += x[0, :, 1]
'''
ICON = ('<svg aria-hidden="true" class="clipboard-copy-icon" data-view-component="true" '
        'height="20" version="1.1" viewbox="0 0 16 16" width="20">\n<path d="M0 6.75z" '
        'fill="currentColor"></path>\n</svg>')


def notebook_css() -> str:
    """The code rules nbconvert writes into a lesson page: JupyterLab's Pygments style, under
    mkdocs-jupyter's ``.highlight-ipynb`` prefix."""
    from jupyterlab_pygments import JupyterStyle

    return HtmlFormatter(style=JupyterStyle).get_style_defs(".highlight-ipynb")


CSS = notebook_css()


def nbconvert_cell(code: str, n: int) -> str:
    """A code cell as nbconvert writes it: Pygments spans in a highlight-ipynb block, and a
    copy button with its own icon."""
    spans = highlight(code, PythonLexer(), HtmlFormatter(nowrap=True))
    return (f'<div class="jp-Cell"><clipboard-copy for="cell-{n}">{ICON}</clipboard-copy>'
            f'<div class="highlight-ipynb hl-python"><pre><span></span>{spans}</pre></div>'
            f'<div class="clipboard-copy-txt" id="cell-{n}">{html.escape(code)}</div></div>')


def page(cells: int = 3) -> str:
    body = "".join(nbconvert_cell(CODE, n) for n in range(cells))
    return f"<html><body><article class=\"md-content__inner\">{body}</article></body></html>"


def code_text(markup: str) -> list[str]:
    blocks = re.findall(r'<div class="highlight-ipynb[^"]*"><pre[^>]*>(.*?)</pre>', markup, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", block)) for block in blocks]


def drawn(markup: str, css: str = CSS) -> list[tuple[str, str]]:
    """Each character of the code blocks with the declarations that colour it ("" for none,
    and for whitespace, which no colour draws)."""
    rules = {name: body for name, body in re.findall(r"\.highlight-ipynb \.(\w+) \{([^}]*)\}", css)}
    out = []
    for block in re.findall(r'<div class="highlight-ipynb[^"]*"><pre[^>]*>(.*?)</pre>', markup, re.S):
        for cls, text, plain in re.findall(r'<span class="(\w+)">([^<]*)</span>|([^<]+)', block):
            style = rules.get(cls, "").strip() if cls else ""
            out += [(ch, style if ch.strip() else "") for ch in html.unescape(text or plain)]
    return out


def test_the_code_reads_copies_and_is_drawn_the_same_in_less_markup():
    before = page()
    after = slim_lesson(before, CSS)
    assert code_text(after) == code_text(before) == [CODE] * 3
    assert len(after) < 0.6 * len(before)
    for gone in ("w", "n", "nn", "nb", "p", "s2", "si", "sa", "mi", "c1", "kn", "ow"):
        assert f'<span class="{gone}">' in before, gone
        assert f'<span class="{gone}">' not in after, gone
    punctuation = CSS.split(".highlight-ipynb .p {")[1].split("}")[0].strip()
    old, new = drawn(before), drawn(after)
    assert [ch for ch, _ in old] == [ch for ch, _ in new]
    for (ch, style_before), (_, style_after) in zip(old, new):
        if style_before == punctuation or ch == ".":
            assert style_after in (style_before, ""), ch  # punctuation and dots: plain on purpose
        else:
            assert style_after == style_before, (ch, style_before, style_after)
    assert '<span class="o">+=</span>' in after  # operators keep their colour
    assert '<span class="s">f"{</span>maps.shape<span class="s">} {</span>maps.max()' in after


def test_classes_drawn_alike_are_one():
    classes = code_classes(CSS)
    assert classes["s2"] == classes["si"] == classes["sa"] == "s"
    assert classes["mi"] == classes["mf"] == "m" and classes["kn"] == "k" and classes["ow"] == "o"
    assert "n" not in classes and "nb" not in classes  # no rule: drawn as plain code
    assert code_classes("") == {}


def test_without_the_stylesheet_the_code_is_left_alone():
    before = page(cells=1)
    after = slim_lesson(before, "")
    assert code_text(after) == code_text(before)
    assert '<span class="n">' in after and '<span class="s2">' in after


def test_adjacent_spans_of_one_class_merge():
    markup = ('<div class="highlight-ipynb hl-python"><pre><span class="s2">&quot;a</span>'
              '<span class="s2">b&quot;</span><span class="mi">1</span><span class="mi">2'
              '</span><span class="k">if</span></pre></div>')
    assert slim_lesson(markup, CSS) == ('<div class="highlight-ipynb hl-python"><pre>'
                                        '<span class="s">&quot;ab&quot;</span><span class="m">12'
                                        '</span><span class="k">if</span></pre></div>')


def test_the_copy_icon_is_drawn_once_and_used_by_every_button():
    after = slim_lesson(page(cells=4), CSS)
    assert after.count("<path") == 1
    assert after.count(f'<symbol id="{ICON_ID}"') == 1
    assert after.count(f'<use xlink:href="#{ICON_ID}">') == 4
    assert after.index(f'id="{ICON_ID}"') > after.index("<article")
    assert after.count("<clipboard-copy") == 4


def test_markup_outside_code_blocks_is_left_alone():
    markup = ('<p>A <span class="n">name</span> in prose, <code>x.y</code>.</p>'
              '<div class="highlight"><pre><span class="n">x</span></pre></div>')
    assert slim_lesson(markup, CSS) == markup


def test_hidden_collapsers_and_blank_runs_go_but_not_inside_pre_or_script():
    markup = ('<div class="jp-Cell">\n    <div class="jp-Collapser jp-InputCollapser">\n</div>\n'
              '    <div class="highlight-ipynb hl-python"><pre><span class="k">if</span>   '
              '<span class="n">x</span>\n\n    <span class="k">pass</span></pre></div>\n\n  '
              '<script>if (a >  \n  <b) {}</script>   <p>text</p></div>')
    after = slim_lesson(markup, CSS + "\n.jupyter-wrapper .jp-Collapser{display:none}")
    assert "jp-Collapser" not in after
    assert code_text(after) == code_text(markup)
    assert "<script>if (a >  \n  <b) {}</script>" in after
    assert after.endswith("</script>\n<p>text</p></div>")
    assert "jp-Collapser" in slim_lesson(markup, CSS)  # not hidden by this stylesheet: kept


def copied_text(markup: str, target: str) -> str:
    """What a copy button whose ``for`` is ``target`` copies: the text of that element."""
    found = re.search(rf'<(\w+)[^>]* id="{target}"[^>]*>(.*?)</\1>', markup, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(2)))


def test_each_button_copies_its_highlighted_code_and_the_hidden_copy_goes():
    before = page(cells=3)
    after = slim_lesson(before, CSS)
    assert before.count("clipboard-copy-txt") == 3 and "clipboard-copy-txt" not in after
    for n in range(3):
        assert f'for="cell-{n}"' in after and after.count(f'id="cell-{n}"') == 1
        assert copied_text(before, f"cell-{n}").rstrip("\n") == CODE.rstrip("\n")
        assert copied_text(after, f"cell-{n}").rstrip("\n") == CODE.rstrip("\n")
        assert f'<pre id="cell-{n}">' in after


def test_a_hidden_copy_that_differs_from_the_shown_code_is_kept():
    before = page(cells=1).replace(html.escape(CODE) + "</div>", "something else</div>")
    after = slim_lesson(before, CSS)
    assert '<div class="clipboard-copy-txt" id="cell-0">something else</div>' in after
    assert "<pre id=" not in after
