"""Data: readers for every layout, crops, the prepared cache, augmentation, demo archives."""
