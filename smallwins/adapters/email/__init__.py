"""Built-in plugin ``email``: newsletter replies in (IMAP source ``email``), the newsletter block
out (presenter ``newsletter``, command ``smallwins newsletter``).

Importing the plugin loads no mail or template library: imapclient and Jinja2 are imported
when the capture task or the presenter starts, so the rest works without the ``email`` extra.
"""

from __future__ import annotations

from smallwins.adapters.email.plugin import smallwins_register_presenters, smallwins_register_sources

__all__ = ["smallwins_register_presenters", "smallwins_register_sources"]
