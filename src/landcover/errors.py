"""Errors the CLI turns into a one-line message and a non-zero exit."""


class LandcoverError(Exception):
    """Expected failure with a message that names the file or key and the problem."""
