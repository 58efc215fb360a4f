"""Features of a catalog model for LogME: what its classifier head would see."""

from __future__ import annotations

import numpy as np

from autoannotator.controller.catalog import CatalogEntry


def features_for(entry: CatalogEntry, texts: list[str]) -> np.ndarray | None:
    """(n, d) features, or None where they cannot be had here (a Hub model not downloaded)."""
    if entry.kind in ("embedding",) or entry.id == "hf-minilm-finetuned":
        from autoannotator.specialists.embedding import EmbeddingSpecialist
        from autoannotator.task import Task

        dummy = Task.from_dict({"name": "features", "labels": ["a", "b"]})
        return EmbeddingSpecialist(dummy).embed(texts)
    if entry.kind == "tfidf":
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        matrix = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
        return TruncatedSVD(n_components=min(128, matrix.shape[1] - 1, len(texts) - 1), random_state=0).fit_transform(matrix)
    if entry.kind == "lexicon":
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        analyzer = SentimentIntensityAnalyzer()
        return np.array([[s["neg"], s["neu"], s["pos"], s["compound"]] for s in map(analyzer.polarity_scores, texts)])
    if entry.kind == "hf" and entry.model:
        return _hidden_states(entry.model, texts)
    return None


def _hidden_states(model: str, texts: list[str]) -> np.ndarray | None:
    """Mean-pooled last hidden states of a (downloaded or local) transformers model."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        encoder = AutoModel.from_pretrained(model, use_safetensors=True).eval()
    except (OSError, ValueError):
        return None
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), 32):
            batch = tokenizer(texts[start : start + 32], truncation=True, max_length=128, padding=True, return_tensors="pt")
            hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            rows.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.vstack(rows)
