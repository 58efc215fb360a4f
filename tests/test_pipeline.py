"""The Python API end to end on real tweets: routes, provenance, resume, and input handling."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from autoannotator import Annotator, AnnotatorError, Task, evaluate_frame
from autoannotator.io import read_table
from autoannotator.pipeline import OUTPUT_COLUMNS

FAST = ["tfidf", "lexicon"]


def test_api_labels_a_dataframe_with_provenance(task: Task, small_tweets: pd.DataFrame, seed_frame, tmp_path: Path) -> None:
    annotator = Annotator(task, specialists=FAST + ["embedding"], reviewer="gold:gold_label", run_dir=tmp_path / "run", chunk_size=64)
    result = annotator.annotate(small_tweets, seed=seed_frame, output=tmp_path / "out.parquet")
    frame = result.frame
    assert list(frame.columns) == ["id", "text", "gold_label", *OUTPUT_COLUMNS]
    assert frame["id"].tolist() == small_tweets["id"].tolist()
    assert set(frame["label_source"]) == {"consensus", "gold"}
    consensus = frame[frame.label_source == "consensus"]
    gold = frame[frame.label_source == "gold"]
    assert (consensus["uncertainty"] == 0).all() and (gold["uncertainty"] > 0).all()
    assert (gold["label"] == gold["gold_label"]).all() and (gold["reviewed_label"] == gold["label"]).all()
    assert consensus["reviewed_label"].isna().all()
    votes = json.loads(frame["votes"].iloc[0])
    assert set(votes) == {"tfidf", "lexicon", "embedding"}
    assert all(v["label"] in task.label_names and 0 < v["p"] <= 1 for v in votes.values())
    assert result.summary.counts == {"consensus": len(consensus), "gold": len(gold)}
    assert result.summary.review_fraction == pytest.approx(len(gold) / len(frame))
    written = read_table(tmp_path / "out.parquet")
    assert written["label"].tolist() == frame["label"].tolist()
    scores = evaluate_frame(written, "gold_label")
    assert scores.route_accuracy["gold"] == 1.0 and scores.accuracy > 0.75


def test_without_reviewer_hard_items_stay_unresolved_then_a_later_run_reviews_them(
    task: Task, small_tweets: pd.DataFrame, seed_frame, tmp_path: Path
) -> None:
    first = Annotator(task, specialists=FAST, reviewer="none", run_dir=tmp_path / "run").annotate(small_tweets, seed=seed_frame)
    hard = first.frame[first.frame.label_source == "unresolved"]
    assert len(hard) > 0 and hard["label"].isna().all()
    assert first.summary.n_labeled_now == len(small_tweets) - len(hard)  # unresolved items are not "labeled now"
    assert (first.summary.n_resumed, first.summary.n_unlabeled) == (0, len(hard))
    assert hard["consensus_label"].notna().all()  # the votes are kept for the later review
    second = Annotator(task, specialists=FAST, reviewer="gold:gold_label", run_dir=tmp_path / "run").annotate(small_tweets, seed=seed_frame)
    # resumed = labeled in earlier sessions; the figures add up to the items
    assert (second.summary.n_labeled_now, second.summary.n_resumed, second.summary.n_unlabeled) == (len(hard), len(small_tweets) - len(hard), 0)
    assert second.frame.loc[hard.index, "label_source"].eq("gold").all()
    easy = first.frame.label_source == "consensus"
    assert second.frame.loc[easy, "label"].tolist() == first.frame.loc[easy, "label"].tolist()


def test_empty_texts_are_kept_and_marked_unresolved(task: Task, small_tweets: pd.DataFrame, seed_frame, tmp_path: Path) -> None:
    frame = small_tweets.iloc[:20].copy()
    frame.loc[frame.index[3], "text"] = ""
    frame.loc[frame.index[5], "text"] = None
    frame.loc[frame.index[7], "text"] = "   "
    result = Annotator(task, specialists=FAST, reviewer="gold:gold_label", run_dir=tmp_path / "r").annotate(frame, seed=seed_frame)
    out = result.frame
    assert len(out) == 20
    for i in (3, 5, 7):
        assert out.loc[i, "label_source"] == "unresolved" and pd.isna(out.loc[i, "label"]) and out.loc[i, "votes"] == "{}"
    assert out.drop(index=[3, 5, 7])["label"].notna().all()
    # The three empty texts were never sent to a reviewer: not part of the share sent to review.
    assert result.summary.n_never_sent == 3
    assert result.summary.review_fraction == pytest.approx((out.label_source == "gold").sum() / 20)


def test_input_columns_named_like_output_columns_are_kept(task: Task, seed_frame, tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "text": ["I love it", "I hate it"], "label": ["positive", "negative"]})
    out = Annotator(task, specialists=FAST, run_dir=tmp_path / "r").annotate(frame, seed=seed_frame).frame
    assert out["input_label"].tolist() == ["positive", "negative"]
    with pytest.raises(AnnotatorError, match="kept as 'input_label'"):
        evaluate_frame(out, "label")


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_labeling_an_earlier_output_again_keeps_every_column_under_a_free_name(task: Task, seed_frame, tmp_path: Path, suffix: str) -> None:
    """An earlier output labeled again holds both `label` and `input_label` (and the other output columns): the
    new output keeps each input column once, the clashing ones under the next free name, in every format."""
    frame = pd.DataFrame({"id": ["a", "b"], "text": ["I love it", "I hate it"], "label": ["positive", "negative"]})
    first = tmp_path / f"first.{suffix}"
    Annotator(task, specialists=FAST, run_dir=tmp_path / "r1").annotate(frame, seed=seed_frame, output=first)
    earlier = read_table(first)
    earlier["input_input_label"] = ["x", "y"]  # taken too: the pick moves on
    again = tmp_path / f"again_in.{suffix}"
    earlier.to_csv(again, index=False) if suffix == "csv" else (earlier.to_json(again, orient="records", lines=True) if suffix == "jsonl"
                                                                  else earlier.to_parquet(again, index=False))  # fmt: skip
    out = tmp_path / f"again.{suffix}"
    Annotator(task, specialists=FAST, run_dir=tmp_path / "r2").annotate(again, seed=seed_frame, output=out)
    labeled = read_table(out)
    assert labeled.columns.is_unique and len(labeled.columns) == len(earlier.columns) + len(OUTPUT_COLUMNS)
    assert labeled["input_label"].tolist() == ["positive", "negative"]  # the original input's label, untouched
    assert labeled["input_input_label"].tolist() == ["x", "y"]
    assert labeled["input_input_input_label"].astype(str).tolist() == earlier["label"].astype(str).tolist()  # the first run's labels
    for column in OUTPUT_COLUMNS:
        if column != "label":
            assert f"input_{column}" in labeled.columns, column


def test_trainable_specialists_need_a_seed(task: Task, small_tweets, tmp_path: Path) -> None:
    with pytest.raises(AnnotatorError, match="must be trained first"):
        Annotator(task, specialists=["tfidf"], run_dir=tmp_path / "r").annotate(small_tweets)


def test_changed_input_in_the_same_run_dir_is_refused(task: Task, small_tweets, seed_frame, tmp_path: Path) -> None:
    Annotator(task, specialists=FAST, run_dir=tmp_path / "r").annotate(small_tweets.iloc[:30], seed=seed_frame)
    changed = small_tweets.iloc[:30].copy()
    changed.loc[changed.index[0], "text"] = "something else"
    with pytest.raises(AnnotatorError, match="holds a different run"):
        Annotator(task, specialists=FAST, run_dir=tmp_path / "r").annotate(changed, seed=seed_frame)


def test_saved_specialists_are_reused_on_resume(task: Task, small_tweets, seed_frame, tmp_path: Path) -> None:
    Annotator(task, specialists=FAST, run_dir=tmp_path / "r").annotate(small_tweets.iloc[:30], seed=seed_frame)
    assert (tmp_path / "r" / "specialists" / "tfidf" / "v1" / "head.npz").is_file()
    again = Annotator(task, specialists=FAST, run_dir=tmp_path / "r").annotate(small_tweets.iloc[:30], seed=seed_frame)
    assert "fit:tfidf" not in again.summary.seconds


def test_probability_rule_with_budget(task: Task, small_tweets, seed_frame, tmp_path: Path) -> None:
    annotator = Annotator(task, specialists=FAST, reviewer="gold:gold_label", rule="margin", budget=0.25, run_dir=tmp_path / "r")
    result = annotator.annotate(small_tweets, seed=seed_frame)
    assert result.summary.counts["gold"] == 50  # 25% of the whole run (200 items)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epsilon": 1.5}, "epsilon must be in"),
        ({"rule": "margin"}, "needs --epsilon or --budget"),
        ({"rule": "median"}, "unknown rule"),
        ({"reviewer": "oracle"}, "unknown reviewer 'oracle'"),
        ({"reviewer": "gold"}, "needs a column"),
        ({"specialists": ["tfidf", "tfidf"]}, "must be unique"),
        ({"specialists": ["svm"]}, "unknown specialist kind"),
    ],
)
def test_bad_settings_are_clear_errors(task: Task, kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(AnnotatorError, match=message):
        Annotator(task, run_dir=tmp_path, **({"specialists": FAST} | kwargs))
