"""PDF through pypdf, one block per paragraph with its page number.

pypdf only reads the page content streams: JavaScript, launch actions, forms and embedded files are never
executed or opened. Corrupt and password-protected files fail with a reason people can act on.
"""

from __future__ import annotations

import io
import logging

from ingestion.parsers.base import ParsedDocument, ParseError, TextBuilder
from ingestion.parsers.text import normalize_newlines

logger = logging.getLogger(__name__)
MAX_PAGES = 5000


def parse_pdf(data: bytes) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                # Owner-password-only files ("no copying") open with an empty user password.
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError, PdfReadError, FileNotDecryptedError):
                opened = 0
            if not opened:
                raise ParseError("The PDF is encrypted (password-protected); upload an unprotected copy.")
        pages = reader.pages
        count = len(pages)
    except ParseError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise ParseError(f"The PDF is corrupt or unreadable ({type(exc).__name__}: {exc}).") from exc
    if count > MAX_PAGES:
        raise ParseError(f"The PDF has {count} pages; at most {MAX_PAGES} are accepted.")

    builder = TextBuilder()
    for number in range(1, count + 1):
        try:
            text = pages[number - 1].extract_text() or ""
        except FileNotDecryptedError as exc:
            raise ParseError(
                "The PDF is encrypted (password-protected); upload an unprotected copy."
            ) from exc
        except Exception as exc:  # one broken page should not lose the others
            logger.warning("pdf page %s unreadable: %s", number, exc)
            continue
        text = normalize_newlines(text).replace("\x00", "")
        for paragraph in _paragraphs(text):
            builder.add(paragraph, page=number)
    result = builder.result("application/pdf", {"pages": count})
    if not result.text.strip():
        raise ParseError("The PDF has no extractable text (it may be scanned images; OCR is not supported).")
    return result


def _paragraphs(text: str) -> list[str]:
    import re

    return [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
