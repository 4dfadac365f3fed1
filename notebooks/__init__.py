"""Not a Python package to import: this file only gives notebooks/conftest.py a unique module name.

pytest imports a conftest.py outside a package as the module ``conftest``, so it would replace
tests/conftest.py (whose helpers the tests import with ``from conftest import ...``).
"""
