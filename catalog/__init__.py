"""Datasets: metadata, package import, hosted tables and the records query engine."""
