"""Source systems: land what they deliver, parse it to canonical PII-free rows."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from flows.sources.landing import LandedBatch

Parser = Callable[[LandedBatch, bytes], dict[str, pd.DataFrame]]


def parser_for(source: str) -> Parser:
    from flows.sources.enforcement import parse_enforcement
    from flows.sources.mediation import parse_mediation
    from flows.sources.returns import parse_returns
    from flows.sources.training import parse_training

    parsers: dict[str, Parser] = {
        "enforcement": parse_enforcement,
        "mediation": parse_mediation,
        "training": parse_training,
        "returns": parse_returns,
    }
    return parsers[source]
