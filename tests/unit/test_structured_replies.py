"""The JSON answer format: schema, parsing, rendering to [n] text, and live rendering of a partial reply."""

from __future__ import annotations

import json

import pytest

from rag.answering.structured import (MarkerRenumberer, StreamRenderer, answer_schema, parse_reply,
                                      reply_sentences, response_format)

REPLY = json.dumps({"answerable": True, "sentences": [
    {"text": "The call lasted \"about\" 45 minutes.", "sources": [2, 3]},
    {"text": "It followed Biden's video call [9].", "sources": [1]},
]})


def test_schema_limits_source_numbers_to_the_evidence():
    schema = answer_schema(3)
    sources = schema["properties"]["sentences"]["items"]["properties"]["sources"]
    assert sources["items"]["enum"] == [1, 2, 3]
    assert schema["required"] == ["answerable", "sentences"]
    assert response_format(5)["json_schema"]["schema"] == answer_schema(5)


def test_reply_gives_each_sentence_its_sources_without_parsing_text():
    cited = reply_sentences(REPLY)
    assert [c.markers for c in cited] == [[2, 3], [1]]
    assert cited[0].text == 'The call lasted "about" 45 minutes.'
    assert cited[1].text == "It followed Biden's video call."  # a marker inside the text is not a source
    two = json.dumps({"answerable": True, "sentences": [{"text": "It lasted. It ended.", "sources": [1]}]})
    assert [(c.text, c.markers) for c in reply_sentences(two)] == [("It lasted. It ended.", [1])]  # kept whole


def test_not_answerable_renders_empty_and_plain_text_passes_through():
    assert reply_sentences(json.dumps({"answerable": False, "sentences": [{"text": "x", "sources": [1]}]})) == []
    assert [(c.text, c.markers) for c in reply_sentences("Plain answer [1]. Another [2][3].")] == [
        ("Plain answer.", [1]), ("Another.", [2, 3])]
    assert parse_reply("[1, 2]") is None
    assert parse_reply('{"sentences": [{"text": 5, "sources": [1]}, {"text": "ok", "sources": [true, 2]}]}'
                       ).sentences == [("ok", [2])]


@pytest.mark.parametrize("step", [1, 3, 7, 50])
def test_stream_renderer_shows_words_as_they_come_and_never_takes_them_back(step):
    renderer = StreamRenderer({1: 4, 2: 6, 3: 6})
    shown = []
    for i in range(0, len(REPLY), step):
        shown.append(renderer.feed(REPLY[i:i + step]))
    text = "".join(shown)
    assert text == 'The call lasted "about" 45 minutes. [6] It followed Biden\'s video call [9]. [4]'
    assert "{" not in text and "sources" not in text
    assert sum(1 for piece in shown if piece) > 2 or step == 50  # it streamed, not one lump at the end


def test_marker_renumberer_holds_a_split_marker_back():
    r = MarkerRenumberer({1: 3, 2: 5})
    pieces = [r.feed(p) for p in ["Austin called [", "1", "] and Wei [2][", "1]. Cost [x"]]
    assert pieces[0] == "Austin called " and pieces[1] == ""
    assert "".join(pieces) + r.flush() == "Austin called [3] and Wei [5][3]. Cost [x"
