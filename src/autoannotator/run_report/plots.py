"""The report's plots, drawn with matplotlib (Agg, no display) and returned as PNG data URIs, so the HTML
file carries its images inside it. Text from the data (specialist names, routes) is drawn literally:
math text is off, so a name with '$' is a name, not a formula."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from autoannotator.run_report.figures import Agreement, BudgetCurve  # noqa: E402

STYLE = {"text.parse_math": False, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
ROUTE_COLOURS = {"consensus": "#4c78a8", "llm": "#f58518", "llm+consensus": "#e45756", "human": "#54a24b", "gold": "#b79a20", "unresolved": "#9d9d9d"}


@contextmanager
def figure(width: float = 6.0, height: float = 3.2) -> Iterator[tuple[Figure, plt.Axes]]:
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(width, height), dpi=100)
        try:
            yield fig, ax
        finally:
            plt.close(fig)


def data_uri(fig: Figure) -> str:
    """The figure as a `data:image/png;base64,...` URI."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def routes_plot(names: list[str], shares: list[float]) -> str:
    """Horizontal bars: the share of items per route."""
    with figure(6.0, 0.5 + 0.35 * len(names)) as (fig, ax):
        ax.barh(names[::-1], [100 * s for s in shares[::-1]], color=[ROUTE_COLOURS.get(n, "#777777") for n in names[::-1]])
        ax.set_xlabel("share of items (%)")
        ax.set_xlim(0, 100)
        return data_uri(fig)


def agreement_plot(agreement: Agreement) -> str:
    """Heat map of pairwise agreement on the reviewed items (specialists and the reviewer)."""
    k = len(agreement.names)
    values = np.array([[np.nan if v is None else v for v in row] for row in agreement.rate], dtype=float)
    with figure(1.6 + 0.8 * k, 1.0 + 0.7 * k) as (fig, ax):
        image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(k), agreement.names, rotation=30, ha="right")
        ax.set_yticks(range(k), agreement.names)
        for i in range(k):
            for j in range(k):
                if not np.isnan(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", color="white" if values[i, j] < 0.6 else "black")
        fig.colorbar(image, ax=ax, fraction=0.046, label="agreement")
        return data_uri(fig)


def uncertainty_plot(groups: dict[str, list[float]]) -> str:
    """Stacked histogram of the uncertainty per route."""
    with figure() as (fig, ax):
        edges = np.linspace(0, 1, 21)
        ax.hist(list(groups.values()), bins=edges, stacked=True, label=list(groups),
                color=[ROUTE_COLOURS.get(n, "#777777") for n in groups])  # fmt: skip
        ax.set_xlabel("uncertainty U")
        ax.set_ylabel("items")
        ax.legend(frameon=False)
        return data_uri(fig)


def budget_plot(curve: BudgetCurve) -> str:
    """Accuracy (or agreement with the final labels) against the review budget."""
    with figure() as (fig, ax):
        if curve.oracle:
            ax.plot([100 * b for b in curve.budgets], curve.oracle, color="#b79a20", label="a reviewer always right (gold)")
        label = "this run's reviewer" if curve.kind == "gold" else "agreement with the final labels"
        ax.plot([100 * b for b in curve.run_budgets], curve.run, marker="o", markersize=3, color="#f58518", label=label)
        ax.axvline(100 * curve.realised_share, color="#999999", linestyle=":", label=f"realised review share {curve.realised_share:.1%}")
        ax.set_xlabel("review budget (% of scored items, most uncertain first)")
        ax.set_ylabel("accuracy" if curve.kind == "gold" else "agreement")
        ax.legend(frameon=False, loc="lower right")
        return data_uri(fig)


def rounds_plot(names: list[str], before: list[float | None], after: list[float | None]) -> str:
    """Gate accuracy before and after each candidate of each round (bars per 'specialist, round')."""
    with figure(6.0, 3.0) as (fig, ax):
        x = np.arange(len(names))
        ax.bar(x - 0.2, [np.nan if v is None else v for v in before], width=0.4, color="#9d9d9d", label="before")
        ax.bar(x + 0.2, [np.nan if v is None else v for v in after], width=0.4, color="#4c78a8", label="after")
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylabel("gate accuracy")
        ax.set_ylim(0, 1)
        ax.legend(frameon=False)
        return data_uri(fig)
