"""HTML: the main text, headings kept; scripts, styles and navigation dropped. Nothing is ever fetched
(BeautifulSoup only reads the bytes given; linked resources, frames and images are ignored)."""

from __future__ import annotations

import re
import warnings

from bs4 import BeautifulSoup, Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

from ingestion.parsers.base import ParsedDocument, ParseError, TextBuilder, heading_path_push

_DROP = {
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "iframe",
    "object",
    "embed",
    "svg",
    "canvas",
    "form",
    "button",
    "select",
    "head",
    "menu",
}
_BLOCK = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "pre",
    "blockquote",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "caption",
    "figure",
    "figcaption",
    "address",
    "details",
    "summary",
    "body",
    "html",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "br",
}
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SPACE = re.compile(r"\s+")


# Declarations that hide an element; values are compared with spaces and `!important` removed.
_HIDING_DECLARATIONS = {
    "display": {"none"},
    "visibility": {"hidden", "collapse"},
    "opacity": {"0", "0.0", "0%"},
    "font-size": {"0", "0px", "0em", "0rem", "0pt", "0%"},
    "content-visibility": {"hidden"},
}


def _is_hidden(tag: Tag) -> bool:
    attrs = tag.attrs
    hidden = attrs.get("hidden")
    if hidden is not None and str(hidden).strip().lower() != "until-found":
        return True
    if str(attrs.get("aria-hidden", "")).strip().lower() == "true":
        return True
    style = attrs.get("style")
    return bool(style) and style_hides(str(style))


def style_hides(style: str) -> bool:
    """Whether an inline `style` attribute hides its element (no regex: the attribute is untrusted)."""
    for declaration in _css_comments_strip(style).split(";"):
        name, _, value = declaration.partition(":")
        value = "".join(value.lower().replace("!important", "").split())
        if value in _HIDING_DECLARATIONS.get(name.strip().lower(), ()):
            return True
    return False


def _css_comments_strip(style: str) -> str:
    parts, pos = [], 0
    while (start := style.find("/*", pos)) >= 0:
        parts.append(style[pos:start])
        end = style.find("*/", start + 2)
        if end < 0:
            return "".join(parts)
        pos = end + 2
    parts.append(style[pos:])
    return "".join(parts)


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def parse_html(data: bytes) -> ParsedDocument:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            soup = BeautifulSoup(data, "lxml")
    except Exception as exc:  # lxml raises a variety of errors on garbage
        raise ParseError(f"The HTML could not be read: {exc}") from exc
    title = _clean(soup.title.get_text()) if soup.title else ""
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": ["navigation", "banner", "contentinfo", "complementary"]}):
        tag.decompose()
    # Text a reader never sees must not reach the model either: planted invisible instructions are a
    # prompt-injection channel. `hidden="until-found"` stays (collapsed sections a reader can open).
    for tag in soup.find_all(_is_hidden):
        tag.decompose()
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.find("article") or soup.body or soup

    builder = TextBuilder()
    state = {"path": ()}
    inline: list[str] = []

    def flush() -> None:
        text = _clean(" ".join(inline))
        inline.clear()
        if text:
            builder.add(text, heading_path=state["path"])

    # An explicit stack, not recursion: an upload nested thousands of elements deep must not overflow
    # Python's stack in the worker. Each entry is (children still to visit, flush when done).
    stack = [(iter(root.children), False)]
    while stack:
        children, flush_after = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if flush_after:
                flush()
            continue
        if isinstance(child, (Comment, Doctype, Declaration, ProcessingInstruction)):
            continue
        if isinstance(child, NavigableString):
            inline.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name.lower() if child.name else ""
        if name in _HEADINGS:
            flush()
            heading = _clean(child.get_text(" "))
            if heading:
                state["path"] = heading_path_push(state["path"], _HEADINGS[name], heading)
                builder.add(heading, heading_path=state["path"], is_heading=True)
        elif name in _BLOCK:
            flush()
            stack.append((iter(child.children), True))
        else:
            stack.append((iter(child.children), False))
    flush()
    result = builder.result("text/html", {"title": title} if title else {})
    return result
