"""Real files made by the tests: PDF (fpdf2), DOCX (python-docx), HTML, WAV (wave + a LIST/INFO chunk)."""

from __future__ import annotations

import io
import struct
import wave


def make_pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_encrypted_pdf(text: str, password: str = "secret") -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password=password)
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_docx(sections: list[tuple[int, str, list[str]]]) -> bytes:
    import docx

    document = docx.Document()
    for level, heading, paragraphs in sections:
        document.add_heading(heading, level=level)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


HTML_PAGE = b"""<!DOCTYPE html>
<html><head><title>Boiler maintenance</title>
<style>body { color: red; }</style>
<script>alert("tracking script should never appear");</script>
</head><body>
<nav><a href="/">Home</a> <a href="/about">About us navigation</a></nav>
<header>Site banner header text</header>
<main>
<h1>Boiler maintenance</h1>
<p>Check the <b>pressure gauge</b> every month; it should read between 1 and 1.5 bar.</p>
<h2>Bleeding radiators</h2>
<p>Turn the heating off before bleeding a radiator.</p>
<ul><li>Use a radiator key.</li><li>Keep a cloth ready.</li></ul>
</main>
<aside>Related links sidebar</aside>
<footer>Copyright footer text</footer>
<img src="http://example.invalid/track.png">
</body></html>
"""


def make_wav(comment: str, seconds: float = 0.2, rate: int = 8000) -> bytes:
    """A silent WAV written by `wave`, with a LIST/INFO/ICMT chunk appended (the stand-in's transcript)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(rate * seconds))
    data = bytearray(out.getvalue())
    text = comment.encode("utf-8") + b"\x00"
    if len(text) % 2:
        text += b"\x00"
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(text)) + text
    data += b"LIST" + struct.pack("<I", len(info)) + info
    struct.pack_into("<I", data, 4, len(data) - 8)
    return bytes(data)
