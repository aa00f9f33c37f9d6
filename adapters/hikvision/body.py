"""What a Hikvision device posts, read safely: XML or JSON, plain or `multipart/form-data` with pictures.

Pure functions over bytes, so every hostile shape (an XML bomb, a part past its cap, JSON nested a thousand
deep) is tested without a server. XML goes through `defusedxml` with DTDs forbidden: no entity can expand, no
external file or URL is read. Nothing here writes anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError, XMLParser

import defusedxml.ElementTree as SafeXml
from defusedxml import DefusedXmlException

MAX_DOCUMENT_BYTES = 256 * 1024
"""An event document (XML or JSON) larger than this is refused: ISAPI alerts are a few KiB."""
MAX_PICTURE_BYTES = 2 * 2**20
"""A picture part larger than this is cut (dropped, the event kept): plate and face snapshots are 50-500 KiB."""
MAX_PARTS = 16
"""Parts past this many are ignored: an ANPR post carries up to 4 pictures, an AcsEvent one."""
MAX_DEPTH = 32
"""XML or JSON nested deeper than this is refused (ISAPI documents are 4-5 levels deep)."""


class Unreadable(ValueError):
    """The body is no document this adapter can read; the text says why (for the device's log and the dead letter)."""


@dataclass(frozen=True, slots=True)
class Picture:
    name: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class Body:
    """The event document (as plain dicts and lists) and the pictures that came with it."""

    document: dict[str, Any]
    raw: bytes
    """The document's own bytes (the vendor payload a dead letter keeps)."""
    pictures: list[Picture] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    """Names of parts dropped for their size."""


def _local(tag: str) -> str:
    """`{http://www.isapi.org/ver20/XMLSchema}ANPR` -> `ANPR`."""
    return tag.rsplit("}", 1)[-1]


def element_dict(element: Element, depth: int = 0) -> Any:
    """An element as dicts (children by local name; repeated names become a list) or its stripped text."""
    if depth > MAX_DEPTH:
        raise Unreadable(f"the XML is nested deeper than {MAX_DEPTH} levels")
    children = list(element)
    if not children:
        return (element.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        name, value = _local(child.tag), element_dict(child, depth + 1)
        if name in out:
            previous = out[name]
            out[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[name] = value
    return out


DTD_REFUSED = "the XML is refused: {} (DTDs and entities are not accepted)"


def _without_dtd(raw: bytes) -> Element | None:
    """The document read by the C parser when it is UTF-8 text without a DTD, else None (for `defusedxml`).

    Safe without defusedxml: entities (the 5 predefined aside) can only be declared in a DTD, and a DTD can only
    start with the literal `<!DOCTYPE`. The parser is fed text that was decoded here, so it reads what was
    checked, whatever encoding the document's declaration names."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "<!DOCTYPE" in text:
        raise Unreadable(DTD_REFUSED.format("DTDForbidden"))
    parser = XMLParser()
    parser.feed(text)
    return parser.close()


def parse_xml(raw: bytes) -> dict[str, Any]:
    """`<EventNotificationAlert>...` as `{"EventNotificationAlert": {...}}`; DTDs, entities and external
    references are refused (that is what an XML bomb needs)."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise Unreadable(f"the XML document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        root = _without_dtd(raw)
        if root is None:
            root = SafeXml.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise Unreadable(DTD_REFUSED.format(type(exc).__name__)) from None
    except (ParseError, ValueError) as exc:
        raise Unreadable(f"the XML cannot be read: {exc}") from None
    return {_local(root.tag): element_dict(root)}


def _depth(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise Unreadable(f"the JSON is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for v in value.values():
            _depth(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _depth(v, depth + 1)


def parse_json(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise Unreadable(f"the JSON document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Unreadable(f"the JSON cannot be read: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise Unreadable("the JSON document is not an object")
    _depth(value)
    return value


def parse_document(raw: bytes, content_type: str = "") -> dict[str, Any]:
    """XML or JSON by the declared type, else by the first byte (devices label both `text/plain` at times)."""
    head = raw.lstrip()[:1]
    if "json" in content_type or (head == b"{" and "xml" not in content_type):
        return parse_json(raw)
    if "xml" in content_type or head == b"<":
        return parse_xml(raw)
    raise Unreadable(f"the body is neither XML nor JSON (Content-Type {content_type[:80]!r})")


_BOUNDARY = re.compile(r'boundary="?([^";]{1,200})"?', re.IGNORECASE)
_NAME = re.compile(r'\bname="([^"]{0,200})"', re.IGNORECASE)
_FILENAME = re.compile(r'\bfilename="([^"]{0,200})"', re.IGNORECASE)


def _headers(block: bytes) -> Mapping[str, str]:
    out = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def parse_multipart(raw: bytes, content_type: str) -> Body:
    """The first XML/JSON part is the event; image parts are pictures (each capped, at most MAX_PARTS parts).

    Hikvision names the parts after their role (`anpr.xml`, `licensePlatePicture.jpg`, `AccessControllerEvent`,
    `Picture`); the event part is found by its content type or its first byte, not its name."""
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise Unreadable("multipart/form-data without a boundary")
    delimiter = b"--" + found.group(1).encode()
    document: dict[str, Any] | None = None
    raw_document = b""
    pictures: list[Picture] = []
    cut: list[str] = []
    for number, chunk in enumerate(raw.split(delimiter)[1:]):
        if chunk.startswith(b"--") or number >= MAX_PARTS:
            break
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        data = data.removesuffix(b"\r\n")
        headers = _headers(head)
        disposition = headers.get("content-disposition", "")
        name_match = _FILENAME.search(disposition) or _NAME.search(disposition)
        name = name_match.group(1) if name_match else f"part-{number}"
        part_type = headers.get("content-type", "").lower()
        if part_type.startswith("image/"):
            if len(data) > MAX_PICTURE_BYTES:
                cut.append(name)
            elif data:
                pictures.append(Picture(name, part_type.split(";")[0], data))
            continue
        if document is None and ("xml" in part_type or "json" in part_type or data.lstrip()[:1] in (b"<", b"{")):
            document, raw_document = parse_document(data, part_type), data
    if document is None:
        raise Unreadable("the multipart body has no XML or JSON event part")
    return Body(document, raw_document, pictures, cut)


def parse_body(raw: bytes, content_type: str) -> Body:
    """A plain document or a multipart one, as the device's Content-Type says."""
    if content_type.lower().startswith("multipart/"):
        return parse_multipart(raw, content_type)
    return Body(parse_document(raw, content_type.lower()), raw)
