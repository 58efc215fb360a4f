"""The price table: USD per million input and output tokens, from a user-editable YAML file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autoannotator.errors import AnnotatorError


class Price(BaseModel):
    """USD per million input (prompt) and output (completion) tokens, and the other names the model goes by."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    aliases: list[str] = Field(default_factory=list)


class PriceTable:
    """Looks up a model's price by its exact name or one of the aliases listed with it ('gpt-4o-2024-08-06' is
    listed under 'gpt-4o'). Nothing else matches: 'gpt-4.1-mini' is not 'gpt-4', and a model not listed has an
    unknown price (None), never a price of 0."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = prices
        self.names: dict[str, Price] = {}
        for name, price in prices.items():
            for known in [name, *price.aliases]:
                if self.names.setdefault(known, price) is not price:
                    raise AnnotatorError(f"price table: '{known}' is listed twice")

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        """The built-in table (prices.yaml beside this module), or the user's YAML file at `path` (a BOM is fine).

        Raises AnnotatorError for a file that is not a mapping of model -> {input, output[, aliases]}."""
        text = Path(path).read_text(encoding="utf-8-sig") if path else resources.files("autoannotator.llm").joinpath("prices.yaml").read_text()
        try:
            raw = yaml.safe_load(text) or {}
            return cls({str(name): Price.model_validate(value) for name, value in raw.items()})
        except (yaml.YAMLError, ValidationError, AttributeError) as exc:
            raise AnnotatorError(f"price table {path or 'built-in'} is invalid: {str(exc).splitlines()[0]}") from None

    def with_price(self, model: str, input_usd: float, output_usd: float) -> PriceTable:
        """This table with `model` priced at `input_usd` / `output_usd` per million input / output tokens (the command
        line's --llm-price-in / --llm-price-out), replacing what the table says of it."""
        prices = {name: price for name, price in self.prices.items() if name != model and model not in price.aliases}
        return PriceTable(prices | {model: Price(input=input_usd, output=output_usd)})

    def price(self, model: str) -> Price | None:
        """The price of `model` by exact name or listed alias; None when the table does not list it."""
        return self.names.get(model)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for one call; None when the model's price is unknown."""
        price = self.price(model)
        if price is None:
            return None
        return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000
