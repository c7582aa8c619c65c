"""The adapter layer: what the PM-Loss patches hook into the vendored baselines.

The baselines' loss registry (``splatcore.loss``) gets one more entry, ``pm``
(:class:`~pmsplat.adapter.loss_pm.LossPm`), and the fork's other options (:mod:`.fork`: resize
filter, large-sample skip, DepthSplat offset modes and confidence channel) are reached through the
few lines that ``patches/`` adds; everything else (the teacher, the loss arithmetic, logging
statistics) lives here and in :mod:`pmsplat.loss`, so the baseline diff stays short
(``pmsplat patches diff``).

Names are loaded on first access: the baselines import :mod:`.fork` and :mod:`.loss_pm` while they
load, and must not pull in the rest of this package then.
"""

from importlib import import_module
from typing import Any

_LAZY = {"LossPm": ".loss_pm", "LossPmCfg": ".loss_pm", "LossPmCfgWrapper": ".loss_pm"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
