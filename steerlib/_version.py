"""The library version, in a module of its own so that no steerlib module has to import
the package root (which imports them) to read it."""

__version__ = "0.1.0"
