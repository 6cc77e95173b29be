"""Sentence spans (rag.text) and offset-exact chunking (index.chunking)."""

from __future__ import annotations

import pytest

from index.chunking import chunk_id, chunk_spans, chunk_text
from rag.text import content_terms, sentence_spans, word_count, words


def sentences(text: str, offset: int = 0) -> list[str]:
    return [text[s - offset:e - offset] for s, e in sentence_spans(text, offset=offset)]


# ---- sentence_spans ---------------------------------------------------------


def test_abbreviation_us_does_not_end_sentence():
    text = "The U.S. Army trained there in May. It was hot."
    assert sentences(text) == ["The U.S. Army trained there in May.", "It was hot."]


@pytest.mark.parametrize("text, expected", [
    ("(Deutsche Welle Chinese Website) The annual forum opens in June. It rains.",
     ["The annual forum opens in June.", "It rains."]),
    ("【By Liu Bai, Observer News】On August 29, a paper reported it.", ["On August 29, a paper reported it."]),
    ("WASHINGTON (Reuters) - The talks began on Monday.", ["The talks began on Monday."]),
    ("BEIJING, June 3 (Xinhua) -- Officials met today.", ["Officials met today."]),
    # a parenthesis that is a sentence, or that sits inside one, stays
    ("(This excludes taxes.) Prices rose.", ["(This excludes taxes.)", "Prices rose."]),
    ("The talks (held in Lisbon) began.", ["The talks (held in Lisbon) began."]),
])
def test_a_credit_or_date_line_opening_a_paragraph_is_not_part_of_its_first_sentence(text, expected):
    assert sentences(text) == expected
    assert sentences(text, offset=100) == expected  # offsets still point at the stored text


def test_initial_in_name_does_not_end_sentence():
    text = "Defense Secretary Lloyd J. Austin met the minister. They spoke for an hour."
    assert sentences(text) == ["Defense Secretary Lloyd J. Austin met the minister.", "They spoke for an hour."]


def test_title_abbreviations_do_not_end_sentence():
    text = "Dr. Smith and Gen. Lee arrived. Mr. Brown left."
    assert sentences(text) == ["Dr. Smith and Gen. Lee arrived.", "Mr. Brown left."]


def test_missing_space_before_capital_still_splits():
    text = "The dialogue was held in Singapore (June 2-4).The United States sent a delegation."
    assert sentences(text) == [
        "The dialogue was held in Singapore (June 2-4).",
        "The United States sent a delegation.",
    ]


def test_decimal_number_is_not_a_sentence_end():
    text = "Prices rose 3.5 percent in March. Analysts were surprised."
    assert sentences(text) == ["Prices rose 3.5 percent in March.", "Analysts were surprised."]


def test_newline_always_ends_a_sentence():
    text = "Headline Without Final Punctuation\nFirst body sentence. Second one!\n\nThird after blank line?"
    assert sentences(text) == [
        "Headline Without Final Punctuation",
        "First body sentence.",
        "Second one!",
        "Third after blank line?",
    ]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    text = "He said “We will go.” Then he left (quietly.) Nobody followed."
    assert sentences(text) == ["He said “We will go.”", "Then he left (quietly.)", "Nobody followed."]


def test_spans_are_exact_and_stripped():
    text = "   Leading spaces here.   Trailing spaces follow.   \n\t Tabbed line ends here.  "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["Leading spaces here.", "Trailing spaces follow.", "Tabbed line ends here."]
    for s, e in spans:
        assert text[s:e] == text[s:e].strip()
        assert text[s:e]  # never empty
    # spans are ordered and do not overlap
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_offset_shifts_every_span():
    text = "One sentence here. Another sentence there."
    plain = sentence_spans(text)
    shifted = sentence_spans(text, offset=100)
    assert shifted == [(s + 100, e + 100) for s, e in plain]


def test_punctuation_only_pieces_are_not_sentences():
    assert sentence_spans("... !!! ???\n---\n") == []
    assert sentence_spans("") == []


def test_non_ascii_sentences_split_with_exact_offsets():
    text = "Привет, мир. Это тест! “Curly quotes,” he said. Emoji 🎉 party time."
    assert sentences(text) == ["Привет, мир.", "Это тест!", "“Curly quotes,” he said.", "Emoji 🎉 party time."]


# ---- words / content terms --------------------------------------------------


def test_words_drop_possessive_and_lowercase():
    assert words("Russia's Army and NATO’s chief") == ["russia", "army", "and", "nato", "chief"]


def test_content_terms_drop_stopwords_and_stem():
    terms = content_terms("The sanctions were imposed on the banks")
    assert "the" not in terms and "were" not in terms
    assert content_terms("sanctioned")[0] == content_terms("sanctions")[0]
    assert set(terms) >= {content_terms("bank")[0], content_terms("imposed")[0]}


def test_accents_are_folded_so_a_name_typed_without_them_is_the_same_term():
    assert content_terms("Kraków and Beauséjour") == content_terms("Krakow and Beausejour") == ["krakow", "beausejour"]
    assert content_terms("São Paulo")[0] != content_terms("Salo")[0]  # folding drops accents, not letters
    # only what the keyword index folds too: a Latin letter with one diacritic, not other scripts or two marks
    assert content_terms("Ñandú Việt мёд καλημέρα") == ["nandu", "việt", "мёд", "καλημέρα"]


def test_word_count_counts_unicode_words():
    assert word_count("Привет, мир. It’s 2023!") == 4  # Привет, мир, It’s, 2023


# ---- chunking ---------------------------------------------------------------

