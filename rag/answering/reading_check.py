"""The reading check: a chat model reads the sentences an answer quotes and says whether they answer the question.

The answerability model sees words, not meaning. A near miss ("How many warships did China send near Taiwan in
March 2021?" asked of a sentence about warships that gives no number) or an adversarial change ("the rarest
cause" asked of "the most common cause") passes its gate. With ``RAG_ANSWER_CHECK=local`` (or ``openai``) an
answer that passed the gate is read again by that mode's model, one token per reading, its probabilities read
from the logprobs (a server without logprobs gives its plain reply). Both readings show the passage and the
question first and the instruction last, just before the reply (a small model follows an instruction it has
just read: over the answered SQuAD questions, AUC 0.67 -> 0.79 for the yes/no reading against a system prompt
that held it):

* as a yes/no question, "does the passage state the answer exactly as asked?": P(yes);
* as a reader, "copy the answer from the passage, or reply none": P(an answer) = 1 - P(none) of its first
  token. A small model that would say "yes" to a passage about the right subject still finds no phrase to copy
  when the detail asked for is not there. A why-question is not read this way: its answer is a clause, not a
  phrase, and the reader is unsure of passages that do answer it (P(an answer) 0.25-0.52 for the news dev set's
  why-questions, 0.60 or more for every other answerable one there); left to P(yes), the check's AUC goes
  0.83 -> 0.85 on SQuAD and 0.91 -> 0.93 on news.

The two readings' odds multiply: P = sigmoid(logit P(yes) + logit P(an answer)) (P(yes) alone for a
why-question). Below ``RAG_ANSWER_CHECK_THRESHOLD`` the answer is refused and the refusal says so. Off by
default: it needs a model, and costs about two seconds per answer with the local 1.5B one (README "The reading
check" has the figures).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from rag.answerability.model import sigmoid
from rag.answerability.question import question_asks_cause
from rag.answering.openai_chat import upstream_errors
from rag.errors import UpstreamError

SYSTEM = "You read a passage and a question about it, then follow the instruction that comes after them."
YES_NO = ("Does the passage state the answer to the question exactly as asked? It does not if it is about something "
          "else (a different person, time, place or number) or only mentions the question's words. Reply yes or no.")
READER = ("Reply with the shortest phrase from the passage that answers the question, copied word for word. If the "
          "passage does not state the answer, reply: none")
QUOTE_SHOWN_CHARS = 200  # of the closest passage, in a refusal's reason
CLIP = 1e-4  # probabilities are kept within [CLIP, 1 - CLIP] before their odds multiply (a plain reply is 0 or 1)


class ChatEndpoint(Protocol):
    """What the check needs of a chat answerer: its client and model name (``OpenAIChatAnswerer`` has both)."""

    @property
    def client(self) -> Any: ...

    @property
    def model(self) -> str: ...


def _passage(quotes: list[str]) -> str:
    return " ".join(q.strip() for q in quotes)


def reading_messages(question: str, quotes: list[str], instruction: str) -> list[dict[str, str]]:
    """One reading: the passage and the question, then ``instruction`` (``YES_NO`` or ``READER``)."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Passage: {_passage(quotes)}\nQuestion: {question}\n\n{instruction}"}]


def _first_token_tops(choice: Any) -> list[Any]:
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    return (content[0].top_logprobs or []) if content else []


def yes_probability(choice: Any) -> float:
    """P(yes) over yes+no from the first token's top logprobs; the reply's own word when there are none."""
    yes = no = 0.0
    for top in _first_token_tops(choice):
        word = top.token.strip().lower()
        if word == "yes":
            yes += math.exp(top.logprob)
        elif word == "no":
            no += math.exp(top.logprob)
    if yes + no > 0:
        return yes / (yes + no)
    reply = (choice.message.content or "").strip().lower()
    if reply.startswith("yes"):
        return 1.0
    if reply.startswith("no"):
        return 0.0
    raise UpstreamError(f"the reading check's reply was neither yes nor no: {reply[:40]!r}")


def answer_probability(choice: Any) -> float:
    """1 - P(the reader's reply begins "none"), from the first token's top logprobs; from the reply itself when
    there are none."""
    tops = _first_token_tops(choice)
    if tops:
        none = sum(math.exp(top.logprob) for top in tops if top.token.strip().lower().startswith("none"))
        return max(0.0, 1.0 - none)
    return 0.0 if (choice.message.content or "").strip().lower().startswith("none") else 1.0


def _logit(p: float) -> float:
    p = min(max(p, CLIP), 1 - CLIP)
    return math.log(p / (1 - p))


def combined(p_yes: float, p_answer: float | None) -> float:
    """The two readings' odds multiplied: sigmoid(logit p_yes + logit p_answer); ``p_yes`` (within the clip) when
    the reader's reading was not asked for."""
    return float(sigmoid(_logit(p_yes) + (0.0 if p_answer is None else _logit(p_answer))))


class ReadingCheck:
    def __init__(self, endpoint: ChatEndpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout

    @property
    def model(self) -> str:
        return self.endpoint.model

    def p_answers(self, question: str, quotes: list[str]) -> float:
        """The probability that ``quotes`` answer ``question`` (0..1), both readings combined; UpstreamError when
        the model fails."""
        return combined(*self.readings(question, quotes))

    def readings(self, question: str, quotes: list[str]) -> tuple[float, float | None]:
        """The two readings on their own: (P(yes), P(an answer)); P(an answer) is None for a why-question, which
        is not given to the reader (its answer is a clause, and the reader looks for a phrase)."""
        p_yes = yes_probability(self._first_token(reading_messages(question, quotes, YES_NO)))
        if question_asks_cause(question):
            return p_yes, None
        return p_yes, answer_probability(self._first_token(reading_messages(question, quotes, READER)))

    def _first_token(self, messages: list[dict[str, str]]) -> Any:
        with upstream_errors(self.model, self.timeout):
            response = self.endpoint.client.chat.completions.create(
                model=self.model, messages=messages, temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=10)
        if not response.choices:
            raise UpstreamError("the reading check's model returned no choices", model=self.model)
        return response.choices[0]


def check_refusal_reason(closest_quote: str) -> str:
    """Why a checked answer was refused, naming the passage that came closest."""
    quote = closest_quote.strip()
    if len(quote) > QUOTE_SHOWN_CHARS:
        quote = quote[:QUOTE_SHOWN_CHARS].rsplit(" ", 1)[0] + "…"
    return f"The closest passage says “{quote}”, and a reading check found that it does not state what was asked."
