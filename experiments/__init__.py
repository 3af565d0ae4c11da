"""Runnable experiments on top of vai_jax, one folder each: ``main.py`` (the command line of
``cli.py``: ``--workdir``, ``--config``), the importable logic (``train.py`` / ``run.py``),
``plots.py``, ``configs/`` and a ``README.md`` with the measured table and figure. Run one as ``python experiments/<name>/main.py --workdir W``."""
