"""Configuration: built-in defaults, then the config file, then BMCTL_* variables, then options."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Mapping

from bmctl.errors import ConfigError
from bmctl.traffic.buckets import DEFAULT_LIMITS, LimitSpec

CONFIG_ENV = "BMCTL_CONFIG"

# Environment variables of the contract and the setting each one sets.
ENV_VARS: dict[str, str] = {
    "BMCTL_TOKEN": "token",
    "BMCTL_MARKET": "market",
    "BMCTL_ENV": "env",
    "BMCTL_BASE_URL": "base_url",
    "BMCTL_DB": "db",
    "BMCTL_USER_AGENT": "user_agent",
    "BMCTL_BUDGET_URL": "budget.url",
}


@dataclass(frozen=True)
class ProbeSettings:
    """Defaults of the price probe (``[probe]`` in the config file)."""

    step: str = ""  # empty: the currency's tick (0.01, or 1 for JPY)
    settle: float = 2.0
    max_raises: int = 3
    max_dip: float = 120.0
    breaker_floor_hits: int = 5
    peek_retries: int = 5
    headroom: str = "auto"


@dataclass(frozen=True)
class TrafficSettings:
    """How requests travel (``[traffic]`` in the config file)."""

    # Requests on the wire at once (1: strictly one at a time). The limits are kept whatever it
    # is; more hides network delay: see bench/RESULTS.md for how the default was chosen.
    max_in_flight: int = 64


# --- [pricing]: floors and ceilings from cost, caps per write (bmctl.pricing.costs reads them) ---
@dataclass(frozen=True)
class PricingSettings:
    """Pricing rules (``[pricing]`` in the config file), kept as written (decimal text, a TOML
    number or a table per currency) and parsed as Decimal by ``bmctl.pricing.costs``; empty:
    not set."""

    costs: str = ""  # a costs file, relative to the config file's folder
    fee_rate: Any = ""  # marketplace commission, a share of the price ("0.10" or "10%")
    fee_fixed: Any = ""  # a fixed fee per sale: "0.50 EUR", or a table per currency
    min_margin: Any = ""  # the floor's margin, a share of the price (empty: 0, break-even)
    max_margin: Any = ""  # the ceiling's margin (empty: no ceiling from cost)
    max_step_down: Any = ""  # how far one write may lower a price: "5%" or "10.00 EUR"
    max_step_up: Any = ""  # how far one write may raise it

    # --- price-war cooldown and raise back (bmctl.pricing.cooldown) ---
    # A listing (per market) with war_rounds price-war rounds within war_window is held (not
    # probed, no request) for war_cooldown after the last of them; war_rounds = 0: never held.
    war_rounds: int = 3
    war_window: str = "24h"
    war_cooldown: str = "6h"
    # A listing winning at a price unchanged for this long is searched upwards again.
    raise_back_after: str = "24h"

    def seconds(self, name: str) -> float:
        """A duration key in seconds (checked when the configuration was loaded)."""
        from bmctl.durations import duration_seconds

        return duration_seconds(getattr(self, name)) or 0.0


_COOLDOWN_KEYS = ("war_rounds", "war_window", "war_cooldown", "raise_back_after")
_PRICING_DURATIONS = ("war_window", "war_cooldown", "raise_back_after")
_PRICING_KEYS: dict[str, str] = {
    f.name: "str" if f.name == "costs" else str(f.type) if f.name in _COOLDOWN_KEYS else "pricing"
    for f in fields(PricingSettings)
}
# --- end [pricing] ---


@dataclass(frozen=True)
class BudgetSettings:
    """Where the budget ledger lives (``[budget]`` in the config file)."""

    # Empty: in the run's database (one host). redis://, rediss:// or unix://: in Redis, one
    # budget for every host that uses it (bmctl.store.redis_ledger).
    url: str = ""


@dataclass(frozen=True)
class Settings:
    """The merged configuration of one bmctl invocation."""

    token: str = ""
    market: str = "fr-fr"
    env: str = "prod"
    base_url: str = ""
    db: str = ""
    user_agent: str = ""
    company: str = ""
    email: str = ""
    timeout: float = 30.0
    max_attempts: int = 5
    lock_timeout: float = 0.0
    max_change_pct: float = 30.0
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    traffic: TrafficSettings = field(default_factory=TrafficSettings)
    pricing: PricingSettings = field(default_factory=PricingSettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    limits: Mapping[str, LimitSpec] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    config_path: str | None = None
    # Where each value set other than by default came from ("file PATH", "env NAME",
    # "option --x"), by dotted name: "market", "probe.settle", "limits.global.limit".
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def source(self, name: str) -> str:
        """Where the value ``name`` (dotted) came from: ``default`` unless set."""
        return self.sources.get(name, "default")

    @property
    def db_path(self) -> Path:
        """The database file: the configured one, else under ``$XDG_DATA_HOME/bmctl``."""
        if self.db:
            return Path(self.db).expanduser()
        data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(data_home) / "bmctl" / "bmctl.db"

    def masked(self) -> dict[str, Any]:
        """The settings as a plain dict for display, with the token masked."""
        data: dict[str, Any] = {}
        for f in fields(self):
            if f.name in _NOT_TOP:
                continue
            data[f.name] = getattr(self, f.name)
        data["token"] = mask_token(self.token)
        data["db"] = str(self.db_path)
        data["probe"] = {f.name: getattr(self.probe, f.name) for f in fields(ProbeSettings)}
        data["traffic"] = {f.name: getattr(self.traffic, f.name) for f in fields(TrafficSettings)}
        data["pricing"] = {f.name: getattr(self.pricing, f.name) for f in fields(PricingSettings)}
        data["budget"] = {"url": url_without_password(self.budget.url)}
        data["limits"] = {
            name: {"limit": s.limit, "window": s.window, "penalty": s.penalty}
            for name, s in self.limits.items()
        }
        return data


def mask_token(token: str) -> str:
    """Never show a token: only whether one is set."""
    return "***" if token else ""


_NOT_TOP = ("probe", "traffic", "budget", "pricing", "limits", "config_path", "sources")
# Field types as written (strings, from `from __future__ import annotations`).
_TOP_KEYS: dict[str, str] = {f.name: str(f.type) for f in fields(Settings) if f.name not in _NOT_TOP}
_PROBE_KEYS: dict[str, str] = {f.name: str(f.type) for f in fields(ProbeSettings)}
_TRAFFIC_KEYS: dict[str, str] = {f.name: str(f.type) for f in fields(TrafficSettings)}
_BUDGET_KEYS: dict[str, str] = {f.name: str(f.type) for f in fields(BudgetSettings)}
_LIMIT_KEYS = {"limit": "int", "window": "float", "penalty": "float"}

# Keys of earlier versions, still accepted (with a warning) and ignored: the budget ledger holds
# each slot from send until a window after the answer, which needs neither a burst nor a
# guess of the network's delay spread.
_DEPRECATED_TOP = {"jitter": "float"}
_DEPRECATED_LIMIT = {"burst": "int"}
_DEPRECATION = ("is deprecated and ignored: the budget ledger holds each slot from its send "
                "until one window after its answer, whatever the delay")


def find_config_file(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The config file in use: ``--config``, ``$BMCTL_CONFIG``, ``./bmctl.toml``, then XDG."""
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit).expanduser()
    from_env = environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env).expanduser()
    local = Path("bmctl.toml")
    if local.is_file():
        return local
    xdg = default_config_path(environ)
    return xdg if xdg.is_file() else None


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/bmctl/bmctl.toml`` (``~/.config/bmctl/bmctl.toml``)."""
    environ = os.environ if environ is None else environ
    config_home = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "bmctl" / "bmctl.toml"


def _coerce(value: Any, kind: str, where: str) -> Any:
    """Check one value against the type its key needs; a clear error otherwise."""
    if kind in ("str", "str | None"):
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {value!r}")
    if kind == "pricing":  # decimal text, a TOML number or a table per currency: checked later
        if isinstance(value, (str, int, float, Decimal, Mapping)) and not isinstance(value, bool):
            if isinstance(value, Mapping):
                return {str(k): str(v) if isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) else v
                        for k, v in value.items()}
            return value if isinstance(value, str) else str(value)  # 0.10 -> "0.10": decimal text
        raise ConfigError(f"{where} must be a number such as \"0.10\", got {value!r}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be a whole number, got {value!r}")
    if kind == "float":  # seconds and percentages, never money
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}")
    raise AssertionError(f"unhandled setting type {kind}")  # a bug, not bad input


def _check_range(name: str, value: Any, where: str) -> None:
    positive = {"timeout", "max_attempts", "max_change_pct", "settle", "max_dip", "limit", "window", "burst",
                "max_in_flight"}
    non_negative = {"lock_timeout", "jitter", "max_raises", "breaker_floor_hits", "penalty", "peek_retries",
                    "war_rounds"}
    if name in positive and value <= 0:
        raise ConfigError(f"{where} must be greater than zero, got {value!r}")
    if name in non_negative and value < 0:
        raise ConfigError(f"{where} must not be negative, got {value!r}")


def _apply_table(settings: Settings, data: Mapping[str, Any], source: str,
                 warn: Callable[[str], None] | None = None) -> Settings:
    """Apply a parsed TOML document (or an equivalent mapping) on top of ``settings``."""
    top: dict[str, Any] = {}
    probe = settings.probe
    traffic = settings.traffic
    pricing = settings.pricing
    budget = settings.budget
    limits = dict(settings.limits)
    for key, value in data.items():
        if key == "probe":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: [probe] must be a table")
            probe = replace(probe, **_read_section(value, _PROBE_KEYS, f"{source}: [probe]"))
        elif key == "traffic":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: [traffic] must be a table")
            traffic = replace(traffic, **_read_section(value, _TRAFFIC_KEYS, f"{source}: [traffic]"))
        elif key == "pricing":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: [pricing] must be a table")
            changes = _read_section(value, _PRICING_KEYS, f"{source}: [pricing]")
            _check_durations(changes, f"{source}: [pricing]")
            pricing = replace(pricing, **changes)
        elif key == "budget":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: [budget] must be a table")
            budget = replace(budget, **_read_section(value, _BUDGET_KEYS, f"{source}: [budget]"))
        elif key == "limits":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: [limits] must hold tables like [limits.global]")
            for name, spec in value.items():
                if not isinstance(spec, Mapping):
                    raise ConfigError(f"{source}: [limits.{name}] must be a table")
                current = limits.get(name, LimitSpec(limit=1, window=1.0))
                where = f"{source}: [limits.{name}]"
                spec = _drop_deprecated(spec, _DEPRECATED_LIMIT, where, warn)
                changes = _read_section(spec, _LIMIT_KEYS, where)
                if name not in limits and not {"limit", "window"} <= changes.keys():
                    raise ConfigError(f"{source}: [limits.{name}] is a new bucket: give limit and window")
                try:
                    updated = replace(current, **changes)
                except ValueError as error:
                    raise ConfigError(f"{source}: [limits.{name}] {error}") from None
                limits[name] = updated
        elif key in _DEPRECATED_TOP:
            _drop_deprecated({key: value}, _DEPRECATED_TOP, source, warn)
        elif key in _TOP_KEYS:
            where = f"{source}: {key!r}"
            top[key] = _coerce(value, _TOP_KEYS[key], where)
            if not isinstance(top[key], str):
                _check_range(key, top[key], where)
        else:
            raise ConfigError(f"{source}: unknown key {key!r}")
    return replace(settings, probe=probe, traffic=traffic, budget=budget, pricing=pricing, limits=limits,
                   **top)


def _check_durations(values: Mapping[str, Any], where: str) -> None:
    """Duration keys (``24h``, ``1h30m``) must read as one, with a unit."""
    from bmctl.durations import duration_seconds

    for key in _PRICING_DURATIONS:
        if key in values:
            seconds = duration_seconds(values[key])
            if seconds is None or seconds <= 0:
                raise ConfigError(f"{where} {key!r} must be a duration with a unit (6h, 24h, 1d12h), "
                                  f"got {values[key]!r}")


def _drop_deprecated(data: Mapping[str, Any], deprecated: Mapping[str, str], where: str,
                     warn: Callable[[str], None] | None) -> dict[str, Any]:
    """``data`` without its deprecated keys, each checked for type and announced once."""
    kept = dict(data)
    for key, kind in deprecated.items():
        if key in kept:
            value = _coerce(kept.pop(key), kind, f"{where} {key!r}")
            _check_range(key, value, f"{where} {key!r}")
            if warn is not None:
                warn(f"warning: {where} {key!r} {_DEPRECATION}")
    return kept


_CHOICES = {"headroom": ("auto", "revealed", "hidden")}


def _read_section(data: Mapping[str, Any], keys: Mapping[str, str], where: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in keys:
            raise ConfigError(f"{where}: unknown key {key!r}")
        values[key] = _coerce(value, keys[key], f"{where} {key!r}")
        if key in _CHOICES and values[key] not in _CHOICES[key]:
            raise ConfigError(f"{where} {key!r} must be one of {', '.join(_CHOICES[key])}, got {value!r}")
        if not isinstance(values[key], (str, dict)) and keys[key] != "pricing":
            _check_range(key, values[key], f"{where} {key!r}")
    return values


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML config file; a malformed or unreadable file is a ConfigError naming it."""
    import tomllib

    try:
        with path.open("rb") as handle:
            # Decimal, not float: a fee or a margin typed as a number keeps its exact text.
            return tomllib.load(handle, parse_float=Decimal)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except UnicodeDecodeError as error:  # TOML is UTF-8; a Latin-1 editor's é is not
        line = error.object[: error.start].count(b"\n") + 1
        raise ConfigError(f"config file {path} is not UTF-8 text: byte 0x{error.object[error.start]:02x} "
                          f"at line {line}; save it as UTF-8") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None


