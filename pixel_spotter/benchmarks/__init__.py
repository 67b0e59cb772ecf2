"""Benchmarks: scripts that print figures (time to exact, throughput, the pipeline overhead, the spot fit
speed); never timed tests."""
