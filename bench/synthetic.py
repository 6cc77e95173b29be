"""A synthetic corpus built from the bundled articles' sentences.

Every document is a seeded shuffle of real sentences (so tokenisation and
embedding cost are realistic) plus one sentence with a fact unique to it
("Report 0042 was filed by analyst Zorvan-0042 in Tallinn."), so a question
can find exactly that document.
"""

from __future__ import annotations

import random
from pathlib import Path

from index.loaders import load_file
from rag.settings import BUNDLED_CORPUS
from rag.text import sentence_spans

CITIES = ["Tallinn", "Lisbon", "Quito", "Hanoi", "Nairobi", "Oslo", "Lima", "Riga", "Accra", "Perth"]


def corpus_sentences() -> list[str]:
    out = []
    for path in sorted(BUNDLED_CORPUS.glob("*.txt")):
        text = load_file(path).text
        out.extend(text[s:e] for s, e in sentence_spans(text) if len(text[s:e].split()) >= 6)
    return out


def unique_fact(i: int) -> tuple[str, str, str]:
    """(sentence, question, expected words) for document ``i``."""
    city = CITIES[i % len(CITIES)]
    return (f"Report {i:05d} was filed by analyst Zorvan{i:05d} in {city}.",
            f"Who filed report {i:05d}?", f"Zorvan{i:05d}")


def write_corpus(folder: Path, documents: int, sentences_per_doc: int = 14, seed: int = 7) -> list[Path]:
    """``documents`` .txt files of about ``sentences_per_doc`` sentences (≈ 5 chunks each)."""
    folder.mkdir(parents=True, exist_ok=True)
    pool = corpus_sentences()
    rng = random.Random(seed)
    paths = []
    for i in range(documents):
        picked = rng.sample(pool, k=min(sentences_per_doc, len(pool)))
        fact = unique_fact(i)[0]
        picked.insert(rng.randrange(len(picked) + 1), fact)
        paragraphs = [" ".join(picked[j:j + 3]) for j in range(0, len(picked), 3)]
        path = folder / f"synthetic_{i:05d}.txt"
        path.write_text(f"Synthetic briefing {i:05d}\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