def load_settings(
    config: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Any = None,
) -> Settings:
    """Merge defaults, the config file, the environment and command-line ``overrides``."""
    environ = os.environ if environ is None else environ
    settings = Settings()
    sources: dict[str, str] = {}
    path = find_config_file(config, environ)
    if path is not None:
        data = read_config_file(path)
        settings = _apply_table(settings, data, str(path), warn)
        settings = replace(settings, config_path=str(path))
        sources.update(dict.fromkeys(_dotted(data), f"file {path}"))
        if warn is not None and settings.token and _readable_by_others(path):
            warn(f"warning: {path} holds a token and is readable by group or others (chmod 600 it)")
    from_env: dict[str, Any] = {}
    for name, value in environ.items():
        if name in ENV_VARS and value != "":
            section, _, key = ENV_VARS[name].rpartition(".")
            (from_env.setdefault(section, {}) if section else from_env)[key] = value
    if from_env:
        settings = _apply_table(settings, from_env, "environment")
        sources.update({ENV_VARS[k]: f"env {k}" for k, v in environ.items() if k in ENV_VARS and v != ""})
    if overrides:
        given = {k: v for k, v in overrides.items() if v is not None}
        if given:
            settings = _apply_table(settings, given, "options")
            sources.update({k: f"option --{k.replace('_', '-')}" for k in given})
    _validate(settings)
    return replace(settings, sources=sources)


