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
    for tag in soup.find_all(attrs={"aria-hidden": "true"}):
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

    def walk(node: Tag) -> None:
        for child in node.children:
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
                walk(child)
                flush()
            else:
                walk(child)

    walk(root)
    flush()
    result = builder.result("text/html", {"title": title} if title else {})
    return result
