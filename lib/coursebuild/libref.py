"""Two-way links between the lessons and the Library reference (used by ``mkdocs_hooks``).

The Library pages (``site_assets/library/*.md``) are stubs such as ``::: convlens.cam``;
mkdocstrings renders each public name of that module (its ``__all__``) under a heading
whose id is the full name (``convlens.cam.gradcam``). This module works out, without
importing ``convlens`` (so neither torch nor the models are loaded by MkDocs):

- the **catalog**: every documented full name and the page that documents it, from the
  ``::: module`` lines of the Library pages and each module's ``__all__`` (read with
  :mod:`ast`), plus the lazy top-level names of ``convlens/__init__.py``
  (``convlens.gradcam`` is ``convlens.cam.gradcam``);
- what a **lesson uses**: the documented functions and classes its code reaches, through
  whatever it imported (``import convlens``, ``from convlens import plot``,
  ``from convlens.saliency import gradient as g``, ``from convlens_course import lesson``).

The hook then links each lesson's uses to their entries (inline code in the prose, the
names in its code cells, and a closing list of the functions it uses), and adds under each
entry the lessons that use it.
"""

from __future__ import annotations

import ast
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("convlens", "convlens_course")
LIBRARY_DIR = "library"
# `::: module`, then optionally its indented YAML options (of which `members: [a, b]` is read)
_DIRECTIVE = re.compile(r"^:::[ \t]+([A-Za-z_][\w.]*)[ \t]*\n((?:[ \t]+\S.*\n?)*)", re.M)
_MEMBERS = re.compile(r"^\s+members:\s*\[([^\]]*)\]", re.M)
_ALL = re.compile(r"^__all__\s*(?::[^=\n]*)?=\s*(\[[^\]]*\]|\([^)]*\))", re.M)
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def module_file(lib: Path, module: str) -> Path | None:
    """The source file of ``module`` (``convlens.cam`` -> ``lib/convlens/cam.py``, or the
    package's ``__init__.py``); None when there is none."""
    base = Path(lib).joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _assigned(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id == name and node.value is not None):
            return node.value
    return None


def exported(path: Path) -> list[str]:
    """The names of a module's literal ``__all__`` (a list or tuple of strings); [] when the
    module defines none. A computed ``__all__`` is refused: the reference could not be
    checked against it."""
    text = Path(path).read_text(encoding="utf-8")
    literal = _ALL.search(text)  # cheaper than parsing the whole module
    value = ast.parse(literal.group(1), mode="eval").body if literal else None
    if value is None:
        value = _assigned(ast.parse(text), "__all__")
    if value is None:
        return []
    try:
        names = ast.literal_eval(value)
    except ValueError:
        raise ValueError(f"{path}: __all__ must be a literal list of names") from None
    return list(names)


def lazy_names(lib: Path) -> dict[str, str]:
    """``convlens.NAME`` -> ``convlens.MODULE.NAME`` for the names ``convlens/__init__.py``
    loads lazily (its ``_FUNCTIONS`` table)."""
    path = Path(lib) / "convlens" / "__init__.py"
    value = _assigned(ast.parse(path.read_bytes()), "_FUNCTIONS") if path.is_file() else None
    table = ast.literal_eval(value) if value is not None else {}
    return {f"convlens.{name}": f"convlens.{module}.{name}" for name, module in table.items()}


@dataclass
class Catalog:
    """Documented full names -> the page (``src_uri``) that documents them."""

    pages: dict[str, str] = field(default_factory=dict)
    modules: set[str] = field(default_factory=set)
    aliases: dict[str, str] = field(default_factory=dict)

    def resolve(self, dotted: str) -> str | None:
        """The documented full name ``dotted`` stands for (an alias resolved), or None."""
        dotted = self.aliases.get(dotted, dotted)
        return dotted if dotted in self.pages else None

    def resolve_prefix(self, dotted: str) -> str | None:
        """The longest documented prefix of ``dotted`` (``convlens.models.load.x`` ->
        ``convlens.models.load``), or None."""
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            found = self.resolve(".".join(parts[:end]))
            if found:
                return found
        return None


def catalog(docs_dir: Path, lib: Path) -> Catalog:
    """What the Library pages under ``docs_dir/library`` document (see the module docstring)."""
    result = Catalog(aliases=lazy_names(lib))
    folder = Path(docs_dir) / LIBRARY_DIR
    pages = sorted(folder.rglob("*.md")) if folder.is_dir() else []
    for page in pages:
        src = page.relative_to(docs_dir).as_posix()
        for target, options in _DIRECTIVE.findall(page.read_text(encoding="utf-8") + "\n"):
            result.pages.setdefault(target, src)
            path = module_file(lib, target)
            if path is None:  # a single object, `::: convlens_course.lesson.setup`
                continue
            result.modules.add(target)
            names = exported(path)
            if not names:
                raise ValueError(f"{src} documents {target}, which has no __all__: list its "
                                 "public names there (only those are documented)")
            members = _MEMBERS.search(options)
            if members:  # only these are rendered
                listed = [m.strip().strip("'\"") for m in members.group(1).split(",")]
                names = [name for name in names if name in listed]
            for name in names:
                result.pages.setdefault(f"{target}.{name}", src)
    return result


