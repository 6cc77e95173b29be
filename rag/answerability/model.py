"""The fitted answerability model: standardised logistic regression over the features, and the answer-level
calibration, loaded from ``rag/assets/answerability.json`` (written by ``python -m eval.calibrate``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.answerability.features import FEATURES, Candidate

MODEL_PATH = Path(__file__).parent.parent / "assets" / "answerability.json"


@dataclass(frozen=True)
class AnswerabilityModel:
    """Standardised logistic regression over :data:`FEATURES`, plus answer-level Platt scaling."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    answer_slope: float
    answer_intercept: float
    recommended_threshold: float
    meta: dict

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> "AnswerabilityModel":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "AnswerabilityModel":
        sentence, answer = data["sentence_model"], data["answer_calibration"]
        features = tuple(sentence["features"])
        unknown = set(features) - set(FEATURES)
        if unknown:
            raise ValueError(f"the answerability model uses features this code does not compute: {sorted(unknown)}")
        return cls(features, np.asarray(sentence["mean"], dtype=np.float64),
                   np.asarray(sentence["scale"], dtype=np.float64), np.asarray(sentence["coef"], dtype=np.float64),
                   float(sentence["intercept"]), float(answer["slope"]), float(answer["intercept"]),
                   float(data["recommended_threshold"]), {k: v for k, v in data.items() if k not in ("sentence_model", "answer_calibration")})

    def matrix(self, candidates: Sequence[Candidate]) -> np.ndarray:
        return np.array([[c.features[f] for f in self.features] for c in candidates], dtype=np.float64)

    def sentence_logits(self, candidates: Sequence[Candidate]) -> np.ndarray:
        if not candidates:
            return np.zeros(0)
        return ((self.matrix(candidates) - self.mean) / self.scale) @ self.coef + self.intercept

    def answer_confidence(self, best_logit: float) -> float:
        return sigmoid(self.answer_slope * best_logit + self.answer_intercept)


def sigmoid(x: float | np.ndarray):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


@lru_cache(maxsize=4)
def default_model(path: str = str(MODEL_PATH)) -> AnswerabilityModel:
    return AnswerabilityModel.load(Path(path))
