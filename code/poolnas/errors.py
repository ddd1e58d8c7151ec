"""The error types the CLI prints as one line: bad user input (exit 2), and a file that could not be written
(exit 1)."""


class UsageError(ValueError):
    """Input the user can fix (a bad config name, an unknown dataset, a missing file).

    The message must say what was wrong and what is allowed, in one line.
    """


class WriteFailed(OSError):
    """A result, checkpoint or cache file could not be written (a full disk, a quota): nothing else was changed."""

    # what the command line adds, by command: what was kept and what to do
    _AGAIN = "free space and give the same command again"
    NEXT = {"train": f"; {_AGAIN}: the run resumes from its last checkpoint", "search": f"; {_AGAIN}: the run "
            "resumes from its last checkpoint", "data": f"; the partial cache was removed: {_AGAIN}"}

    def __init__(self, path, err: OSError):
        super().__init__(err.errno, f"cannot write {path} ({err.strerror or err})")
        self.path = path

    def __str__(self) -> str:
        return self.strerror