ASCII_DOC = (
    "Talks Open In Geneva\n"
    "The negotiations opened on Monday with twelve delegations attending. "
    "Officials said the first session focused on fishing quotas. "
    "The U.S. delegation asked for a delay. "
    "Observers expect a compromise before the winter season begins.\n\n"
    "A second paragraph follows here. It has two sentences.\n"
)

NON_ASCII_DOC = (
    "【新华社】北京消息：中国代表团抵达日内瓦。\n"
    "Привет, мир. Это тест на русском языке, который продолжается дальше!\n"
    "“Curly quotes,” he said — and left. Emoji 🎉🚀 party time for everyone.\n"
    "Café naïve façade coöperate résumé déjà vu. ¿Qué tal? ¡Muy bien!\n"
)


def _long_sentence(n: int) -> str:
    return " ".join(f"wörd{i}" for i in range(n)) + "."


@pytest.mark.parametrize("size,overlap", [(5, 0), (8, 1), (20, 1), (20, 2), (120, 1)])
@pytest.mark.parametrize("text", [ASCII_DOC, NON_ASCII_DOC, NON_ASCII_DOC + _long_sentence(47) + " Tail 🎉 sentence."],
                         ids=["ascii", "non-ascii", "non-ascii+long"])
def test_chunk_offsets_round_trip(text, size, overlap):
    chunks = chunk_text("doc", text, size, overlap)
    assert chunks
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert c.text == c.text.strip() and c.text
        assert c.doc_id == "doc"
    # every sentence is inside some chunk
    for s, e in sentence_spans(text):
        assert any(c.start <= s and e <= c.end for c in chunks) or word_count(text[s:e]) > size


def test_over_long_sentence_is_split_at_word_boundaries():
    long = _long_sentence(47)
    text = "Intro sentence “here” 🎉. " + long + " Закрытие здесь."
    chunks = chunk_text("doc", text, 10, 0)
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert word_count(c.text) <= 10
        # cut at word boundaries: a chunk never starts or ends inside a word
        assert c.start == 0 or text[c.start - 1].isspace()
        assert c.end == len(text) or text[c.end].isspace()
    # the long sentence is covered completely by its pieces, in order, without repeats
    ls = text.index(long)
    le = ls + len(long)
    touching = [c for c in chunks if c.start < le and c.end > ls]
    assert len(touching) >= 5  # 47 words in pieces of at most 10
    assert touching[0].start == ls
    assert touching[-1].end >= le
    covered = " ".join(text[max(c.start, ls):min(c.end, le)] for c in touching)
    assert covered.split() == long.split()


def test_chunk_ids_are_stable():
    a = chunk_text("doc", ASCII_DOC, 20, 1)
    b = chunk_text("doc", ASCII_DOC, 20, 1)
    assert [c.chunk_id for c in a] == [c.chunk_id for c in b]
    assert len({c.chunk_id for c in a}) == len(a)


def test_chunk_id_changes_with_text_and_doc():
    base = chunk_id("doc", 0, 10, "abcdefghij")
    assert chunk_id("doc", 0, 10, "abcdefghij") == base
    assert chunk_id("doc", 0, 10, "abcdefghiX") != base
    assert chunk_id("other", 0, 10, "abcdefghij") != base
    assert chunk_id("doc", 1, 11, "abcdefghij") != base


def test_editing_one_sentence_changes_only_affected_chunk_ids():
    a = chunk_text("doc", ASCII_DOC, 20, 0)
    edited = ASCII_DOC.replace("It has two sentences.", "It has two sentenced.")
    assert len(edited) == len(ASCII_DOC)
    b = chunk_text("doc", edited, 20, 0)
    assert [(c.start, c.end) for c in a] == [(c.start, c.end) for c in b]
    changed = [x.chunk_id != y.chunk_id for x, y in zip(a, b)]
    assert changed[-1] is True
    assert not any(changed[:-1])


def test_overlap_one_shares_exactly_one_sentence_between_neighbours():
    text = " ".join(f"Sentence number {w} has five words." for w in
                    ["one", "two", "three", "four", "five", "six", "seven"])
    spans = sentence_spans(text)
    chunks = chunk_text("doc", text, 12, 1)  # two 6-word sentences per chunk
    assert len(chunks) >= 3
    for prev, nxt in zip(chunks, chunks[1:]):
        shared = [(s, e) for s, e in spans if prev.start <= s and e <= prev.end and nxt.start <= s and e <= nxt.end]
        assert len(shared) == 1
        # the shared sentence is the last of the previous chunk and the first of the next
        assert shared[0][1] == prev.end and shared[0][0] == nxt.start


def test_overlap_zero_shares_nothing():
    text = " ".join(f"Sentence number {w} has five words." for w in ["one", "two", "three", "four", "five"])
    chunks = chunk_text("doc", text, 12, 0)
    assert len(chunks) >= 2
    for prev, nxt in zip(chunks, chunks[1:]):
        assert prev.end < nxt.start


def test_chunks_respect_size_when_sentences_fit():
    text = " ".join(f"Sentence number {w} has five words." for w in ["one", "two", "three", "four", "five", "six"])
    for c in chunk_text("doc", text, 13, 1):
        assert word_count(c.text) <= 13


def test_empty_text_has_no_chunks():
    assert chunk_text("doc", "", 20, 1) == []
    assert chunk_spans("   \n\n  ", 20, 1) == []


def test_every_chunk_adds_text_beyond_its_predecessor():
    # A 10-word sentence, then an over-long sentence whose pieces are exactly `size` words.
    text = "First short sentence here. " + " ".join(["alpha"] * 10) + ". " + _long_sentence(45) + " Final words."
    chunks = chunk_text("doc", text, 20, 1)
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.end > prev.end, (prev.text, nxt.text)
