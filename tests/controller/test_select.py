"""Ranking, LogME and label mapping of the meta-controller."""

from __future__ import annotations

import numpy as np
import pytest

from autoannotator import AnnotatorError, Task
from autoannotator.consensus import ABSTAIN, votes_from_probs
from autoannotator.controller.catalog import CatalogEntry, curated_catalog
from autoannotator.controller.label_map import propose_label_map
from autoannotator.controller.logme import logme, logme_details
from autoannotator.controller.planner import packaged_encoder
from autoannotator.controller.select import diverse_top_k, rank
from autoannotator.specialists import LabelMapping


@pytest.fixture(scope="module")
def encode():
    return packaged_encoder()


def entry(id: str, description: str, family: str, labels: list[str] | None = None, **extra) -> CatalogEntry:
    return CatalogEntry(id=id, kind="hf", family=family, description=description, labels=labels or ["spam", "ham"], offline=True, **extra)


def test_similarity_ranking_finds_the_known_best_match(encode) -> None:
    task = Task.from_dict({"name": "email-spam", "instruction": "Is this email unsolicited bulk advertising (spam) or a normal message (ham)?",
                           "labels": [{"name": "spam", "description": "unwanted advertising email"}, {"name": "ham", "description": "a normal email"}]})
    catalog = [
        entry("a/weather", "Predicts tomorrow's rainfall from satellite images of clouds.", "weather"),
        entry("b/spam-detector", "Detects spam emails: unsolicited advertising messages versus legitimate mail.", "spam"),
        entry("c/recipes", "Classifies cooking recipes by cuisine, such as Italian or Thai food.", "food"),
    ]
    chosen, judged = rank(task, catalog, k=1, encode=encode, offline=True)
    assert [c.entry.id for c in chosen] == ["b/spam-detector"]
    assert judged[1].score > max(judged[0].score, judged[2].score)


def test_diversity_keeps_one_model_per_family() -> None:
    from autoannotator.controller.select import Candidate

    candidates = [Candidate(entry(f"m{i}", "x", family), score=s) for i, (family, s) in enumerate([("bert", 0.9), ("bert", 0.8), ("roberta", 0.7), ("tfidf", 0.1)])]
    assert [c.entry.id for c in diverse_top_k(candidates, 3)] == ["m0", "m2", "m3"]


def test_models_whose_labels_do_not_fit_are_excluded_with_a_reason(encode) -> None:
    task = Task.from_dict({"name": "sentiment", "labels": ["negative", "neutral", "positive"]})
    stars = entry("n/stars", "Product review sentiment in stars", "stars", labels=["1 star", "2 stars", "3 stars", "4 stars", "5 stars"])
    sentiment = entry("s/sent", "Tweet sentiment", "sent", labels=["NEG", "NEU", "POS"], label_aliases={"NEG": "negative", "NEU": "neutral", "POS": "positive"})
    chosen, judged = rank(task, [stars, sentiment], k=2, encode=encode, offline=True)
    assert [c.entry.id for c in chosen] == ["s/sent"]
    assert judged[0].excluded and "labels do not fit" in judged[0].excluded
    assert judged[1].label_map == {"NEG": "negative", "NEU": "neutral", "POS": "positive"}


def test_label_map_by_embedding_similarity_and_abstention(encode) -> None:
    task = Task.from_dict({"name": "toxicity", "labels": [{"name": "toxic", "description": "rude, hateful or insulting"},
                                                          {"name": "non-toxic", "description": "polite and harmless"}]})
    mapping, how = propose_label_map(["insult", "toxic", "weather"], task, encode=encode)
    assert mapping["toxic"] == "toxic" and how["toxic"] == "name or alias"
    assert mapping["insult"] == "toxic" and how["insult"].startswith("embedding similarity")
    assert mapping["weather"] is None and "abstains" in how["weather"]
    # The map abstains in the vote, not only in its explanation: a model sure of "weather" casts no vote.
    model_probs = np.array([[0.02, 0.01, 0.95, 0.02], [0.1, 0.6, 0.2, 0.1]])  # insult, toxic, weather, polite
    labels = ["insult", "toxic", "weather", "polite"]
    votes = votes_from_probs(LabelMapping(labels, task, mapping | {"polite": "non-toxic"}).apply(model_probs)[None])
    assert votes.tolist() == [[ABSTAIN, task.label_names.index("toxic")]]


def test_llm_label_proposals_are_validated(encode) -> None:
    task = Task.from_dict({"name": "t", "labels": ["toxic", "non-toxic"]})
    mapping, how = propose_label_map(["LABEL_A", "LABEL_B"], task, llm=lambda prompt: '{"LABEL_A": "toxic", "LABEL_B": "rm -rf /"}')
    assert mapping == {"LABEL_A": "toxic", "LABEL_B": None}
    assert how["LABEL_A"] == "LLM proposal"


def test_offline_without_seed_nothing_trainable_is_offered() -> None:
    task = Task.from_dict({"name": "topic", "labels": ["sports", "politics"]})
    with pytest.raises(AnnotatorError, match="no catalog model can serve"):
        rank(task, curated_catalog(), k=3, encode=lambda texts: np.eye(len(texts), 8), offline=True, has_seed=False)


def test_logme_prefers_informative_features() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    informative = np.eye(3)[labels] * 3 + rng.normal(size=(300, 3)) * 0.5
    informative = np.hstack([informative, rng.normal(size=(300, 13))])
    noise = rng.normal(size=(300, 16))
    assert logme(informative, labels) > logme(noise, labels) + 0.5


def test_logme_evidence_equals_the_direct_formula() -> None:
    """At the alpha and beta it converged to, the score is the log marginal likelihood of Bayesian linear
    regression, computed here directly: log N(y | 0, I/beta + F F^T / alpha) / n."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(80, 5))
    labels = (features[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)
    for k, (evidence, alpha, beta) in enumerate(logme_details(features, labels)):
        y = (labels == k).astype(float)
        cov = np.eye(80) / beta + features @ features.T / alpha
        _, logdet = np.linalg.slogdet(cov)
        direct = -0.5 * (y @ np.linalg.solve(cov, y) + logdet + 80 * np.log(2 * np.pi))
        assert evidence == pytest.approx(direct / 80, rel=1e-6)
