"""Errors that stop a stage with one clear message (the CLI prints them without a traceback)."""


class EdgelearnError(Exception):
    """A problem the user can fix; the message names the file or key and what was expected."""


class ConfigError(EdgelearnError):
    """params.yaml (or another config file) is missing, malformed or has a bad key."""


class CorpusError(EdgelearnError):
    """The corpus as a whole is unusable (missing folder, unknown layout, no usable speakers)."""
