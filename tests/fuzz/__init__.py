"""Fuzz targets over what the server reads from strangers (``make fuzz``; a short run in
``tests/test_fuzz_targets.py``). One module per family; each names its documented refusals."""
