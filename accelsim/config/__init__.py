"""Hardware configuration: YAML -> validated, frozen :class:`HwConfig`."""

from accelsim.config.hw import HwConfig, load_hw
from accelsim.config.yaml_io import ConfigError

__all__ = ["ConfigError", "HwConfig", "load_hw"]
