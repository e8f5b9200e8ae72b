"""Proof in numbers: benchmarks against the provider's reference flow, a kill -9
soak test and fuzzing of the running app.

* ``python -m tests.bench.benchmarks [--full]`` prints a Markdown table (``--full``
  also saves it to ``tests/bench/RESULTS.md``);
* ``python -m tests.bench.soak [--purchases N] [--kills K] [--fault-rate R] [--seed S]``
  exits non-zero if any invariant is broken;
* the CI variants (``test_bench_smoke.py``, ``test_soak_smoke.py``, ``test_fuzz.py``)
  run in the normal suite with small sizes and assert only invariants.
"""
