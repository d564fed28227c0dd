"""Speed benchmark of this project's trainer against torch-rechub and deepctr-torch (`make bench`).

See ``benchmarks/README.md`` for what is measured and how.
"""
