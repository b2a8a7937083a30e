"""Configuration from the environment: one typed, immutable Settings object (12-factor)."""

from settings.config import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
