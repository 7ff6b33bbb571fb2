"""Kaggle kernels: `build` makes and pushes them (never shipped); `runtime` and `preflight` run inside them."""
