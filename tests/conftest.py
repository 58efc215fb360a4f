"""Shared fixtures: the bundled example task and small slices of its data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autoannotator.task import Task

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tweets"
FIXTURES = Path(__file__).resolve().parent / "fixtures"  # small committed slices: tests/fixtures/SOURCE.md


@pytest.fixture(scope="session")
def task() -> Task:
    return Task.from_yaml(EXAMPLE / "task.yaml")


@pytest.fixture(scope="session")
def seed_frame() -> pd.DataFrame:
    return pd.read_csv(EXAMPLE / "seed.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def tweets_frame() -> pd.DataFrame:
    return pd.read_csv(EXAMPLE / "tweets.csv", dtype=str, keep_default_na=False)


@pytest.fixture()
def small_tweets(tweets_frame: pd.DataFrame) -> pd.DataFrame:
    return tweets_frame.iloc[:200].copy()
