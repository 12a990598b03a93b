"""Benchmarks: data, training steps, inference, FLOPs against peak -> outputs/bench/bench.json.

Run as `make bench` (the full suite, under 10 minutes on 2 cores) or `make bench ARGS=--quick`
(a smoke run with the tiny model, what the tests use). Every entry runs in a fresh child
process, so its peak memory and allocator state are its own; `--only NAME ...` re-runs some
entries and updates them in an existing report. `--original PATH` (a checkout of the original
temporal ENR fork) adds the `original_*` entries, which time the original beside ours.
`--gpu` runs only the GPU step entries instead (`gpu_train_step_*`, written to
outputs/bench/bench_gpu.json and the children's stderr to bench_gpu.log beside it; without CUDA a
CPU rehearsal of them); `--budget-s S` starts no entry after S seconds.

Modules: `harness` (child processes, timing, memory and FLOP counts, the machine and its roof),
`data`, `training`, `inference`, `gpu` and `original` (the entries), `entries` (the table of them by
name), `report` (the JSON report, the original's figures, `vs_original`, the printed tables).

JSON keys: `machine` (cpu model, cores, torch version and threads, bf16_native, bf16_pays, cuda),
`quick`, `reference`, `vs_original` and `results`.

* `reference`: the original implementation's figures, `figures` (name -> value, `_s`, `_ms`,
  `_gb` by unit), their `source` and `notes`, from `benchmarks/original_reference.json`;
  `measured` is true when `original_*` entries of this report measured some of them
  (`measured_figures`), which then replace the shipped ones.
* `vs_original`: row -> `label`, `unit`, `original`, `ours` and `speedup` (original time / ours),
  the last two per precision (fp32, bf16), for each row where both are known: the 128 px
  `bend_20t` train step of 16 images, encode, novel view from a cached latent, image to novel
  view (`inference_bend_20t_*`, or `original_beside_ours_bend_20t` where it ran: then
  `interleaved: true`), and the 64 px train step of 16 images (`bend_20t_cpu`). Printed as a
  table after the entries.

`results` maps an entry name to a dict with `unit`, `median`, `min`, `max`, `repeats` plus:

* `peak_*`: GFLOP/s of a large matmul (torch.matmul, MKL) and of the same product as a 1x1
  convolution (oneDNN), fp32 and bf16; `peak_gflops` is the best of them (the roof).
* `train_step_<experiment>_b<images>_<fp32|bf16|bf16_ckpt>`: seconds per optimiser step
  (forward in both directions, loss, backward, Adam) on synthetic pairs, with the glibc heap
  kept as train() keeps it; `bf16` is `trainer.precision=bf16-mixed`, `_ckpt` adds
  `model.renderer.encoder.activation_checkpointing=true`; short steps vary more, so `repeats`
  is 10 when the warm-up step took under 1.5 s, 4 under 5 s, else 2; `pairs_per_s`, `images_per_s`,
  `peak_rss_mb` (the child's peak resident memory), `page_faults_per_step`, `gflop_per_step`
  (torch.utils.flop_counter) and `achieved_gflops`.
* `gpu_train_step_<experiment>_b<images>_<setting>` (`--gpu`): the same step on CUDA under a
  `benchmarks.gpu.Setting` (`bf16`, `fp32`, `_cl` channels-last, `_cudnn` cuDNN autotuning,
  `_compile` torch.compile, `_graphs` with CUDA graphs, `_ckpt` activation checkpointing; its
  fields are keys too): s/step over timed blocks between synchronisations, `steps_per_s`,
  `pairs_per_s`, `peak_memory_gib`, `peak_reserved_gib`, `warmup_s`, `gflop_per_step` and
  `achieved_gflops` (eager) or `compile_counters` and `compile_backend` (compiled); `fits:
  false` and `out_of_memory` (the message) for a step that does not fit; see docs/performance.md.
* `inference_<experiment>_<fp32|bf16>`: milliseconds; sub-dicts `encode_one_image`,
  `novel_view_from_cached_latent`, `turntable_36_views_per_view` (one call, 36 poses) and
  `image_to_novel_view`, each a summary; `gflop_encode`, `gflop_novel_view`, `achieved_gflops`.
* `compile_novel_view_<experiment>`: `compile_s` (first call) and the steady-state view time
  against eager.
* `viewer_update_<experiment>`: milliseconds of one viewer slider update (server side: rotate
  + render from the kept latent, bf16 where native).
* `onnx_<experiment>`: the ONNX export in onnxruntime vs eager PyTorch (fp32, same threads):
  `exported` and `eager` sub-dicts per path, `export_s`.
* `pairs_per_s_workers<N>`: train-loader throughput from the cache; `generate_128px`: dataset
  generation time.
* `original_inference_128px` (quick: 32 px): the original's `encode_one_image`,
  `novel_view_from_cached_latent` and `image_to_novel_view` in ms (eval, no_grad, fp32), sub-dicts
  as in `inference_*`; `original_train_step_b16_<64|128>px` (quick: `b4_32px`): seconds of one
  Adam step of its own forward on random pairs with an L1 loss on the renders, `images_per_s`,
  `peak_rss_mb`, `page_faults_per_step`. The 128 and 64 px ones replace the shipped figures in
  `reference`.
* `original_beside_ours_bend_20t` (`--original`, not quick): the original's three inference
  latencies and ours (`NovelViewRenderer`, fp32 and, where native, bf16) timed in the same
  interleaved rounds of one process: sub-dicts `original`, `fp32`, `bf16` (part -> summary in
  ms), `speedup` (precision -> part -> the original's median / ours) and `threads`. Where it
  ran, `vs_original` takes its inference rows from it (`interleaved: true`, starred in the
  printed table): separate entries minutes apart on a shared machine give ratios that say more
  about the neighbours than about the code.
"""
