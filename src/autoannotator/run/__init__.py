"""The run core: one stage per concern, behind `autoannotator.pipeline.Annotator`.

```
settings ──► pool ──────────────► router ──────────► review (+ probe) ──► loop ──► summary
(RunSettings: (specialists,        (budget, target      (ask, combine with    (chunks,     (RunSummary,
 every option  aggregator bound     threshold, audit     the measured          refinement,  output table)
 and refusal)  to their versions,   draw: one path for   confusion)            resume)
               one cached           every executor,
               cross-fit)           estimate, probe)
                      └────────► guarantee (certificates, guard events: typed store tables)
```

- `settings`: `RunSettings`, every option validated once, every refusal in one place.
- `specs`: the pool as the caller names it (kinds, specs, ready-made instances).
- `pool`: `Pool`, the specialists, the learned rule's aggregator and the one scoring path (the executor).
- `router`: `Router`, which scored items go to review.
- `guarantee`: `Guarantee`, --target-accuracy's certificates, threshold in force and audit guard.
- `review`, `probing`: `Review` (ask, combine) and `Probe` (the reviewer probe).
- `loop`: `Loop`, ready the pool, then chunk by chunk; refinement and re-scoring.
- `summary`, `estimating`: `RunSummary` and the output table; `estimate_run`.

Run state that decisions depend on lives in the run store's typed tables (`autoannotator.store.run_state`).
"""
