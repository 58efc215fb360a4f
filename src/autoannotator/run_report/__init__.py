"""The run report: figures from the run store, matplotlib plots, one self-contained HTML file."""

from autoannotator.run_report.html import write_report

__all__ = ["write_report"]
