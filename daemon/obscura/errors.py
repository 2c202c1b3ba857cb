"""Domain errors. Transport layers map these to status codes in one place."""

from obscura_client.errors import InvalidInput, ObscuraError

__all__ = ["ConfigError", "InvalidInput", "ModelStoreError", "ObscuraError"]


class ConfigError(ObscuraError):
    """A configuration value is wrong; the message names the key."""


class ModelStoreError(ObscuraError):
    """A model is missing, corrupt or cannot be fetched; the message says what to run."""
