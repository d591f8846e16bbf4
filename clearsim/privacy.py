"""Personal data in what people read: person ids masked to their last four characters.

The node databases and the messages on the bus carry person ids in full (they are the
parties' own records, as on the national platform); what clearsim prints, logs and writes
for people shows a person id only masked: ``P-JJ-001`` becomes ``****-001``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

SHOWN = 4                     # characters of a person id left visible, at its end

# A person id after the words that name one, as the nodes' messages word them ("person
# 'P-JJ-001' is not insured", "psn_no=P-1"), any id with a digit in it; or a name after
# "psn_name=". Words that only name the field stay as they are.
_IN_CONTEXT = re.compile(
    r"(?P<lead>\b(?:person|person_id|psn_no|certno|psn_cert_no)\b(?:\s*[=:]\s*|\s+)['\"]?)"
    r"(?P<id>[^\s'\",;)]*\d[^\s'\",;)]*)"
    r"|(?P<namelead>\bpsn_name\s*[=:]\s*['\"]?)(?P<name>[^\s'\",;)]+)",
    re.IGNORECASE)
_TOKEN = re.compile(r"[^\s'\",;:=()\[\]{}<>]+")
_ONE_WORD = re.compile(r"[^\s'\",;:=]{0,80}")


def mask(value: str) -> str:
    """``value`` with all but its last four characters hidden (all of it when it is four
    characters or fewer)."""
    value = str(value)
    if len(value) <= SHOWN:
        return "*" * len(value)
    return "*" * (len(value) - SHOWN) + value[-SHOWN:]


class Masker:
    """Masks the person ids it knows wherever they stand in a text, and any id that a text
    names as a person's (``person X``, ``psn_no=X``) even when it does not know it (a
    card read wrongly)."""

    def __init__(self, person_ids: Iterable[str] = ()):
        self.known = frozenset(p for p in person_ids if p)
        # ids that are not one token (a space or a quote inside): replaced as they stand
        self._untokened = sorted((p for p in self.known if not _TOKEN.fullmatch(p)),
                                 key=len, reverse=True)

    def _token(self, match: re.Match) -> str:
        return self._token_text(match[0])

    def _token_text(self, token: str) -> str:
        if token in self.known:
            return mask(token)
        core = token.rstrip(".!?")          # an id at the end of a sentence
        if core != token and core in self.known:
            return mask(core) + token[len(core):]
        return token

    def text(self, text: str) -> str:
        if not text:
            return text
        if _ONE_WORD.fullmatch(text):      # an amount, a state, a claim id: no context in it
            return self._token_text(text) if self.known else text
        out = _IN_CONTEXT.sub(lambda m: (m["lead"] + mask(m["id"]) if m["id"] is not None
                                         else m["namelead"] + mask(m["name"])), text)
        for person in self._untokened:
            out = out.replace(person, mask(person))
        if self.known:
            out = _TOKEN.sub(self._token, out)
        return out

    def value(self, value):
        """A JSON-like value with every string in it masked (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


class MaskingFilter(logging.Filter):
    """A handler filter: every log record's message with person ids masked."""

    def __init__(self, masker: Masker):
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.masker.text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.masker.text(
                logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.masker.text(record.exc_text)
        return True


def mask_logs(masker: Masker) -> None:
    """Put ``MaskingFilter`` on every handler of the root logger (after ``basicConfig``)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter(masker))
        else:
            for f in handler.filters:
                if isinstance(f, MaskingFilter):
                    f.masker = masker
