"""Metrics: feature extractors (FID Inception), FID / memorisation distance / MiFID, the `score` command."""
