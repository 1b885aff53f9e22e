"""Errors a user can act on. Front ends show their message as is (CLI: one `error:` line, exit 2)."""


class InputError(Exception):
    """Bad input from the user: a file, a grid, painted labels, an option. Never a bug."""


class Cancelled(Exception):
    """The user cancelled a long operation; nothing was written."""


def describe(exc: BaseException, out_of_memory: str, details: str) -> str:
    """What a front end shows for a failed job: the user's own mistake as is, memory with the front end's advice,
    anything else as a bug, saying where that front end put its details."""
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"out of memory: {out_of_memory}"
    return f"unexpected failure ({type(exc).__name__}: {exc}); {details}"


def first_line(exc: BaseException) -> str:
    """First meaningful line of a library's error, so a user sees one line, not an ITK dump."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "ERROR" in line.upper() or "description" in line.lower():
            return line[:200]
    return (lines[-1] if lines else type(exc).__name__)[:200]
