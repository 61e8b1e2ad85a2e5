"""racentre: the application shell of the RA centre - configuration, CLI, web app factory, demo."""
from racentre.config import Config, ConfigError, load_config

__all__ = ["Config", "ConfigError", "load_config"]
