"""The web's search syntax (SQLite FTS5's: words, "a phrase", prefix*, AND/OR/NOT,
parentheses) as a PostgreSQL tsquery over the record's `search` tsvector. Pure functions.

The tsvector is built from the same tokens FTS5's unicode61 tokenizer makes (runs of letters
and digits, lower-cased; every other character separates), so a search finds the same records
on both engines. A malformed search raises QueryError, as SQLite's complaint does there.
"""

from __future__ import annotations

import re

from appliance.store.query import QueryError, fts_expression

# FTS5 barewords: ASCII letters, digits, underscore, any non-ASCII character, and 0x1A.
_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"]|"")*")|(?P<word>[A-Za-z0-9_\x1a\x80-\U0010ffff]+)'
                    r'|(?P<star>\*)|(?P<open>\()|(?P<close>\))|(?P<other>\S))')
_LEXEME = re.compile(r"[^\W_]+")  # unicode61's token: letters and digits, '_' separates
NOTHING = "' '"  # a lexeme the index never holds (a token has no space): matches no record
# How the tsvector is built, in SQL: the same tokens as `lexemes` below.
TSVECTOR_SQL = ("to_tsvector('simple', regexp_replace(coalesce(message, '') || ' ' || "
                "coalesce(exc_text, ''), '[^[:alnum:]]+', ' ', 'g'))")


def lexemes(text: str) -> list[str]:
    return _LEXEME.findall(text.lower())


def tsquery(text: str) -> str:
    """The user's search (as the web takes it) → a tsquery literal for `?::tsquery`."""
    tokens = _tokens(fts_expression(text))
    parser = _Parser(tokens)
    result = parser.expression()
    if parser.position != len(tokens):
        raise _syntax(f'near "{tokens[parser.position][1]}"')
    return result


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "other":
            raise _syntax(f'near "{value}"')
        if kind == "word" and value in ("AND", "OR", "NOT"):
            kind = value
        elif kind == "word" and value == "NEAR":
            raise QueryError("search syntax: NEAR is not supported on PostgreSQL (words, "
                             "\"a phrase\", prefix*, AND/OR/NOT, parentheses)")
        out.append((kind, value))
    return out


def _syntax(what: str) -> QueryError:
    return QueryError(f"search syntax: fts5: syntax error {what} (words, \"a phrase\", "
                      "prefix*, AND/OR/NOT, parentheses)")


class _Parser:
    """FTS5's grammar: OR binds loosest, then AND (written or implied by adjacency), then
    NOT (binary: `a NOT b` is a and not b)."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.position = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.position][0] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expression(self) -> str:
        parts = [self.conjunction()]
        while self.peek() == "OR":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else "(" + " | ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.negation()]
        while self.peek() in ("AND", "string", "word", "open"):
            if self.peek() == "AND":
                self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else "(" + " & ".join(parts) + ")"

    def negation(self) -> str:
        result = self.primary()
        while self.peek() == "NOT":
            self.take()
            result = f"({result} & !{self.primary()})"
        return result

    def primary(self) -> str:
        kind = self.peek()
        if kind is None:
            raise _syntax('near ""')
        if kind == "open":
            self.take()
            inner = self.expression()
            if self.peek() != "close":
                raise _syntax('near ""' if self.peek() is None else
                              f'near "{self.tokens[self.position][1]}"')
            self.take()
            return inner
        if kind not in ("string", "word"):
            raise _syntax(f'near "{self.tokens[self.position][1]}"')
        _, value = self.take()
        text = value[1:-1].replace('""', '"') if kind == "string" else value
        prefix = self.peek() == "star"
        if prefix:
            self.take()
        return _phrase(lexemes(text), prefix)


def _phrase(words: list[str], prefix: bool) -> str:
    if not words:
        return NOTHING
    quoted = [f"'{word}'" for word in words]  # letters and digits only: nothing to escape
    if prefix:
        quoted[-1] += ":*"
    return quoted[0] if len(quoted) == 1 else "(" + " <-> ".join(quoted) + ")"
