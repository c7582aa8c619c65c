"""splatcore: the core shared by the vendored feed-forward splatting baselines.

Dataset formats and view samplers, geometry, the Gaussian adapter, the splatting decoder (gsplat on
CUDA, exact PyTorch on CPU), the Lightning model wrapper and the metrics. It knows nothing about
PM-Loss except through the lines that ``patches/`` adds.
"""
