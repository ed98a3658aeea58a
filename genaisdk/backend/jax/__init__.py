"""The JAX backend: trains the spec'd model for real, data-parallel, fully sharded and/or
tensor-parallel.

Importing this package imports nothing heavy; each module imports JAX itself.

Compute core (the API the training loop, checkpoints and `genai measure` build on):

``config.RunConfig`` (frozen attrs)
    dims, architecture, objective, optimizer, precision, strategy (records), devices =
    data_parallel × tensor_parallel, sequence_parallel, global_batch (sequences per
    optimizer step) = micro_batch (sequences per data-parallel group per micro-step) ×
    data_parallel × accumulation, seq_len, learning_rate, warmup_steps,
    total_steps, min_lr_ratio, weight_decay, grad_clip, seed, dp_impl ('jit' |
    'shard_map'), recompute ('none' | 'selective' | 'full'), optimizer_options.
    ``RunConfig.from_settings(settings, *, registry=None)`` builds the run of a plan from
    its ``genaisdk.planning.run_settings.RunSettings`` (the one bridge plan -> run);
    ``RunConfig.from_names(dims=..., architecture='decoder', strategy='fsdp', ...)`` builds
    one from registry names. Errors a user can fix raise ``config.BackendError`` (and
    ``config.UnsupportedError`` for what only the planner models: fp8, int8/int4 training).

``step.Trainer(config, mesh=None)``
    ``.mesh`` (a ('data', 'tensor') mesh of ``config.devices`` devices unless given),
    ``.init(seed=None) -> TrainState`` (created in its shardings),
    ``.train_step(state, batch) -> (state, metrics)`` (state donated; metrics: loss,
    grad_norm, lr, loss_scale, skipped, skipped_total, tokens; all scalars),
    ``.eval_step(state, batch) -> {loss, tokens}``,
    ``.state_shardings`` (a TrainState of NamedShardings), ``.batch_sharding``,
    ``.abstract_state()`` / ``.abstract_batch()`` (ShapeDtypeStructs with shardings),
    ``.lower()`` (the train step lowered on abstract inputs), ``.flops_per_step``,
    ``.row_length`` (packed tokens per row the objective wants: seq_len, or more for span
    corruption), ``.make_batch(rows, rng)`` (host-side numpy batch [accumulation,
    global_batch / accumulation, ...]), ``.put_batch(batch)`` (global device arrays from the
    same host batch on every process), ``.diagnostics`` (sharding warnings).
    ``step.TrainState``: step, params, opt_state, loss_scale (``loss_scale.LossScaleState``:
    scale, good_steps, skipped), rng — a registered dataclass pytree.

``objectives``: ``causal_lm``, ``masked_lm``, ``span_corruption`` factories
    (``factory(vocab_size=..., record=...)``) giving ``row_length``, ``make_batch(tokens,
    rng)``, ``batch_shapes``, ``loss_sum`` and ``loss(model_apply, params, batch, policy)``.

``model``: ``build(dims, family=...)`` → ``Transformer`` (parameter specs with logical
    axes, ``init``, ``apply``); ``layers``: attention, norms, positions, FFN.
``optimizers``: the optax factories named by optimizer records, the warmup + cosine
    schedule, global-norm clipping; ``quantized_adam``: 8-bit block-wise Adam.
``precision``: ``policy_from_record``; ``loss_scale``: the dynamic fp16 loss scaler.
``sharding``: mesh, logical-axis rules → NamedShardings, optimizer-state mirroring.
``measure``: ahead-of-time compiled memory and FLOPs of the planned step vs the plan.

Serving and evaluation (``genai generate``, ``genai eval``):

``runs``: ``resolve_model(MODEL)`` → ``LoadedModel`` (model, parameters of the latest good
    checkpoint, tokenizer, the run's data and task) from a run directory or a TrainResult;
    ``fresh_model(dims)`` for benchmarks.
``generate``: ``Generator(model, precision)`` (KV cache over the stacked layers, compiled
    prefill and while-loop decode, greedy / top-k / top-p sampling), ``generate(...)``,
    ``bench(...)``; ``quantize``: serving formats (a dtype cast, int8 per-channel, NF4).
``evaluate``: ``evaluate(model, data, task=..., precision=...)`` (loss, perplexity, bits
    per byte, task metrics; the training loop's held-out evaluation is its
    ``held_out_batches`` + ``lm_totals``).

A run (``train.train(spec, options)``), one module per job:

``options.TrainOptions``: everything about a run that is not in the spec (one frozen object
    shared by the command line, ``genaisdk.train`` and the backend); ``errors``: the
    ``TrainError`` family (a message and an exit status).
``run_folder``: the output folder (a slug under ``runs/``, only folders this tool wrote,
    the ``train.lock``, run.json); ``resume``: fresh, pretrained or resumed state, and
    whether a checkpoint belongs to the run; ``compile``: the one ahead-of-time lowering
    helper (``compile_step``) and the memory check against the device (``check_memory``);
    ``devices``: hardware records, peak FLOP/s and memory capacity of JAX devices;
    ``sources`` / ``data``: confined data paths and token batches; ``loop``: the steps;
    ``checkpoint``: orbax checkpoints, verified on restore.
"""
