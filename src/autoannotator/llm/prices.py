"""The price table: USD per million input and output tokens, from a user-editable YAML file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from autoannotator.errors import AnnotatorError


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float
    output: float


class PriceTable:
    """Looks up a model's price (exact name, then the longest listed prefix: 'gpt-4o-2024-08-06' -> 'gpt-4o')."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = prices

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        text = Path(path).read_text(encoding="utf-8-sig") if path else resources.files("autoannotator.llm").joinpath("prices.yaml").read_text()
        try:
            raw = yaml.safe_load(text) or {}
            return cls({name: Price.model_validate(value) for name, value in raw.items()})
        except (yaml.YAMLError, ValidationError, AttributeError) as exc:
            raise AnnotatorError(f"price table {path or 'built-in'} is invalid: {str(exc).splitlines()[0]}") from None

    def price(self, model: str) -> Price | None:
        if model in self.prices:
            return self.prices[model]
        matches = [name for name in self.prices if model.startswith(name)]
        return self.prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.price(model)
        if price is None:
            return 0.0
        return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000
