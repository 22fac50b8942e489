"""asv benchmarks of pagealloc (see README.md, "Benchmarking with asv").

bench_replay: replays of the bundled traces, locked vs unlocked scavenging.
bench_model: microbenchmarks of the page allocator model.
"""
