"""What a command's ``--help`` shows beyond its declarations: words for metavars (``ID...``,
``PRICE``, ``SECONDS``) instead of Python types, number ranges in words, and one closing line
naming the global options. Applied once, where commands are built (``main.load_command``), so
options added to any command later are covered without touching their declarations."""

from __future__ import annotations

from typing import Any, Iterable

from typer.core import TyperArgument, TyperOption

# Parameter name (the Python name click gives it) -> the word its help shows.
WORDS: dict[str, str] = {
    "ids": "ID",
    "listing_id": "ID",
    "listing": "ID",
    "price": "PRICE",
    "min_price": "PRICE",
    "floor": "PRICE",
    "ceiling": "PRICE",
    "step": "PRICE",
    "file": "FILE",
    "seed": "FILE",
    "config": "FILE",
    "path": "PATH",
    "db": "PATH",
    "n": "N",
    "limit": "N",
    "max_raises": "N",
    "min_quantity": "N",
    "publication_state": "N",
    "listings": "N",
    "number": "N",
    "port": "PORT",
    "settle": "SECONDS",
    "lock_timeout": "SECONDS",
    "deadline": "DURATION",
    "since": "WHEN",
    "older_than": "WHEN",
    "until": "WHEN",
    "market": "MARKET",
    "bucket": "BUCKET",
    "status": "STATUS",
    "run": "RUN_ID",
    "run_id": "RUN_ID",
    "base_url": "URL",
    "format": "FORMAT",
    "env": "ENV",
    "token": "TOKEN",
    "faults": "FAULTS",
    "drift": "DRIFT",
}

_SECONDS_HINTS = ("seconds", "timeout", "settle", "wait", "delay", "interval")


def metavar_for(param: Any) -> str:
    """The word a parameter's value is shown as: from ``WORDS``, else from its type."""
    name = str(param.name or "value")
    if name in WORDS:
        return WORDS[name]
    kind = _kind(param)
    if kind == "choice":
        return "[" + "|".join(str(c) for c in _choices(param)) + "]"
    if kind == "int":
        return "N"
    if kind == "float":
        return "SECONDS" if any(hint in name for hint in _SECONDS_HINTS) else "NUMBER"
    if kind == "path":
        return "PATH"
    return name.upper()


def _kind(param: Any) -> str:
    """int, float, path, choice or text, from Typer's type descriptor or click's type."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        if getattr(descriptor, "is_choice", False):
            return "choice"
        if getattr(descriptor, "is_path", False):
            return "path"
        annotation = descriptor.annotation
        args = getattr(annotation, "__args__", None)
        if args:  # list[int], Optional[...] already unwrapped by Typer
            annotation = args[0]
        if annotation is bool:
            return "text"
        if annotation is int:
            return "int"
        if annotation is float:
            return "float"
        return "text"
    type_name = type(getattr(param, "type", None)).__name__.lower()  # click types
    for kind in ("choice", "path", "int", "float"):
        if kind in type_name:
            return kind
    return "text"


def _choices(param: Any) -> Iterable[Any]:
    descriptor = getattr(param, "type_descriptor", None)
    choices = getattr(descriptor, "choices", None) or getattr(getattr(param, "type", None), "choices", None)
    return [getattr(choice, "value", choice) for choice in choices or ()]


def range_in_words(low: float | None, high: float | None) -> str | None:
    """``at least 1``, ``at most 4``, ``0 to 65535``; nothing for a bare ``x >= 0`` (a count
    or a duration is never negative: saying so is noise)."""
    def show(value: float) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    if low is not None and high is not None:
        return f"{show(low)} to {show(high)}"
    if high is not None:
        return f"at most {show(high)}"
    if low is not None and low != 0:
        return f"at least {show(low)}"
    return None


class WordArgument(TyperArgument):
    """An argument whose help shows its word (``ID...``), without a Python type after it."""

    def _rich_display_name(self) -> str:
        name = self.display_name_raw
        return f"{name}..." if self.nargs != 1 else name

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _get_number_range_help_str(self) -> str | None:
        return range_in_words(self.min, self.max)


class WordOption(TyperOption):
    """An option whose help shows its word (``--settle SECONDS``) and its range in words."""

    def _get_number_range_help_str(self) -> str | None:
        if self.count:
            return None
        return range_in_words(self.min, self.max)


def apply_words(command: Any, epilog: str | None = None) -> Any:
    """Give every parameter of ``command`` (and of its subcommands) a word for a metavar and
    its range in words, and end each help with ``epilog``."""
    for param in getattr(command, "params", ()):
        takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
        if param.metavar is None and takes_value:
            param.metavar = metavar_for(param)
        # Same object, a subclass that only changes how its help reads (Typer builds the
        # parameters itself, so the class cannot be chosen at declaration).
        if type(param) is TyperArgument:
            param.__class__ = WordArgument
        elif type(param) is TyperOption:
            param.__class__ = WordOption
    if epilog and not command.epilog:
        command.epilog = epilog
    for sub in getattr(command, "commands", {}).values():
        apply_words(sub, epilog)
    return command


def global_options_line(params: Iterable[Any]) -> str:
    """``Global options (before or after the command): --format, ...; see bmctl --help.``,
    from the app's own declaration of its global options (eager ones like --version excluded)."""
    names: list[str] = []
    for param in params:
        if getattr(param, "is_eager", False) or getattr(param, "param_type_name", "") != "option":
            continue
        opts = sorted([*param.opts, *(getattr(param, "secondary_opts", None) or ())], key=len)
        names.append("/".join(opts))
    # One paragraph: click wraps it to the terminal's width like the rest of the help.
    return f"Global options (before or after the command): {', '.join(names)}; see bmctl --help."

