"""Fine-tunes judges toward human label distributions (see trainer/README.md).

The folder is ``trainer/``; it installs as ``distjudge_trainer`` (``trainer`` is another
PyPI project's import name).
"""
