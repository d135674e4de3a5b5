"""The benchmark harness (``make bench``); see BENCHMARKS.md."""
