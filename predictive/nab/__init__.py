"""NAB (Numenta Anomaly Benchmark) corpus loading, scoring and evaluation.

The scorer is the ruler every detector change is measured with, so it follows
NAB's published sweeper (nab/sweeper.py, NAB v1.1) rule for rule; see
:mod:`predictive.nab.scoring`.
"""
