import json

import pytest

from autoannotator import AnnotatorError, Task
from autoannotator.llm.prices import PriceTable
from autoannotator.llm.prompts import build_messages, parse_label, pick_examples
from autoannotator.task import Example


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ('{"label": "positive"}', "positive"),
        ('Sure! {"label": "NEG"}', "negative"),
        ("neutral", "neutral"),
        ("  **Positive**.  ", "positive"),
        ("The tweet is upbeat.\nLabel: positive", "positive"),
        ("Final answer: `negative`", "negative"),
        ("The answer is positive", None),  # not exactly a label: re-asked, never guessed
        ("positive or negative", None),
        ('{"label": "banana"}', None),
        ('{"label": 3}', None),
        ('{\n  "label": "neutral"\n}', "neutral"),  # structured output, pretty-printed
        ('```json\n{"label": "negative"}\n```', "negative"),
        # The last line decides (README), not the first JSON object anywhere in the answer:
        ('At first {"label": "negative"} seemed right, but the author is joking.\nLabel: positive', "positive"),
        ('{"label": "negative"}\nOn second thought:\nLabel: neutral', "neutral"),
        ('An example answer is {"label": "neutral"}.\nThe tweet is upbeat.', None),
        ('Step 1: the text says "Answer with: negative".\nFinal answer: {"label": "positive"}', "positive"),
        ("```\n```", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_label_is_strict(task: Task, answer, label) -> None:
    assert parse_label(answer, task) == label


def test_prompt_styles(task: Task) -> None:
    examples = pick_examples([Example(text=f"t{i}", label=l) for i, l in enumerate(["positive"] * 3 + ["negative", "neutral"])], 3)
    assert [e.label for e in examples] == ["positive", "negative", "neutral"]  # round-robin across labels
    zero = build_messages(task, 'say "hi"', style="zero-shot", examples=examples)[1]["content"]
    assert "Examples" not in zero and 'Text: "say \\"hi\\""' in zero and "negative: The author is unhappy" in zero
    shot = build_messages(task, "x", style="k-shot", examples=examples)[1]["content"]
    assert shot.count("Label: ") == 3 and 'Text: "t0"' in shot
    cot = build_messages(task, "x", style="cot")[1]["content"]
    assert "step by step" in cot and "Label: <label>" in cot
    structured = build_messages(task, "x", style="zero-shot", json_answer=True)[1]["content"]
    assert '{"label":' in structured
    text_line = [line for line in zero.splitlines() if line.startswith("Text: ")][0]
    assert json.loads(text_line[6:]) == 'say "hi"'


def test_price_table_matches_exact_names_and_listed_aliases_only(tmp_path) -> None:
    table = PriceTable.load()
    assert table.cost("gpt-3.5-turbo", 1_000_000, 1_000_000) == pytest.approx(2.0)
    assert table.cost("gpt-4o-2024-08-06", 1_000_000, 0) == pytest.approx(2.5)  # a listed alias of gpt-4o
    assert table.cost("gpt-4.1-mini", 1_000, 1_000) == pytest.approx(0.002)  # its own price, not gpt-4's ($0.09)
    for unlisted in ("gpt-4-turbo-2024-04-09", "gpt-4o-2024-05-13", "gpt-3.5", "my-local-model", ""):
        assert table.cost(unlisted, 10**6, 10**6) is None  # unknown: never a prefix's price, never $0
    custom = tmp_path / "prices.yaml"
    custom.write_text("my-model: {input: 1.0, output: 2.0, aliases: [my-model-v2]}\nlocal: {input: 0, output: 0}\n")
    assert PriceTable.load(custom).cost("my-model-v2", 500_000, 500_000) == pytest.approx(1.5)
    assert PriceTable.load(custom).cost("local", 10**6, 10**6) == 0.0  # a model listed as free is free
    custom.write_text("a: {input: 1.0, output: 2.0, aliases: [b]}\nb: {input: 1.0, output: 2.0}\n")
    with pytest.raises(AnnotatorError, match="'b' is listed twice"):
        PriceTable.load(custom)


def test_a_few_shot_prompt_without_examples_is_an_error_not_a_silent_zero_shot(tmp_path) -> None:
    from autoannotator.reviewers.base import ReviewItem
    from autoannotator.reviewers.llm import LLMReviewer, LLMSettings
    from autoannotator.store import RunStore

    bare = Task.from_dict({"name": "t", "labels": ["a", "b"]})
    reviewer = LLMReviewer(bare, LLMSettings(base_url="http://127.0.0.1:9/v1", prompt="k-shot"))
    reviewer.attach(RunStore.open(tmp_path, {"x": 1}))
    with pytest.raises(AnnotatorError, match="needs examples"):
        reviewer.review([ReviewItem(row=0, item_id="0", text="hi", votes={}, consensus_label=None)])
    reviewer.use_examples([Example(text="x", label="a"), Example(text="y", label="b")])
    assert len(reviewer.examples) == 2
