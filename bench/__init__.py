"""Benchmarks that print tables and write ``bench/results/<name>.json``: ``python -m bench.NAME``.

Each module runs the project's own stage code (imported from the installed ``components`` and
``flows`` packages) on the pipeline's outputs, so run the pipeline first (``make run``).
``python -m bench`` lists them; ``make bench`` runs the ones that take no arguments.
"""
