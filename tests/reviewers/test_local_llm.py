"""The embedded reviewer: Gemma 3 270M in-process, scoring label words with contextual calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoannotator import Annotator, Task
from autoannotator.reviewers.base import ReviewItem
from autoannotator.reviewers.local_llm import LocalLLMReviewer
from autoannotator.task import Example


@pytest.fixture(scope="module")
def reviewer(task: Task, seed_frame: pd.DataFrame) -> LocalLLMReviewer:
    examples = [Example(text=t, label=y) for t, y in zip(seed_frame.text, seed_frame.label)]
    return LocalLLMReviewer(task, model="gemma3-270m", examples=examples)


@pytest.mark.slow
def test_scores_are_calibrated_distributions_better_than_chance(reviewer: LocalLLMReviewer, task: Task, tweets_frame) -> None:
    rows = tweets_frame.iloc[:120]
    items = [ReviewItem(row=i, item_id=str(i), text=t, votes={}, consensus_label=None) for i, t in enumerate(rows.text)]
    answers = reviewer.review(items)
    assert all(a.label in task.label_names for a in answers)
    assert all(abs(sum(a.probs.values()) - 1) < 1e-4 for a in answers)
    accuracy = np.mean([a.label == y for a, y in zip(answers, rows.gold_label)])
    assert accuracy > 0.40  # majority class is 0.42 of these; chance 0.33 (measured: about 0.5)
    predicted = {a.label for a in answers}
    assert len(predicted) == 3  # calibration keeps it from answering one label for everything


@pytest.mark.slow
def test_demo_runs_with_the_embedded_llm_reviewer(task: Task, tweets_frame, seed_frame, tmp_path: Path) -> None:
    frame = tweets_frame.iloc[:60]
    annotator = Annotator(task, specialists=["tfidf", "lexicon"], reviewer="llm", run_dir=tmp_path / "r", reviewer_probe=20)
    result = annotator.annotate(frame, seed=seed_frame)
    sources = set(result.frame.label_source)
    assert sources <= {"consensus", "llm", "llm+consensus"} and sources & {"llm", "llm+consensus"}
    usage = result.summary.llm["local:gemma3-270m"]
    reviewed = result.frame.reviewed_label.notna().sum()
    assert usage["calls"] == reviewed + 20 == reviewed + result.summary.reviewer["calls"] and usage["cost_usd"] == 0  # the probe's 20 too
    again = Annotator(task, specialists=["tfidf", "lexicon"], reviewer="llm", run_dir=tmp_path / "r", reviewer_probe=20).annotate(frame, seed=seed_frame)
    assert again.frame["label"].tolist() == result.frame["label"].tolist()


@pytest.mark.slow
def test_each_item_evaluates_only_its_own_tokens_and_answers_as_from_a_cold_start(task: Task, seed_frame, tweets_frame) -> None:
    examples = [Example(text=t, label=y) for t, y in zip(seed_frame.text, seed_frame.label)]
    reviewer = LocalLLMReviewer(task, model="gemma3-270m", examples=examples)
    reviewer.calibration  # noqa: B018 - evaluates the few-shot prefix once
    texts = list(tweets_frame.text.iloc[:6])
    warm, evaluated = [], []
    for text in texts:
        before = reviewer.tokens_evaluated
        warm.append(reviewer.score(text))
        evaluated.append(reviewer.tokens_evaluated - before)
    prefix = len(reviewer.prefix_tokens)
    assert prefix > 100  # instruction, labels and six examples
    assert all(0 < n <= reviewer.n_ctx - prefix and n + prefix <= reviewer.n_ctx for n in evaluated)
    assert max(evaluated) < prefix  # no item re-evaluates the prefix (each tweet is shorter than it)
    cold = []
    for text in texts:
        reviewer.llm.reset()  # what another prompt on the same model leaves: the prefix is evaluated again
        before = reviewer.tokens_evaluated
        cold.append(reviewer.score(text))
        assert reviewer.tokens_evaluated - before == reviewer.last_prompt_tokens
    for w, c in zip(warm, cold):
        assert max(w, key=w.get) == max(c, key=c.get)
        assert all(abs(w[name] - c[name]) < 1e-3 for name in task.label_names)


@pytest.mark.slow
def test_reviewer_and_embedded_chat_share_one_model_with_threads_for_shared_cpus(task: Task, seed_frame) -> None:
    import os

    from autoannotator.llm.embedded import llama_threads, load_llama
    from autoannotator.llm.local_models import gguf_path

    examples = [Example(text=t, label=y) for t, y in zip(seed_frame.text, seed_frame.label)]
    reviewer = LocalLLMReviewer(task, model="gemma3-270m", examples=examples)
    assert reviewer.llm is load_llama(str(gguf_path("gemma3-270m")), reviewer.n_ctx, llama_threads())  # as EmbeddedChatClient.llm
    params = reviewer.llm.context_params
    assert params.n_threads == params.n_threads_batch == llama_threads() <= max(len(os.sched_getaffinity(0)) // 2, 1)
    first = reviewer.score("so happy with the new album")
    reviewer.llm.create_completion("Write a haiku about rain:", max_tokens=4, temperature=0)  # another user of the model
    before = reviewer.tokens_evaluated
    assert reviewer.score("so happy with the new album") == first
    assert reviewer.tokens_evaluated - before == reviewer.last_prompt_tokens  # its prefix was evaluated again
