"""What message text and client_msg_ids may hold: visible text, contained bidi controls.

* A message must hold at least one visible character. Invisible are: whitespace
  (of any script), the Unicode categories Cc, Cf, Cs, Zs, Zl, Zp (controls,
  format characters such as zero-width spaces, bidi controls and the BOM,
  separators), combining marks on their own (Mn, Me: nothing to combine with),
  the default-ignorable code points (variation selectors, tags, unassigned ones
  reserved as ignorable), and characters that are letters or symbols by category
  but draw nothing: the Hangul fillers (U+115F, U+1160, U+3164, U+FFA0), the
  Braille blank (U+2800), the Khmer inherent vowels (U+17B4, U+17B5) and the
  musical null notehead (U+1D159).
* Bidi controls are contained, so no message can reorder text outside itself
  (the sender's name, the next message): in each paragraph (a line), a closer
  without its opener is dropped, and every embedding, override or isolate still
  open at the end of the paragraph is closed there (PDF, PDI). What is stored
  and delivered is the contained text. Inside a message, bidi controls work as
  their author meant.
* A ``client_msg_id`` is printable ASCII (``!`` to ``~``): it is echoed to every
  member of the conversation, so it may hold no control or invisible character.
"""

from __future__ import annotations

import unicodedata

#: Categories that draw nothing by themselves.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})
#: Code points that draw nothing though their category says otherwise, and the
#: default-ignorable ranges (whatever Unicode version Python's tables know).
_INVISIBLE_RANGES = (
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x2065, 0x2065),  # reserved default-ignorable
    (0x2800, 0x2800),  # Braille pattern blank
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # reserved default-ignorable
    (0x1D159, 0x1D159),  # musical symbol null notehead
    (0x1D173, 0x1D17A),  # musical formatting controls
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement, reserved
)

#: Bidi embeddings and overrides (closed by PDF), and isolates (closed by PDI).
_EMBEDDINGS = frozenset("\u202a\u202b\u202d\u202e")  # LRE RLE LRO RLO
_PDF = "\u202c"
_ISOLATES = frozenset("\u2066\u2067\u2068")  # LRI RLI FSI
_PDI = "\u2069"
#: Characters that end a paragraph, and with it every open bidi control.
_PARAGRAPH_ENDS = frozenset("\n\r\x1c\x1d\x1e\x85\u2029")


def is_invisible(char: str) -> bool:
    """Whether ``char`` draws nothing on its own (see the module docstring)."""
    if char.isspace() or unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def has_visible(text: str) -> bool:
    """Whether ``text`` holds at least one character that draws something."""
    return not all(is_invisible(c) for c in text)


def contain_bidi(text: str) -> str:
    """``text`` with its bidi controls balanced in each paragraph (see the module docstring)."""
    if not any(c in _EMBEDDINGS or c in _ISOLATES or c in (_PDF, _PDI) for c in text):
        return text
    out: list[str] = []
    open_: list[str] = []

    def close_all() -> None:
        out.extend(_PDI if opener in _ISOLATES else _PDF for opener in reversed(open_))
        open_.clear()

    for char in text:
        if char in _PARAGRAPH_ENDS:
            close_all()
            out.append(char)
        elif char in _EMBEDDINGS or char in _ISOLATES:
            open_.append(char)
            out.append(char)
        elif char == _PDF:
            # UAX #9: a PDF closes the last embedding only if no isolate is open above it.
            if open_ and open_[-1] in _EMBEDDINGS:
                open_.pop()
                out.append(char)
        elif char == _PDI:
            # A PDI closes its isolate and every embedding opened inside it.
            if any(opener in _ISOLATES for opener in open_):
                while open_.pop() not in _ISOLATES:
                    pass
                out.append(char)
        else:
            out.append(char)
    close_all()
    return "".join(out)


def is_printable_ascii(value: str) -> bool:
    """Whether every character of ``value`` is printable ASCII other than space."""
    return all("!" <= c <= "~" for c in value)
