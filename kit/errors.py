"""The one exception type for bad user input: the CLI prints its message as a single line."""


class UserError(Exception):
    """A problem with the user's files or flags; the message names the file and the fix."""
