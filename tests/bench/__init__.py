"""Tests of the benchmark harness (bench/): where results go, floors beside figures."""
