"""The reading check: a chat model reads the sentences an answer quotes and says whether they answer the question.

The answerability model sees words, not meaning. A near miss ("How many warships did China send near Taiwan in
March 2021?" asked of a sentence about warships that gives no number) or an adversarial change ("the rarest
cause" asked of "the most common cause") passes its gate. With ``RAG_ANSWER_CHECK=local`` (or ``openai``) an
answer that passed the gate is read once more by that mode's model as a yes/no question: one token, whose
probabilities come from the logprobs (a server without logprobs gives its plain "yes" or "no"). Below
``RAG_ANSWER_CHECK_THRESHOLD`` the answer is refused and the refusal says so. Off by default: it needs a model,
and costs about a second per answer with the local 1.5B one (README "The reading check" has the figures).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from rag.answering.openai_chat import upstream_errors
from rag.errors import UpstreamError

SYSTEM = ("You check answers. You are given a question and a passage. Reply 'yes' if the passage states the answer "
          "to the question exactly as asked, or 'no' if it does not (for example, it is about something else, a "
          "different person, time, place or number, or only mentions the question's words).")
QUOTE_SHOWN_CHARS = 200  # of the closest passage, in a refusal's reason


class ChatEndpoint(Protocol):
    """What the check needs of a chat answerer: its client and model name (``OpenAIChatAnswerer`` has both)."""

    @property
    def client(self) -> Any: ...

    @property
    def model(self) -> str: ...


def check_messages(question: str, quotes: list[str]) -> list[dict[str, str]]:
    passage = " ".join(q.strip() for q in quotes)
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Question: {question}\nPassage: {passage}\n"
                                        "Does the passage answer the question? Reply yes or no."}]


def yes_probability(choice: Any) -> float:
    """P(yes) over yes+no from the first token's top logprobs; the reply's own word when there are none."""
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if content:
        yes = no = 0.0
        for top in content[0].top_logprobs or []:
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


class ReadingCheck:
    def __init__(self, endpoint: ChatEndpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout

    @property
    def model(self) -> str:
        return self.endpoint.model

    def p_answers(self, question: str, quotes: list[str]) -> float:
        """The model's probability that ``quotes`` answer ``question`` (0..1); UpstreamError when it fails."""
        with upstream_errors(self.model, self.timeout):
            response = self.endpoint.client.chat.completions.create(
                model=self.model, messages=check_messages(question, quotes), temperature=0.0, max_tokens=1,
                logprobs=True, top_logprobs=10)
        if not response.choices:
            raise UpstreamError("the reading check's model returned no choices", model=self.model)
        return yes_probability(response.choices[0])


def check_refusal_reason(closest_quote: str) -> str:
    """Why a checked answer was refused, naming the passage that came closest."""
    quote = closest_quote.strip()
    if len(quote) > QUOTE_SHOWN_CHARS:
        quote = quote[:QUOTE_SHOWN_CHARS].rsplit(" ", 1)[0] + "…"
    return f"The closest passage says “{quote}”, and a reading check found that it does not state what was asked."
