"""The error types the CLI prints as one line: bad user input (exit 2), and a file that could not be written
(exit 1)."""


class UsageError(ValueError):
    """Input the user can fix (a bad config name, an unknown dataset, a missing file).

    The message must say what was wrong and what is allowed, in one line.
    """


class WriteFailed(OSError):
    """A result, checkpoint or cache file could not be written (a full disk, a quota): nothing else was changed."""

    # what the command line adds, by command: what was kept and what to do
    _RESUMES = "; free space and give the same command again: the run resumes from its last checkpoint"
    NEXT = {"train": _RESUMES, "search": _RESUMES,
            "data": "; the partial cache was removed: free space and give the same command again"}

    def __init__(self, path, err: OSError):
        super().__init__(err.errno, f"cannot write {path} ({err.strerror or err})")
        self.path = path

    def __str__(self) -> str:
        return self.strerror
