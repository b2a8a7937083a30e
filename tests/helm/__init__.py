"""Tests of the Helm charts, the container images and their cleanliness under our own rules."""
