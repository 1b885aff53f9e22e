"""The package version, in a module of its own so that the core can state it without importing the engine."""

__version__ = "0.1.0"
