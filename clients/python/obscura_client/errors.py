"""The errors clients and the daemon share. Transport layers map them to status codes."""


class ObscuraError(Exception):
    """Base class of every error Obscura raises on purpose."""


class InvalidInput(ObscuraError):
    """The caller sent something unusable; the message names the problem."""
