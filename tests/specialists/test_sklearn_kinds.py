"""tfidf, embedding and lexicon: fit / predict_proba / save / load round trips on real tweets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autoannotator import AnnotatorError, Task
from autoannotator.consensus import ABSTAIN, votes_from_probs
from autoannotator.specialists import create_specialist, load_specialist, registered_kinds
from tests.specialists.conftest import accuracy


def test_builtin_kinds_are_registered() -> None:
    assert {"hf", "embedding", "tfidf", "lexicon"} <= set(registered_kinds())


@pytest.mark.parametrize(("kind", "floor"), [("tfidf", 0.5), ("embedding", 0.55), ("lexicon", 0.5)])
def test_round_trip(kind: str, floor: float, task: Task, seed_data, held_out, tmp_path: Path) -> None:
    specialist = create_specialist(kind, task).fit(*seed_data)
    texts, gold = held_out
    probs = specialist.predict_proba(texts)
    assert probs.shape == (len(texts), 3)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert accuracy(probs, gold, task.label_names) > floor  # chance is about 0.42 (majority class)
    saved = specialist.save(tmp_path / kind)
    assert not list(saved.rglob("*.pkl")) and not list(saved.rglob("*.joblib"))
    reloaded = load_specialist(saved, task)
    assert np.allclose(reloaded.predict_proba(texts), probs, atol=1e-6)


def test_untrained_specialist_says_what_to_do(task: Task) -> None:
    with pytest.raises(AnnotatorError, match="not trained"):
        create_specialist("tfidf", task).predict_proba(["hello"])


def test_unknown_kind_and_option(task: Task) -> None:
    with pytest.raises(AnnotatorError, match="unknown specialist kind 'bert'"):
        create_specialist("bert", task)
    with pytest.raises(AnnotatorError, match="no option 'depth'"):
        create_specialist("tfidf", task, depth=3)


def test_load_refuses_other_label_set(task: Task, seed_data, tmp_path: Path) -> None:
    saved = create_specialist("tfidf", task).fit(*seed_data).save(tmp_path / "t")
    other = Task.from_dict({"name": "x", "labels": ["spam", "ham"]})
    with pytest.raises(AnnotatorError, match="saved for labels"):
        load_specialist(saved, other)


def test_seed_missing_a_label_gives_it_probability_zero(task: Task) -> None:
    specialist = create_specialist("tfidf", task).fit(["good", "great", "bad", "awful"], ["positive", "positive", "negative", "negative"])
    probs = specialist.predict_proba(["good day"])
    assert probs[0, task.label_names.index("neutral")] == 0.0
    assert task.label_names[probs[0].argmax()] == "positive"


def test_lexicon_on_binary_task_needs_an_explicit_choice_for_neutral() -> None:
    binary = Task.from_dict({"name": "b", "labels": ["negative", "positive"]})
    with pytest.raises(AnnotatorError, match=r"model labels \['neutral'\] match no task label"):
        create_specialist("lexicon", binary)
    lexicon = create_specialist("lexicon", binary, label_map={"neutral": None})
    probs = lexicon.predict_proba(["I love it", "I hate it", "the sky", "The box is on the table"])
    assert probs[:2].argmax(axis=1).tolist() == [1, 0]
    assert np.allclose(probs[:2].sum(axis=1), 1.0)
    # VADER calls the last two neutral, which maps to null: the lexicon abstains there (no vote at all),
    # rather than renormalising [0.5, 0.5] into a vote for the first label.
    assert np.array_equal(probs[2:], np.zeros((2, 2)))
    assert votes_from_probs(probs[None]).tolist() == [[1, 0, ABSTAIN, ABSTAIN]]


def test_lexicon_matches_vader_rule(task: Task) -> None:
    probs = create_specialist("lexicon", task).predict_proba(["What a wonderful day", "This is terrible", "The box is on the table"])
    assert [task.label_names[i] for i in probs.argmax(axis=1)] == ["positive", "negative", "neutral"]


def test_saved_specialist_from_other_data_through_a_label_map(task: Task, seed_data, held_out, tmp_path: Path) -> None:
    source = create_specialist("tfidf", task).fit(*seed_data)
    source.save(tmp_path / "zoo" / "tweets-tfidf")
    finance = Task.from_dict({"name": "finance", "labels": ["bearish", "bullish", "neutral"]})
    with pytest.raises(AnnotatorError, match="match no task label"):
        create_specialist("saved", finance, path=str(tmp_path / "zoo" / "tweets-tfidf"))
    mapped = create_specialist("saved", finance, path=str(tmp_path / "zoo" / "tweets-tfidf"),
                               label_map={"negative": "bearish", "positive": "bullish", "neutral": "neutral"})
    texts = held_out[0][:40]
    expected = source.predict_proba(texts)[:, [0, 2, 1]]  # negative, positive, neutral -> bearish, bullish, neutral
    assert np.allclose(mapped.predict_proba(texts), expected)
    copy = mapped.save(tmp_path / "run" / "v1")
    import shutil

    shutil.rmtree(tmp_path / "zoo")  # the run keeps its own copy
    assert np.allclose(load_specialist(copy, finance).predict_proba(texts), expected)


def test_saved_specialist_abstains_where_its_top_label_maps_to_null(task: Task, seed_data, held_out, tmp_path: Path) -> None:
    source = create_specialist("tfidf", task).fit(*seed_data)
    source.save(tmp_path / "tweets-tfidf")
    binary = Task.from_dict({"name": "polarity", "labels": ["negative", "positive"]})
    mapped = create_specialist("saved", binary, path=str(tmp_path / "tweets-tfidf"), label_map={"neutral": None})
    texts = held_out[0][:120]
    own = source.predict_proba(texts)
    neutral_top = own.argmax(axis=1) == task.label_names.index("neutral")
    assert 0 < neutral_top.sum() < len(texts)
    probs = mapped.predict_proba(texts)
    assert np.array_equal(probs[neutral_top], np.zeros((neutral_top.sum(), 2)))
    kept = own[~neutral_top][:, [0, 2]]
    assert np.allclose(probs[~neutral_top], kept / kept.sum(axis=1, keepdims=True))
