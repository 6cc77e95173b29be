"""Light cleaning of web-article text.

Whole boilerplate lines are dropped and white space at line level is tidied;
the words inside kept lines are never touched. The result is the document's
*stored text*: every offset in the system refers to it.
"""

from __future__ import annotations

import re

_BOILERPLATE = [
    r"source link",
    r"your ad here",
    r"advertisement",
    r"leave a reply",
    r"leave a comment",
    r"your email address will not be published\.?( required fields are marked \*?)?",
    r"more to explore(r)?",
    r"related (posts|articles|stories)",
    r"(share|follow)( us)?( this( article| story)?)?( on)? (twitter|x|facebook|linkedin|whatsapp|telegram|instagram|email|reddit)([ ,/|and]+(twitter|x|facebook|linkedin|whatsapp|telegram|instagram|email|reddit))*",
    r"follow \S+( \S+){0,3} on (twitter|x|facebook|linkedin|instagram)",
    r"posted by .{1,80}",
    r"click here to .{0,80}",
    r"(subscribe|sign up) (to|for) (our|the) newsletter.{0,80}",
    r"statement: this article represents the views of the author.{0,200}",
    r"this article is an exclusive piece .{0,160}",
    r"all rights reserved\.?",
    r"copyright ©?.{0,80}",
    r"read more:?",
]
_BOILERPLATE_RE = re.compile(r"^\s*(?:" + "|".join(_BOILERPLATE) + r")\s*$", re.IGNORECASE)


def is_boilerplate(line: str) -> bool:
    return bool(_BOILERPLATE_RE.match(line))


def clean_text(raw: str) -> str:
    """Drop boilerplate lines and repeated lines, normalise line ends and blank runs."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").replace("\u00a0", " ")
    kept: list[str] = []
    seen_short_lines: set[str] = set()
    for line in text.split("\n"):
        line = line.rstrip()
        if is_boilerplate(line):
            continue
        key = line.strip().lower()
        # Web pages repeat their headline two or three times; keep the first.
        if key and len(key) < 200 and key in seen_short_lines and len(kept) < 40:
            continue
        if key:
            seen_short_lines.add(key)
        kept.append(line)
    joined = "\n".join(kept)
    joined = re.sub(r"\n{3,}", "\n\n", joined)
    return joined.strip() + "\n" if joined.strip() else ""
