"""bmctl: a command-line repricing tool for Back Market sellers."""

__version__ = "0.1.0"
