"""Evaluation library behind ``python -m temporal_nsr.evaluate``.

protocol     which (source, target) pairs of a held-out split are scored
predictors   one class per column (model, controls, baselines), listed in conf/evaluate.yaml
metrics      per-image PSNR, SSIM, silhouette IoU
estimator    the deformation parameters an image shows, by matching the generator's images
split        one split scored end to end (pairs -> predictions -> per-image rows), in parts
results      typed scores per (split, group, predictor); results.json read and written
report       markdown tables, CSV, figures, saved images, written atomically
"""
