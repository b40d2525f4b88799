"""Benchmarks (`make bench`): each reports ratios against a bare baseline measured in the same run."""
