"""The Back Market seller API: markets, money, errors and the HTTP client."""
