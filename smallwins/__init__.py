"""smallwins: one achievement system for a creator community, across every platform."""

__version__ = "0.1.0"
