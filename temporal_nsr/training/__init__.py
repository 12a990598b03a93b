"""Training library behind ``python -m temporal_nsr.train``.

fit            train(cfg): seed, instantiate data, model, loggers and trainer, fit, test, metrics
module         TemporalNSRModule: training, validation and test steps around a SceneRenderer
losses         LossTerms and the objective (reconstruction, SSIM, temporal smoothness)
callbacks      LogNovelViews: image grids and time sweeps sent to the loggers and run folder
budget         BudgetCosineLR, WallClock: a schedule that ends with the budget; wall clock
checkpointing  atomic checkpoints, a checkpoint on every stop, ``ckpt_path`` lookup
loggers        Lightning's CSV / TensorBoard loggers with their history kept across resumes
sweep          per-job results, the multirun summary (a Hydra callback), Optuna's storage
"""
