"""Errors the CLI turns into a one-line message and a non-zero exit."""


class LandcoverError(Exception):
    """Expected failure with a message that names the file or key and the problem."""


def report_failures(command: str, failed: dict[str, str]) -> int:
    """Per-tile commands: each failed tile on its own stderr line, then the one-line error; the exit code."""
    import sys

    if not failed:
        return 0
    for key, reason in sorted(failed.items()):
        print(f"  failed {key}: {reason}", file=sys.stderr)
    print(f"landcover {command}: error: {len(failed)} tile(s) failed: {', '.join(sorted(failed))}", file=sys.stderr)
    return 1
