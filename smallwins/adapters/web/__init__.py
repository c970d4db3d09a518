"""Built-in plugin ``web``: tracked links, QR codes, forms and signed webhooks in; the widget out.

Importing the plugin registers its tables (``models``) with the store's metadata; the web
libraries themselves (Starlette, uvicorn, segno) load only when the server or a command runs.
"""

from __future__ import annotations

from smallwins.adapters.web import models as models
from smallwins.adapters.web.plugin import smallwins_register_sources

__all__ = ["models", "smallwins_register_sources"]
