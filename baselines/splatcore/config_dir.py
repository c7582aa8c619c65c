"""Where the Hydra tree lives, and the baselines it offers (no heavy imports: the command line
reads these to build its choices)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def config_directory(config_dir: str | Path | None = None) -> Path:
    """The Hydra config directory: ``config_dir``, else ``$PMSPLAT_CONFIG_DIR``, else config/."""
    return Path(config_dir or os.environ.get("PMSPLAT_CONFIG_DIR") or DEFAULT_CONFIG_DIR).resolve()


def available_baselines(config_dir: str | Path | None = None) -> list[str]:
    """The baselines of the config tree: the options of its ``baseline/`` group (each the name of
    the package that registers its encoders in :mod:`splatcore.registry`)."""
    return sorted(path.stem for path in (config_directory(config_dir) / "baseline").glob("*.yaml"))


__all__ = ["DEFAULT_CONFIG_DIR", "available_baselines", "config_directory"]
