"""Gold-set loading (every problem reported, with its line) and quote location."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.gold import GoldItem, GoldSetError, GoldSource, load_gold, locate_quote, locate_sources
from rag.errors import InvalidInputError
from rag.settings import REPO_ROOT

DEV_SET = REPO_ROOT / "eval" / "data" / "gold_dev.jsonl"


def item(**fields) -> dict:
    base = {"id": "q1", "question": "Where was it held?", "answer": "Singapore.", "must_include": [["Singapore"]],
            "sources": [{"doc": "a.txt", "quote": "held in Singapore"}], "type": "factoid", "answerable": True}
    base.update(fields)
    return base


def write_lines(path: Path, lines: list[str | dict]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
                    encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(GoldSetError) as caught:
        load_gold(path)
    assert isinstance(caught.value, InvalidInputError)  # the CLI maps it to exit 2
    assert caught.value.code == "invalid_gold_set"
    return caught.value.details["problems"]


def only_problem(problems: list[str], line: int) -> str:
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"line {line}:"), problems
    return problems[0]


# ---- malformed files ------------------------------------------------------------


def test_invalid_json_line(tmp_path):
    path = write_lines(tmp_path / "g.jsonl", [item(id="a"), item(id="b"), '{"id": "c", "question": ', item(id="d")])
    assert "not JSON" in only_problem(problems_of(path), 3)


def test_a_json_value_that_is_not_an_object(tmp_path):
    path = write_lines(tmp_path / "g.jsonl", [item(id="a"), "[1, 2]"])
    assert "JSON object" in only_problem(problems_of(path), 2)


def test_missing_question(tmp_path):
    bad = item(id="b")
    del bad["question"]
    path = write_lines(tmp_path / "g.jsonl", [item(id="a"), item(id="x"), bad])
    assert "'question'" in only_problem(problems_of(path), 3)


def test_blank_question(tmp_path):
    path = write_lines(tmp_path / "g.jsonl", [item(id="a", question="   ")])
    assert "'question' is empty" in only_problem(problems_of(path), 1)


@pytest.mark.parametrize("value", ["true", 1, None])
def test_answerable_must_be_a_bool(tmp_path, value):
    path = write_lines(tmp_path / "g.jsonl", [item(id="a"), item(id="b", answerable=value)])
    assert "'answerable'" in only_problem(problems_of(path), 2)


def test_missing_answerable(tmp_path):
    bad = item(id="b")
    del bad["answerable"]
    path = write_lines(tmp_path / "g.jsonl", [bad])
    assert "'answerable'" in only_problem(problems_of(path), 1)


@pytest.mark.parametrize("value", ["Singapore", ["Singapore"], [[]], [[""]], [["ok"], "no"], [[1]], None])
def test_must_include_wrong_shape(tmp_path, value):
    path = write_lines(tmp_path / "g.jsonl", [item(id="a"), item(id="b"), item(id="c", must_include=value)])
    assert "'must_include'" in only_problem(problems_of(path), 3)


@pytest.mark.parametrize("sources", [
    [{"doc": "a.txt"}],
    [{"doc": "a.txt", "quote": "   "}],
    [{"quote": "held in Singapore"}],
    [{"doc": "a.txt", "quote": 5}],
    ["a.txt"],
    {"doc": "a.txt", "quote": "x"},
])
def test_sources_wrong_shape(tmp_path, sources):
    path = write_lines(tmp_path / "g.jsonl", [item(id="a"), item(id="b", sources=sources)])
    assert "'sources'" in only_problem(problems_of(path), 2)


@pytest.mark.parametrize("name", ["id", "answer", "type"])
def test_optional_strings_must_be_strings(tmp_path, name):
    path = write_lines(tmp_path / "g.jsonl", [item(id="a"), item(**{"id": "b", name: 7})])
    assert f"'{name}'" in only_problem(problems_of(path), 2)


def test_duplicate_ids(tmp_path):
    path = write_lines(tmp_path / "g.jsonl", [item(id="a"), item(id="b"), item(id="c"), item(id="b")])
    problem = only_problem(problems_of(path), 4)
    assert "duplicate id" in problem and "'b'" in problem


def test_several_problems_are_reported_at_once(tmp_path):
    no_question = item(id="c")
    del no_question["question"]
    lines = [item(id="a"), "not json", no_question, item(id="d", answerable="yes", must_include="x"), item(id="a"),
             item(id="f")]
    problems = problems_of(write_lines(tmp_path / "g.jsonl", lines))
    assert len(problems) == 5, problems
    assert problems[0].startswith("line 2:") and "not JSON" in problems[0]
    assert problems[1].startswith("line 3:") and "'question'" in problems[1]
    assert problems[2].startswith("line 4:") and "'answerable'" in problems[2]
    assert problems[3].startswith("line 4:") and "'must_include'" in problems[3]
    assert problems[4].startswith("line 5:") and "duplicate id" in problems[4]


def test_the_message_names_the_file_the_count_and_the_lines(tmp_path):
    path = write_lines(tmp_path / "g.jsonl", [item(id="a"), "{", "{"])
    with pytest.raises(GoldSetError) as caught:
        load_gold(path)
    message = caught.value.message
    assert str(path) in message and "2 problem(s)" in message
    assert "line 2:" in message and "line 3:" in message


def test_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps(item(id="a")) + "\n\n   \n" + "oops\n", encoding="utf-8")
    only_problem(problems_of(path), 4)


def test_empty_file(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text("", encoding="utf-8")
    with pytest.raises(GoldSetError, match="no gold items"):
        load_gold(path)


def test_file_of_blank_lines_only(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text("\n  \n\t\n", encoding="utf-8")
    with pytest.raises(GoldSetError, match="no gold items"):
        load_gold(path)


def test_missing_file(tmp_path):
    with pytest.raises(GoldSetError, match="no gold file") as caught:
        load_gold(tmp_path / "absent.jsonl")
    assert caught.value.details["path"] == str(tmp_path / "absent.jsonl")


def test_a_directory_is_not_a_gold_file(tmp_path):
    with pytest.raises(GoldSetError, match="no gold file"):
        load_gold(tmp_path)


def test_a_line_separator_inside_a_json_string_is_not_a_line_break(tmp_path):
    path = tmp_path / "g.jsonl"
    text = json.dumps(item(id="a", answer="first\u2028second"), ensure_ascii=False)
    assert "\u2028" in text
    path.write_text(text + "\n" + json.dumps(item(id="b")) + "\n", encoding="utf-8")
    assert [i.id for i in load_gold(path)] == ["a", "b"]


def test_a_file_that_is_not_utf8_is_a_gold_set_error(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_bytes(json.dumps(item(id="a", answer="caf\u00e9"), ensure_ascii=False).encode("latin-1") + b"\n")
    with pytest.raises(GoldSetError):
        load_gold(path)


# ---- valid files ----------------------------------------------------------------


def test_blank_lines_are_ignored_and_a_valid_file_loads(tmp_path):
    path = tmp_path / "g.jsonl"
    minimal = {"question": "Is there a moon base?", "answerable": False}
    path.write_text("\n" + json.dumps(item(id="a")) + "\n\n  \n" + json.dumps(minimal) + "\n\n", encoding="utf-8")
    items = load_gold(path)
    assert [i.id for i in items] == ["a", "line5"]  # an item without id is named by its line
    first, second = items
    assert first == GoldItem(id="a", question="Where was it held?", answer="Singapore.", must_include=[["Singapore"]],
                             sources=[GoldSource("a.txt", "held in Singapore")], type="factoid", answerable=True,
                             line=2)
    assert second.answer == "" and second.must_include == [] and second.sources == []
    assert second.type == "untyped" and second.answerable is False and second.line == 5
    assert first.spans == [] and second.spans == []


def test_the_shipped_dev_set_loads():
    items = load_gold(DEV_SET)
    assert len(items) == 30
    assert len({i.id for i in items}) == 30
    unanswerable = [i for i in items if not i.answerable]
    assert len(unanswerable) == 2
    assert all(i.type == "unanswerable" for i in unanswerable)
    for i in items:
        if i.answerable:
            assert i.sources and i.must_include, i.id


PROBES = {  # probe file → the corpus its quotes are in
    "near_miss_probe.jsonl": REPO_ROOT / "data" / "corpus",
    "squad_natural_probe.jsonl": REPO_ROOT.parent / "shared" / "eval" / "squad" / "corpus",
}


@pytest.mark.parametrize("name", sorted(PROBES))
def test_the_shipped_probes_load_and_their_quotes_are_in_their_corpus(name):
    corpus = PROBES[name]
    if not corpus.is_dir():
        pytest.skip(f"corpus not found: {corpus}")
    items = load_gold(REPO_ROOT / "eval" / "data" / name)
    assert len({i.id for i in items}) == len(items) and any(not i.answerable for i in items)
    texts = {p.name: p.read_text(encoding="utf-8") for p in corpus.iterdir()}
    assert locate_sources(items, texts.get) == []
    assert all(i.sources and i.must_include for i in items if i.answerable)


# ---- locate_quote ---------------------------------------------------------------

TEXT = "The talks were held in Singapore\nthis week,  with  ministers   attending.\n\nNothing else."


def test_locate_quote_exact():
    start, end = locate_quote(TEXT, "held in Singapore")
    assert TEXT[start:end] == "held in Singapore"
    assert start == TEXT.index("held")


def test_locate_quote_normalises_white_space():
    span = locate_quote(TEXT, "Singapore this week, with ministers attending.")
    assert span is not None
    start, end = span
    assert start == TEXT.index("Singapore")
    assert TEXT[start:end] == "Singapore\nthis week,  with  ministers   attending."


def test_locate_quote_normalises_white_space_in_the_quote_too():
    span = locate_quote("a b c d", "  b \n c ")
    assert span == (2, 5)


def test_locate_quote_not_found():
    assert locate_quote(TEXT, "held in Jakarta") is None
    assert locate_quote(TEXT, "Singaporethis week") is None
    assert locate_quote("", "held") is None


def test_locate_quote_treats_regex_characters_literally():
    text = "costs rose (by 5%) to $3.50* per unit"
    assert locate_quote(text, "(by  5%) to $3.50*") == (text.index("(by"), text.index(" per"))
    assert locate_quote(text, "rose .* unit") is None


# ---- locate_sources -------------------------------------------------------------


def test_locate_sources_fills_spans_and_reports_problems():
    texts = {"a.txt": "Alpha beta gamma.\nDelta  epsilon.", "b.txt": "Zeta eta theta."}
    items = [
        GoldItem("ok", "q?", "", [], [GoldSource("a.txt", "beta gamma"), GoldSource("b.txt", "eta theta")],
                 "factoid", True),
        GoldItem("wsp", "q?", "", [], [GoldSource("a.txt", "gamma. Delta epsilon")], "factoid", True),
        GoldItem("nodoc", "q?", "", [], [GoldSource("c.txt", "anything")], "factoid", True),
        GoldItem("noquote", "q?", "", [], [GoldSource("a.txt", "beta delta"), GoldSource("b.txt", "Zeta")],
                 "factoid", True),
    ]
    problems = locate_sources(items, texts.get)
    assert items[0].spans == [("a.txt", 6, 16), ("b.txt", 5, 14)]
    assert items[1].spans == [("a.txt", 11, 32)]
    assert items[2].spans == []
    assert items[3].spans == [("b.txt", 0, 4)]  # the quote that is found still counts
    assert len(problems) == 2, problems
    nodoc, noquote = problems
    assert nodoc.startswith("nodoc:") and "'c.txt'" in nodoc and "not in the index" in nodoc
    assert noquote.startswith("noquote:") and "quote not found" in noquote and "a.txt" in noquote
    assert "beta delta" in noquote


def test_locate_sources_resets_spans_from_an_earlier_run():
    item = GoldItem("x", "q?", "", [], [GoldSource("a.txt", "beta")], "factoid", True,
                    spans=[("stale", 0, 1)])
    assert locate_sources([item], {"a.txt": "alpha beta"}.get) == []
    assert item.spans == [("a.txt", 6, 10)]
