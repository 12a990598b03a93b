"""Evaluation library behind ``python -m temporal_nsr.evaluate``.

protocol     which (source, target) pairs of a held-out split are scored
predictors   the model, static, shuffled_source, other_object, baseline, copy, mean
metrics      per-image PSNR, SSIM, silhouette IoU
bend         the bend (and twist) an image shows, by matching the generator's images
split        one split scored end to end (pairs -> predictions -> per-image rows)
report       summaries, markdown tables, CSV, figures, written atomically
"""
