"""DOCX through python-docx: paragraphs and tables in body order, Word heading styles build the heading path.

A DOCX is a zip archive, so it is checked for decompression bombs (total uncompressed size, compression
ratio, entry count) before python-docx opens it.
"""

from __future__ import annotations

import io
import re
import zipfile

from ingestion.parsers.base import ParsedDocument, ParseError, TextBuilder, heading_path_push

MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_RATIO = 100
MAX_ENTRIES = 10_000
_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def zip_check_bomb(data: bytes) -> zipfile.ZipFile:
    """Open the archive after checking the declared sizes; refuse anything that would expand too far."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ParseError(f"The file is a corrupt zip archive ({exc}).") from exc
    if len(infos) > MAX_ENTRIES:
        raise ParseError(f"The archive has {len(infos)} entries; at most {MAX_ENTRIES} are accepted.")
    total = sum(info.file_size for info in infos)
    compressed = sum(info.compress_size for info in infos) or 1
    if total > MAX_UNCOMPRESSED_BYTES or (total > 10 * 1024 * 1024 and total / compressed > MAX_RATIO):
        raise ParseError(
            f"The archive expands to {total / 2**20:.0f} MB from {compressed / 2**20:.1f} MB "
            "(a possible decompression bomb); it was refused."
        )
    return archive


def parse_docx(data: bytes) -> ParsedDocument:
    zip_check_bomb(data).close()
    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors on broken parts
        raise ParseError(f"The DOCX is corrupt or unreadable ({type(exc).__name__}: {exc}).") from exc

    builder = TextBuilder()
    path: tuple[str, ...] = ()
    body = document.element.body
    for element in body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            text = paragraph.text.strip()
            if not text:
                continue
            level = _heading_level(paragraph)
            if level:
                path = heading_path_push(path, level, text)
                builder.add(text, heading_path=path, is_heading=True)
            else:
                builder.add(text, heading_path=path)
        elif tag == "tbl":
            table = Table(element, document)
            rows = []
            for row in table.rows:
                cells = []
                for cell in row.cells:
                    value = " ".join(cell.text.split())
                    if value and (not cells or cells[-1] != value):  # merged cells repeat
                        cells.append(value)
                if cells:
                    rows.append(" | ".join(cells))
            if rows:
                builder.add("\n".join(rows), heading_path=path)
    title = (document.core_properties.title or "").strip()
    return builder.result(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        {"title": title} if title else {},
    )


def _heading_level(paragraph) -> int:
    try:
        name = (paragraph.style.name or "") if paragraph.style is not None else ""
    except Exception:
        return 0
    if name.lower() == "title":
        return 1
    match = _HEADING_STYLE.match(name.strip())
    return int(match.group(1)) if match else 0
