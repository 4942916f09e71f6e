"""Configuration, ``run_search``, resume and the ``mqat`` command line."""
