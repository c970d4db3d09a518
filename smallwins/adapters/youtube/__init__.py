"""Built-in plugin ``youtube``: a creator's YouTube comments as contributions (source ``youtube``,
commands ``smallwins youtube status`` and ``smallwins youtube backfill``).

Importing the plugin loads no Google library: google-api-python-client (the ``youtube`` extra)
is imported when the capture task or a command starts.
"""

from __future__ import annotations

from smallwins.adapters.youtube.plugin import smallwins_register_sources

__all__ = ["smallwins_register_sources"]
