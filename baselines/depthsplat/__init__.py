"""Vendored DepthSplat (CVPR 2025, arXiv 2410.13862), the October-2024 release (f08d378) that
PM-Loss forked, written from the paper and the parity data."""
