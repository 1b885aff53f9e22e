"""Errors a user can act on. Front ends show their message as is (CLI: one `error:` line, exit 2)."""


class InputError(Exception):
    """Bad input from the user: a file, a grid, painted labels, an option. Never a bug."""


class Cancelled(Exception):
    """The user cancelled a long operation; nothing was written."""
