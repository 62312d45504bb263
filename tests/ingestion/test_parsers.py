"""Each parser on real files; spans always index the canonical text."""

from __future__ import annotations

import io
import zipfile

import pytest

from ingestion.parsers import ParseError, parse_bytes, parse_string, sniff_mime_type
from tests.ingestion.files import HTML_PAGE, make_docx, make_encrypted_pdf, make_pdf, make_wav


def assert_spans(parsed):
    for block in parsed.blocks:
        assert parsed.text[block.char_start : block.char_end] == block.text


def test_text_encoding_is_detected():
    text = "Le château de la forêt était très ancien; les élèves y allaient souvent pendant l'été. " * 3
    parsed = parse_bytes(text.encode("cp1252"))
    assert parsed.mime_type == "text/plain"
    assert "château de la forêt était très" in parsed.text
    russian = "Привет, мир! Это проверка кодировки текста для системы поиска документов. " * 3
    assert "проверка кодировки" in parse_bytes(russian.encode("cp1251")).text
    assert_spans(parsed)


def test_markdown_headings_become_the_heading_path():
    source = (
        "# Guide\n\nIntro.\n\n## Install\n\nRun it.\n\n```\n# not a heading\n```\n\n"
        "### Linux\n\nUse apt.\n\n## Use\n\nGo."
    )
    parsed = parse_bytes(source.encode(), "guide.md")
    assert parsed.mime_type == "text/markdown"
    assert parsed.text == source
    assert_spans(parsed)
    paths = {b.text: b.heading_path for b in parsed.blocks}
    assert paths["Run it."] == ("Guide", "Install")
    assert paths["Use apt."] == ("Guide", "Install", "Linux")
    assert paths["Go."] == ("Guide", "Use")
    assert "```\n# not a heading\n```" in paths


def test_html_keeps_main_text_and_drops_scripts_and_navigation():
    parsed = parse_bytes(HTML_PAGE, "page.bin")
    assert parsed.mime_type == "text/html"
    assert "pressure gauge" in parsed.text and "radiator key" in parsed.text
    for dropped in ("tracking script", "navigation", "banner", "sidebar", "footer", "color: red"):
        assert dropped not in parsed.text
    assert_spans(parsed)
    block = next(b for b in parsed.blocks if "Turn the heating off" in b.text)
    assert block.heading_path == ("Boiler maintenance", "Bleeding radiators")
    assert parsed.metadata["title"] == "Boiler maintenance"


def test_pdf_pages_are_kept():
    data = make_pdf(["First page about pumps.", "Second page about valves.", "Third page about pipes."])
    assert sniff_mime_type(data, "whatever.txt") == "application/pdf"
    parsed = parse_bytes(data)
    assert_spans(parsed)
    pages = {b.page for b in parsed.blocks}
    assert pages == {1, 2, 3}
    valves = next(b for b in parsed.blocks if "valves" in b.text)
    assert valves.page == 2


def test_corrupt_and_encrypted_pdfs_fail_with_reasons():
    good = make_pdf(["Some text."])
    with pytest.raises(ParseError, match="corrupt|no extractable"):
        parse_bytes(good[:200] + b"garbage" * 50)
    with pytest.raises(ParseError, match="encrypted"):
        parse_bytes(make_encrypted_pdf("Top secret text."))


def test_pdf_javascript_is_never_run():
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import DictionaryObject, NameObject, TextStringObject

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Visible text."]))))
    action = {
        NameObject("/S"): NameObject("/JavaScript"),
        NameObject("/JS"): TextStringObject("app.alert('pwned');"),
    }
    writer._root_object[NameObject("/OpenAction")] = DictionaryObject(action)
    out = io.BytesIO()
    writer.write(out)
    parsed = parse_bytes(out.getvalue())
    assert "Visible text." in parsed.text and "pwned" not in parsed.text


def test_docx_headings_are_kept():
    data = make_docx([(1, "Handbook", ["Welcome aboard."]), (2, "Holidays", ["Twenty-five days a year."])])
    assert sniff_mime_type(data, "x.pdf").endswith("wordprocessingml.document")
    parsed = parse_bytes(data)
    assert_spans(parsed)
    block = next(b for b in parsed.blocks if b.text == "Twenty-five days a year.")
    assert block.heading_path == ("Handbook", "Holidays")


def test_zip_archives_and_docx_bombs_are_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(ParseError, match="Zip archives are not accepted"):
        parse_bytes(out.getvalue())
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"<w:document/>")
        z.writestr("word/padding.bin", b"\x00" * (20 * 1024 * 1024))
    with pytest.raises(ParseError, match="decompression bomb"):
        parse_bytes(bomb.getvalue())


def test_unknown_and_empty_files_fail():
    with pytest.raises(ParseError, match="Unknown file type"):
        parse_bytes(bytes(range(256)) * 40)
    with pytest.raises(ParseError, match="empty"):
        parse_bytes(b"   \n")


@pytest.mark.parametrize(
    "head,mime",
    [
        (b"ID3\x03\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x00", "audio/mpeg"),
        (b"fLaC\x00", "audio/flac"),
        (b"OggS\x00", "audio/ogg"),
    ],
)
def test_audio_is_sniffed_from_magic_numbers(head, mime):
    assert sniff_mime_type(head + b"\x00" * 64, "song.txt") == mime


def test_wav_is_transcribed_by_the_provider(genapi):
    data = make_wav("The safety valve must be tested every spring.")
    assert sniff_mime_type(data) == "audio/wav"
    parsed = parse_bytes(data, "memo.wav")
    assert parsed.text == "The safety valve must be tested every spring."
    assert genapi.stats()["requests"].get("audio/transcriptions", 0) >= 1


def test_text_input_with_markdown_headings():
    parsed = parse_string("# A\n\nalpha\n\n## B\n\nbeta")
    assert [b.heading_path for b in parsed.blocks if not b.is_heading] == [("A",), ("A", "B")]
