"""Errors a user can fix. The CLI prints them as one line and exits non-zero, with no traceback."""


class BaylingError(Exception):
    """A problem with the user's input (recipe, corpus file, output path), not a bug.

    The message is one line that names the file, line or key and says what was expected.
    """


class RecipeError(BaylingError):
    """The recipe file or an override is invalid."""


class CorpusError(BaylingError):
    """A corpus file is missing, malformed or inconsistent with its siblings."""


class UnknownLanguageError(BaylingError):
    """A language code or name that the registry cannot resolve."""


class OutputError(BaylingError):
    """An output folder or file (or a build's work folder) that cannot be created or written.

    Its own class so that a build stopped by one keeps its finished work for ``--resume``.
    """
