"""The adapter layer: what the PM-Loss patches hook into the vendored baselines.

The baselines' loss registry (``splatcore.loss``) gets one more entry, ``pm``
(:class:`~pmsplat.adapter.loss_pm.LossPm`), through the lines that ``patches/splatcore/`` adds;
everything else (the teacher, the loss arithmetic, logging statistics) lives here and in
:mod:`pmsplat.loss`, so the baseline diff stays a few lines long (``pmsplat patches diff``).
"""

from .loss_pm import LossPm, LossPmCfg, LossPmCfgWrapper

__all__ = ["LossPm", "LossPmCfg", "LossPmCfgWrapper"]
