"""Turning a chat's last message into a question that stands on its own.

Retrieval sees one question. A follow-up such as "How long did it last?"
names nothing to search for, so when the last user turn leans on earlier
ones (a pronoun or demonstrative, or very few content words) the previous
user question is put in front of it. This is deliberately simple and
model-free, so it works offline and never invents words.
"""

from __future__ import annotations

import re

from rag.text import content_terms

_LEANS_ON_CONTEXT = re.compile(
    r"\b(it|its|they|them|their|he|him|his|she|her|this|that|these|those|there|then|the same|"
    r"the (call|meeting|talks?|event|visit|report|article|man|woman|minister|secretary))\b",
    re.IGNORECASE)
FEW_CONTENT_WORDS = 2


def is_follow_up(question: str) -> bool:
    return bool(_LEANS_ON_CONTEXT.search(question)) or len(content_terms(question)) <= FEW_CONTENT_WORDS


def standalone_question(user_turns: list[str]) -> str:
    """The last user turn, prefixed by the one before when it is a follow-up."""
    turns = [t.strip() for t in user_turns if t and t.strip()]
    if not turns:
        return ""
    last = turns[-1]
    if len(turns) > 1 and is_follow_up(last):
        return f"{turns[-2]} {last}"
    return last
