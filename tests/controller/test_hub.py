"""Hub search: against recorded Hub responses served locally, and (opt-in) against the real Hub."""

from __future__ import annotations

import pytest

from autoannotator import AnnotatorError
from autoannotator.controller.hub import search_hub
from tests.controller.recorded_hub import serve_recorded_hub


def test_search_reads_labels_and_cards_and_drops_unmappable_models() -> None:
    server, asked = serve_recorded_hub()
    try:
        entries = search_hub("", endpoint=f"http://127.0.0.1:{server.server_port}")
        twitter = search_hub("twitter", endpoint=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert [e.id for e in twitter] == ["cardiffnlp/twitter-roberta-base-sentiment-latest"]
    by_id = {e.id: e for e in entries}
    assert list(by_id) == ["cardiffnlp/twitter-roberta-base-sentiment-latest", "distilbert/distilbert-base-uncased-finetuned-sst-2-english"]
    roberta = by_id["cardiffnlp/twitter-roberta-base-sentiment-latest"]
    assert roberta.labels == ["negative", "neutral", "positive"] and roberta.source == "hub" and roberta.kind == "hf"
    assert roberta.description.startswith("This is a RoBERTa-base model trained on ~124M tweets")
    assert roberta.license == "cc-by-4.0" and roberta.downloads == 2430000
    assert by_id["distilbert/distilbert-base-uncased-finetuned-sst-2-english"].labels == ["NEGATIVE", "POSITIVE"]
    assert "/api/models" in asked and "/some-user/generic-sentiment-classifier/resolve/main/config.json" in asked


def test_unreachable_hub_is_a_clear_error_fast() -> None:
    with pytest.raises(AnnotatorError, match="not reachable"):
        search_hub("sentiment", endpoint="http://127.0.0.1:9", timeout=1)


@pytest.mark.live
def test_hub_live() -> None:
    entries = search_hub("twitter sentiment", limit=5)
    assert entries and all(e.labels for e in entries)
