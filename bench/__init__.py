"""Benchmarks of statelang against its peer (moto's Step Functions interpreter), side by side.

``python -m bench`` runs the shapes in ``bench/machines`` through every runner, each in a process
of its own with their samples interleaved, and prints transitions per second and the ratios
statelang/moto; see ``bench/__main__.py`` for how.
"""
