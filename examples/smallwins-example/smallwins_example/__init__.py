"""An example third-party smallwins plugin (see plugin.py and this folder's README)."""
