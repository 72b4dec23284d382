"""Datasets: the tables ``sim-engine generate`` writes, their schema, formats and manifest."""
