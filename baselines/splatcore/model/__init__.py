"""Model components shared by the vendored baselines (Gaussian adapter, ...)."""
