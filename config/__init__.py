"""Typed settings for Lifeline (environment prefix ``LIFELINE_``)."""

from config.settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]
