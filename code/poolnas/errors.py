"""The one error type for bad user input: the CLI prints its message as one line and exits 2."""


class UsageError(ValueError):
    """Input the user can fix (a bad config name, an unknown dataset, a missing file).

    The message must say what was wrong and what is allowed, in one line.
    """
