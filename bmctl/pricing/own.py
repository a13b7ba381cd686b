"""What a probe run knows of the seller's own listings, so that it never dips against itself.

Two of our listings on one product compete in the same Backbox: dipping one below the other's
winning price takes the sale from ourselves at a lower price. The listing pages give each
listing's product (``product_id``); the competitors records read during the run give our price
in each market as the Backbox sees it, and whether it wins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class OwnOffers:
    """The run's view of our listings: product per listing, the last competitors record per
    (listing, market), and which markets' listing pages were read (all our products known)."""

    products: dict[str, str] = field(default_factory=dict)  # listing id (lower) -> product id
    records: dict[tuple[str, str], Any] = field(default_factory=dict)  # (listing, market) -> record
    read_at: dict[str, float] = field(default_factory=dict)  # listing -> when its records were read
    loaded: set[str] = field(default_factory=set)  # markets whose listing pages were read
    loading: set[str] = field(default_factory=set)  # markets whose pages a probe is reading now

    def saw_listing(self, listing: Any) -> None:
        """A listing read from a page or by id: remember its product."""
        if getattr(listing, "product_id", None):
            self.products[listing.id.lower()] = listing.product_id.lower()

    def saw_records(self, records: Any, at: float) -> None:
        """A competitors answer (read at ``at``): each market's record of one of our listings."""
        for record in records or ():
            key = record.listing_id.lower()
            self.records[(key, record.market)] = record
            self.read_at[key] = at
            if record.product_id:
                self.products.setdefault(key, record.product_id.lower())

    def siblings(self, listing_id: str, product_id: str) -> list[str]:
        """Our other listings on ``product_id``."""
        me, product = listing_id.lower(), product_id.lower()
        return [other for other, of in self.products.items() if of == product and other != me]

    def winner(self, listing_id: str, product_id: str, market: str, winner_price: Any) -> str | None:
        """Which of our other listings on the product holds the Backbox of ``market`` at
        ``winner_price``, by the records read; None when none does (as far as they tell)."""
        for other in self.siblings(listing_id, product_id):
            record = self.records.get((other, market))
            if record is not None and record.is_winning and record.price == winner_price:
                return other
        return None
