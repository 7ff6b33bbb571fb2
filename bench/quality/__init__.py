"""Quality benchmark: train under fixed time budgets on the UCI digits, score in a digit classifier's features.

The 1,797 scikit-learn digits (8x8 scans) are upscaled to 64x64 RGB and written twice (`data`): as a
Stanford-Dogs-shaped archive (10 "breeds", one box per image) that `kit prepare` reads, and as an image folder for
the baseline (`baseline`), a pytorch/examples DCGAN written in the usual notebook style. A small CNN (`classifier`),
trained once on a split of the digits and cached, is the feature network: digit-FID is the Frechet distance in its
penultimate features (computed by kit.metrics with the classifier passed in as the extractor), class bits the
entropy of its predicted classes, d the MiFID memorisation distance in the same features, and the asked-for digit
rate the share of a conditional model's samples read as the digit asked for. `runner` trains each config under each
budget (`kit train` as a subprocess whose budget includes its start and tail) and scores its snapshots; `report`
writes the table and plots. The command is `python bench/quality.py`.
"""
