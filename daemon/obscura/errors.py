"""Domain errors. Transport layers map these to status codes in one place."""


class ObscuraError(Exception):
    """Base class of every error Obscura raises on purpose."""


class InvalidInput(ObscuraError):
    """The caller sent something unusable; the message names the problem."""


class ConfigError(ObscuraError):
    """A configuration value is wrong; the message names the key."""


class ModelStoreError(ObscuraError):
    """A model is missing, corrupt or cannot be fetched; the message says what to run."""


class ModelNotReady(ObscuraError):
    """Models are not loaded yet."""
