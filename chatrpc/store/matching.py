"""What a search query is and which text it matches: words, prefixes, snippets.

Pure functions, the same for every store, so a query means one thing everywhere:

* A query is up to :data:`MAX_QUERY_WORDS` words (at most :data:`MAX_QUERY_CHARS`
  characters). A word is a run of letters, digits and combining marks; anything
  else separates words, so ``don't`` is the two words ``don`` and ``t``. A
  message matches when every word of the query is a word of its text, in any
  order, ignoring case and diacritics (``Cafe`` finds ``café``). A word written
  with a trailing ``*`` matches every word it begins (``deploy*`` finds
  ``deployment``); such a prefix needs :data:`MIN_PREFIX` characters.
* A query with no word, control characters, too many words or characters is
  refused with INVALID_ARGUMENT and a message saying which. Nothing a user types
  is ever handed to a search engine as syntax: :meth:`Query.fts5` quotes every
  word (SQLite FTS5 sees ``"word"`` and ``"pre" *`` only).
* The snippet of a match is a short excerpt of the text around the first word
  that matches, on one line, with ``…`` where it was cut.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import invalid

#: Longest query, in characters, and most words in one.
MAX_QUERY_CHARS = 256
MAX_QUERY_WORDS = 16
#: Fewest characters before a ``*``: a one-letter prefix matches nearly everything.
MIN_PREFIX = 2
#: Longest snippet, in characters (not counting the ``…`` marks), and how much
#: of it comes before the first match.
SNIPPET_CHARS = 96
SNIPPET_BEFORE = 32

ELLIPSIS = "…"

_ASCII_WORD = re.compile(r"[a-z0-9]+")


def _is_word_char(ch: str) -> bool:
    # Letters, digits, private use (as SQLite's unicode61 tokenizer) and marks.
    cat = unicodedata.category(ch)
    return cat[0] in "LNM" or cat == "Co"


def fold(word: str) -> str:
    """A word as compared: no diacritics (decomposed, marks dropped), case folded."""
    decomposed = unicodedata.normalize("NFKD", word)
    bare = "".join(c for c in decomposed if not unicodedata.category(c).startswith("M"))
    return unicodedata.normalize("NFC", bare).casefold()


def words(text: str) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` of every word of ``text``, in order."""
    start = -1
    for i, ch in enumerate(text):
        if _is_word_char(ch):
            if start < 0:
                start = i
        elif start >= 0:
            yield start, i
            start = -1
    if start >= 0:
        yield start, len(text)


@dataclass(frozen=True, slots=True)
class Term:
    """One word of a query: as typed (for the search engine), folded, and whether a prefix."""

    raw: str
    folded: str
    prefix: bool = False

    def matches(self, folded_word: str) -> bool:
        if self.prefix:
            return folded_word.startswith(self.folded)
        return folded_word == self.folded


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: every term must match a word of the text (see the module doc)."""

    terms: tuple[Term, ...]

    def matches(self, text: str) -> bool:
        """Whether ``text`` holds a word for every term."""
        if not text:
            return False
        if text.isascii():
            # The common case, fast: ASCII words are runs of letters and digits,
            # folded by lower-casing.
            found = set(_ASCII_WORD.findall(text.lower()))
        else:
            found = {fold(text[a:b]) for a, b in words(text)}
        for term in self.terms:
            if term.prefix:
                if not any(w.startswith(term.folded) for w in found):
                    return False
            elif term.folded not in found:
                return False
        return True

    def first_match(self, text: str) -> tuple[int, int] | None:
        """Where the first word of ``text`` that some term matches is, if any."""
        for a, b in words(text):
            w = fold(text[a:b])
            if any(t.matches(w) for t in self.terms):
                return a, b
        return None

    def fts5(self) -> str:
        """The query in SQLite FTS5 syntax: each term a quoted string, ANDed."""
        return " ".join(f'"{t.raw}" *' if t.prefix else f'"{t.raw}"' for t in self.terms)


def parse_query(raw: str) -> Query:
    """The query a user typed, or INVALID_ARGUMENT saying what is wrong with it."""
    if len(raw) > MAX_QUERY_CHARS:
        raise invalid(f"the search query is longer than {MAX_QUERY_CHARS} characters")
    if any(unicodedata.category(c) == "Cc" and not c.isspace() for c in raw):
        raise invalid("the search query holds control characters")
    terms: list[Term] = []
    for piece in raw.split():
        spans = list(words(piece))
        for n, (a, b) in enumerate(spans):
            prefix = n == len(spans) - 1 and piece.endswith("*") and b == len(piece) - 1
            word = piece[a:b]
            if not fold(word):
                continue  # marks alone: nothing to compare
            if prefix and len(word) < MIN_PREFIX:
                raise invalid(f"a prefix needs at least {MIN_PREFIX} letters before '*': {piece!r}")
            terms.append(Term(word, fold(word), prefix))
    if not terms:
        raise invalid("the search query needs at least one word (letters or digits)")
    if len(terms) > MAX_QUERY_WORDS:
        raise invalid(f"the search query has more than {MAX_QUERY_WORDS} words")
    return Query(tuple(dict.fromkeys(terms)))


def snippet(query: Query, text: str) -> str:
    """A short excerpt of ``text`` on one line, around the first word ``query`` matches."""
    flat = " ".join(text.split())
    found = query.first_match(flat)
    start = 0 if found is None else max(0, found[0] - SNIPPET_BEFORE)
    if found is not None and found[1] - start > SNIPPET_CHARS:
        start = found[0]  # a very long word: show it from its start
    end = min(len(flat), start + SNIPPET_CHARS)
    # Cut at spaces rather than inside words when there is one nearby.
    if start > 0:
        space = flat.find(" ", start, found[0] if found else start + 1)
        start = space + 1 if space >= 0 else start
    if end < len(flat):
        space = flat.rfind(" ", start + SNIPPET_CHARS // 2, end)
        end = space if space >= 0 else end
    head = ELLIPSIS if start > 0 else ""
    tail = ELLIPSIS if end < len(flat) else ""
    return head + flat[start:end].strip() + tail
