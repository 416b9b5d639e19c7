"""The package version, kept in a module of the lowest layer so that every layer can record it
(the zoo writes it into each entry's metadata) without importing the package's ``__init__``."""

__version__ = "0.1.0"
