"""Markets, platforms, hosts and currencies of the Back Market seller API."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bmctl.errors import UsageError

MARKET_PATTERN = re.compile(r"^[a-z]{2}-[a-z]{2}$")

HOSTS: dict[tuple[str, str], str] = {
    ("EU", "prod"): "https://www.backmarket.fr",
    ("EU", "preprod"): "https://preprod.backmarket.fr",
    ("NA", "prod"): "https://www.backmarket.com",
    ("NA", "preprod"): "https://preprod.backmarket.com",
    ("AP", "prod"): "https://www.backmarket.co.jp",
    ("AP", "preprod"): "https://preprod.backmarket.co.jp",
}

ENVIRONMENTS = ("prod", "preprod")


@dataclass(frozen=True)
class Market:
    """One market: its Accept-Language code, platform, currency and the competitors' code."""

    code: str
    platform: str
    currency: str
    country: str


_MARKETS = [
    Market("fr-fr", "EU", "EUR", "FR"),
    Market("fr-be", "EU", "EUR", "BE"),
    Market("es-es", "EU", "EUR", "ES"),
    Market("de-de", "EU", "EUR", "DE"),
    Market("de-at", "EU", "EUR", "AT"),
    Market("it-it", "EU", "EUR", "IT"),
    Market("nl-nl", "EU", "EUR", "NL"),
    Market("pt-pt", "EU", "EUR", "PT"),
    Market("en-ie", "EU", "EUR", "IE"),
    Market("el-gr", "EU", "EUR", "GR"),
    Market("sk-sk", "EU", "EUR", "SK"),
    Market("en-gb", "EU", "GBP", "GB"),
    Market("sv-se", "EU", "SEK", "SE"),
    Market("en-us", "NA", "USD", "US"),
    Market("ja-jp", "AP", "JPY", "JP"),
    Market("en-au", "AP", "AUD", "AU"),
]

MARKETS: dict[str, Market] = {m.code: m for m in _MARKETS}
_BY_COUNTRY: dict[str, Market] = {m.country: m for m in _MARKETS}


def get_market(code: str) -> Market:
    """The market for an Accept-Language code such as ``fr-fr``; a clear error otherwise."""
    market = MARKETS.get(code.strip().lower()) if isinstance(code, str) else None
    if market is None:
        known = ", ".join(sorted(MARKETS))
        raise UsageError(f"unknown market {code!r} (known markets: {known})")
    return market


def market_from_country(country: str) -> Market:
    """Map a competitor record's two-letter market (``FR``) or a locale code to a market."""
    value = country.strip()
    market = _BY_COUNTRY.get(value.upper()) or MARKETS.get(value.lower())
    if market is None:
        raise ValueError(f"unknown market code {country!r}")
    return market


def host_for(market: str, env: str) -> str:
    """The API host for a market in an environment (``prod`` or ``preprod``)."""
    if env not in ENVIRONMENTS:
        raise UsageError(f"unknown environment {env!r} (use prod or preprod)")
    return HOSTS[(get_market(market).platform, env)]


def platform_markets(code: str) -> tuple[str, ...]:
    """Every market of the platform ``code`` belongs to, in the table's order: a token is valid
    on one platform, so these are the markets its listings can compete in."""
    platform = get_market(code).platform
    return tuple(m.code for m in _MARKETS if m.platform == platform)
