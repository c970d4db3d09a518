"""Reading real-world mail: encoded headers, wrong or unknown charsets, nested MIME, HTML only.

Nothing here raises on bad input: a header that cannot be decoded comes back with replacement
characters, a part in an unknown charset is read as UTF-8 or Windows-1252, and a message whose
MIME is broken still yields what text can be found. Messages are parsed with the ``compat32``
policy, which records defects instead of raising on access.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import policy
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses
from html.parser import HTMLParser

#: Charset labels mail clients write that Python does not know, or knows by a narrower name.
CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",  # what senders labelled Latin-1 almost always is (as browsers assume)
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "unicode-1-1-utf-7": "utf-7",
    "x-sjis": "shift_jis",
    "ks_c_5601-1987": "cp949",
    "windows-874": "cp874",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "utf8": "utf-8",
}
UNKNOWN_CHARSETS = {"unknown-8bit", "x-unknown", "unknown", "default", "8bit", "binary"}

#: Where the quoted original begins in a reply: what follows is the newsletter, not the reader.
ATTRIBUTION = re.compile(
    r"^\s*(on\b.{0,200}\bwrote:?|am\b.{0,200}\bschrieb\b.{0,80}:?|le\b.{0,200}\ba écrit\s*:?"
    r"|el\b.{0,200}\bescribió:?|-{2,}\s*original message\s*-{2,}|-{2,}\s*ursprüngliche nachricht\s*-{2,}"
    r"|_{10,}|from:\s.+|von:\s.+)\s*$",
    re.IGNORECASE,
)


def parse_message(raw: bytes) -> Message:
    """A message object for any bytes (broken MIME included); defects are recorded, not raised."""
    return BytesParser(policy=policy.compat32).parsebytes(raw)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text of ``data`` in its declared charset, else UTF-8, else Windows-1252, else Latin-1."""
    label = (charset or "").strip().strip("\"'").lower()
    candidates = []
    if label and label not in UNKNOWN_CHARSETS:
        candidates.append(CHARSET_ALIASES.get(label, label))
    candidates += ["utf-8", "cp1252"]
    for candidate in candidates:
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def decode_words(value: str | Header) -> str:
    """A header value with RFC 2047 encoded words (and raw 8-bit bytes) decoded, unfolded."""
    try:
        parts = decode_header(value)
    except Exception:  # a malformed encoded word: keep what was written
        return _unfold(str(value))
    text = []
    for chunk, charset in parts:
        text.append(chunk if isinstance(chunk, str) else decode_bytes(chunk, charset))
    return _unfold("".join(text))


def _unfold(value: str) -> str:
    """One line of storable text: raw 8-bit bytes (kept as surrogates by the parser) read as UTF-8."""
    try:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return re.sub(r"[\r\n\t ]+", " ", value).strip().replace("\x00", "")


def header_text(msg: Message, name: str) -> str | None:
    """The decoded value of the first ``name`` header, or ``None`` when there is none."""
    try:
        value = msg.get(name)
    except Exception:
        return None
    if value is None:
        return None
    return decode_words(value)


def header_values(msg: Message, name: str) -> list[str]:
    """Every ``name`` header, decoded (e.g. several Received or Authentication-Results)."""
    try:
        values = msg.get_all(name) or []
    except Exception:
        return []
    return [decode_words(v) for v in values]


def raw_header(msg: Message, name: str) -> str | None:
    """The undecoded header (for structured fields such as Message-ID, Return-Path)."""
    try:
        value = msg.get(name)
    except Exception:
        return None
    if value is None:
        return None
    return _unfold(str(value) if not isinstance(value, Header) else decode_words(value))


def addresses(msg: Message, *names: str) -> list[tuple[str, str]]:
    """``(display name, address)`` pairs from address headers; display names decoded."""
    values: list[str] = []
    for name in names:
        try:
            values += [str(v) if not isinstance(v, Header) else decode_words(v) for v in msg.get_all(name) or []]
        except Exception:
            continue
    try:
        pairs = getaddresses(values)
    except Exception:
        return []
    # an address written as encoded words is not valid, but some libraries send it so: read it anyway
    return [(decode_words(display), decode_words(address.strip())) for display, address in pairs if "@" in address]


def _parts(msg: Message) -> Iterator[Message]:
    """Leaf parts in order, not descending into attached messages (a forwarded mail's text is not
    the reader's)."""
    if msg.is_multipart():
        payload = msg.get_payload()
        for part in payload if isinstance(payload, list) else []:
            if not isinstance(part, Message) or part.get_content_maintype() == "message":
                continue
            yield from _parts(part)
    else:
        yield msg


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition", "")).strip().lower()
    return disposition.startswith("attachment")


def part_text(part: Message) -> str:
    """A leaf part's text: transfer encoding undone (leniently), charset decoded."""
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if not isinstance(data, bytes):
        payload = part.get_payload()
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(data, charset)


def body_text(msg: Message) -> str:
    """The reader's text: the first text/plain part that is not an attachment, else the first
    text/html one turned into text."""
    html: Message | None = None
    for part in _parts(msg):
        if _is_attachment(part):
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            return part_text(part)
        if kind == "text/html" and html is None:
            html = part
    return html_to_text(part_text(html)) if html is not None else ""


class _TextExtractor(HTMLParser):
    """Visible text of an HTML mail; quoted originals (blockquote, gmail_quote) left out."""

    BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "hr"})
    SKIP = frozenset({"script", "style", "head", "title", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = " ".join(v or "" for k, v in attrs if k == "class")
        if tag in self.SKIP or (tag == "div" and ("gmail_quote" in classes or "moz-cite-prefix" in classes)):
            self.skipping.append(tag)
        elif tag in self.BLOCKS and not self.skipping:
            self.text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()
        elif tag in self.BLOCKS and not self.skipping:
            self.text.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.text.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # html.parser is lenient; this is for the unforeseen
        return re.sub(r"<[^>]*>", " ", html)
    return re.sub(r"\n\s*\n+", "\n\n", "".join(extractor.text)).strip()


def own_words(text: str) -> str:
    """The part of a reply its writer wrote: quoted lines (``>``) dropped, and everything from
    the attribution line ("On ... wrote:") or the signature separator on."""
    kept = []
    for line in text.splitlines():
        if line.rstrip() == "--" or line.startswith("-- ") or ATTRIBUTION.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    return "\n".join(kept).strip()
