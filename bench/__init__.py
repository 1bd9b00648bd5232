"""Benchmarks (scripts, not tests): run `bench/run_all.sh`; results go to docs/benchmarks.md."""
