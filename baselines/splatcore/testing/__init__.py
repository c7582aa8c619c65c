"""Test and verification helpers shared by the vendored baselines (parity with upstream)."""