# ---- what a lesson uses ------------------------------------------------------------------

def bindings(tree: ast.AST) -> dict[str, str]:
    """Local name -> the full name it was imported as, for imports from our packages."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    if alias.asname:
                        names[alias.asname] = alias.name
                    else:
                        root = alias.name.split(".")[0]
                        names[root] = root
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and node.module.split(".")[0] in PACKAGES):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def parse_lesson(source: str) -> ast.Module:
    """The lesson's code (a percent-format file is Python; its markdown cells are comments).
    Cells that do not parse on their own (an IPython magic) are left out."""
    try:
        return ast.parse(source)
    except SyntaxError:
        body = []
        for cell in re.split(r"^# %%.*$", source, flags=re.M):
            try:
                body += ast.parse(cell).body
            except SyntaxError:
                continue
        return ast.Module(body=body, type_ignores=[])


def expand(dotted: str, names: dict[str, str]) -> str:
    """``dotted`` with its first part replaced by what it was imported as."""
    root, _, rest = dotted.partition(".")
    if root in names:
        return names[root] + ("." + rest if rest else "")
    return dotted


def lesson_uses(source: str | ast.Module, known: Catalog) -> list[str]:
    """The documented functions and classes (not modules) a lesson's code (its source or
    its parsed tree) reaches, in the order of their first use."""
    tree = parse_lesson(source) if isinstance(source, str) else source
    names = bindings(tree)
    nodes = list(ast.walk(tree))
    inner = {id(n.value) for n in nodes if isinstance(n, ast.Attribute)}
    hits = []
    for node in nodes:
        if id(node) in inner or not isinstance(node, (ast.Attribute, ast.Name)):
            continue
        dotted = _dotted(node)
        if dotted is None or dotted.split(".")[0] not in names:
            continue
        full = known.resolve_prefix(expand(dotted, names))
        if full and full not in known.modules:
            hits.append((node.lineno, node.col_offset, full))
    return list(dict.fromkeys(full for _, _, full in sorted(hits)))


# ---- HTML rewriting ------------------------------------------------------------------------

_CODE = re.compile(r"<code>([^<]*)</code>")
_PRE = re.compile(r"<pre\b.*?</pre>", re.S)
_ANCHOR = re.compile(r"<a\b.*?</a>", re.S)
_NAME_SPAN = r'<span class="n">([A-Za-z_]\w*)</span>'  # a name used, not defined
_CODE_CHAIN = re.compile(_NAME_SPAN + r'(?:<span class="o">\.</span>' + _NAME_SPAN + r")*")


def _outside(pattern: re.Pattern, text: str, function) -> str:
    """Apply ``function`` to the parts of ``text`` outside the matches of ``pattern``."""
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(function(text[last:match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(function(text[last:]))
    return "".join(out)


def link_prose(content: str, resolve) -> str:
    """Wrap each inline ``<code>`` of ``content`` (outside ``<pre>`` and links) whose text
    starts with a name ``resolve`` knows in a link: ``resolve(dotted, bare)`` returns the
    href or None (``bare``: the text is one name with no dot and no call)."""
    def one(match: re.Match) -> str:
        text = html.unescape(match.group(1)).strip()
        lead = _DOTTED.match(text)
        if not lead or (lead.end() < len(text) and text[lead.end()] not in "([ "):
            return match.group(0)
        bare = "." not in lead.group(0) and lead.end() == len(text)
        href = resolve(lead.group(0), bare)
        return f'<a href="{href}">{match.group(0)}</a>' if href else match.group(0)

    return _outside(_PRE, content, lambda part: _outside(_ANCHOR, part, lambda p: _CODE.sub(one, p)))


def link_code(content: str, resolve) -> str:
    """Link the (dotted) names of highlighted code (``<pre>`` blocks of pygments spans) for
    which ``resolve(dotted, bare)`` returns an href."""
    def chain(match: re.Match) -> str:
        text = re.sub(r"<[^>]+>", "", match.group(0))
        href = resolve(text, "." not in text)
        return f'<a href="{href}" class="convlens-ref">{match.group(0)}</a>' if href else match.group(0)

    def pre(block: re.Match) -> str:
        return _CODE_CHAIN.sub(chain, block.group(0))

    return _PRE.sub(pre, content)


_HEADING = re.compile(r'<h([1-6]) id="([\w.]+)"[^>]*>.*?</h\1>', re.S)


def add_after_headings(content: str, blocks: dict[str, str]) -> str:
    """Insert ``blocks[id]`` right after the heading whose id is ``id``."""
    def one(match: re.Match) -> str:
        extra = blocks.get(match.group(2))
        return match.group(0) + extra if extra else match.group(0)

    return _HEADING.sub(one, content)


ID = re.compile(r'\bid="([^"]+)"')


def ids(content: str) -> set[str]:
    """Every ``id`` attribute in ``content``."""
    return set(ID.findall(content))


_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj):(?=<code>)")


def strip_roles(content: str) -> str:
    """Drop the Sphinx roles left in rendered docstrings (``:func:`setup``` renders as
    ``:func:<code>setup</code>``): the name stays, as code."""
    return _ROLE.sub("", content)
