from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def seed_data(seed_frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    return seed_frame["text"].tolist(), seed_frame["label"].tolist()


@pytest.fixture(scope="session")
def held_out(tweets_frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    rows = tweets_frame.iloc[:300]
    return rows["text"].tolist(), rows["gold_label"].tolist()


def accuracy(probs, labels: list[str], names: list[str]) -> float:
    return sum(names[i] == y for i, y in zip(probs.argmax(axis=1), labels)) / len(labels)