def _dotted(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted names of the values in a parsed table (``limits.global.limit``); deprecated
    keys, which set nothing, left out."""
    names: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            names.extend(_dotted(value, f"{prefix}{key}."))
        elif key not in _DEPRECATED_TOP and key not in _DEPRECATED_LIMIT:
            names.append(f"{prefix}{key}")
    return names


def _validate(settings: Settings) -> None:
    from bmctl.api.markets import ENVIRONMENTS, get_market
    from bmctl.errors import UsageError

    try:
        get_market(settings.market)
    except UsageError as error:
        raise ConfigError(error.message) from None
    if settings.env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {settings.env!r} (use prod or preprod)")
    if settings.base_url and not settings.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"base_url must start with http:// or https://, got {settings.base_url!r}")
    url = settings.budget.url
    if url and not url.lower().startswith(tuple(f"{scheme}://" for scheme in BUDGET_SCHEMES)):
        raise ConfigError(f"[budget] url must start with redis://, rediss:// or unix://, got "
                          f"{url_without_password(url)!r}")

    from bmctl.pricing.costs import check_pricing

    check_pricing(settings.pricing)  # [pricing]: fees, margins and caps that make sense


#: The schemes of a ``[budget] url``: the ledger in Redis (or Valkey).
BUDGET_SCHEMES = ("redis", "rediss", "unix")


def url_without_password(url: str) -> str:
    """A store URL as shown to people: any password (userinfo or query) left out."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{host}" if user else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def write_private(path: Path, text: str, *, force: bool = False) -> None:
    """Write a file that may hold a token: mode 0600 from creation, never over another without force."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} already exists (use --force to overwrite it)") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
