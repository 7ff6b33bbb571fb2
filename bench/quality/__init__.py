"""Quality benchmark: train under fixed time budgets on a real set, score in that set's classifier's features.

Two real sets (`data`, `--set digits|photos`): the 1,797 scikit-learn digits (8x8 scans upscaled to 64x64 RGB,
10 classes) and 4,050 64x64 crops of the three photographs scikit-learn and matplotlib ship (27 classes: photo ×
3×3 region). Each is written twice: as a Stanford-Dogs-shaped archive (one "breed" a class, one box per image) that
`kit prepare` reads, and as an image folder for the baseline (`baseline`), a pytorch/examples DCGAN written in the
usual notebook style. A small CNN (`classifier`), trained once on the set less its held-out part and cached, is the
feature network: FID is the Frechet distance in its penultimate features (computed by kit.metrics with the
classifier passed in as the extractor), class bits the entropy of its predicted classes, d the MiFID memorisation
distance in the same features, and the asked-for rate the share of a conditional model's samples read as the class
asked for. `runner` trains each config under each budget (`kit train` as a subprocess whose budget includes its start
and tail) and scores its snapshots; `report` writes the table and plots. The command is `python bench/quality.py`.
"""
