"""dogkit: prepare Stanford Dogs, train a GAN inside a Kaggle kernel's budget, score MiFID, package."""
__version__ = "0.1.0"
