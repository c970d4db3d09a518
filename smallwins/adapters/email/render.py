"""Rendering the newsletter block with Jinja2: HTML that survives email clients, and plain text.

HTML templates (``*.html``) are autoescaped, so a member who calls themselves ``<script>`` is
printed, never run; text templates (``*.txt``) are plain text and not escaped. An operator
overrides any template by putting a file of the same name in ``template_dir``; the built-in ones
(``templates/`` next to this module) fill in the rest. Email-safe means: tables for layout,
inline styles only (no ``<style>``, no classes), no scripts, no web fonts, width 600 px.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from smallwins.adapters.email.newsletter import IssueBlock, Recipient

TEMPLATES = ("block.html", "block.txt", "recipient.html", "recipient.txt", "email.html", "email.txt")


class TemplateProblem(ValueError):
    """A template that does not load or render; the message names the template and line."""


@dataclass(frozen=True)
class Rendered:
    html: str
    text: str


def environment(template_dir: Path | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        if not template_dir.is_dir():
            raise TemplateProblem(f"template_dir {template_dir} is not a folder")
        loaders.append(jinja2.FileSystemLoader(str(template_dir)))
    loaders.append(jinja2.PackageLoader("smallwins.adapters.email", "templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["day"] = lambda moment: moment.strftime("%d %b %Y").lstrip("0")
    return env


class Renderer:
    """Renders blocks from one template set."""

    def __init__(self, template_dir: Path | None = None) -> None:
        self.env = environment(template_dir)

    def _render(self, name: str, **values: Any) -> str:
        try:
            return self.env.get_template(name).render(**values)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(f"template {exc.filename or name}, line {exc.lineno}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise TemplateProblem(f"template {name}: {exc}") from None

    def block(self, block: IssueBlock) -> Rendered:
        """The community block every reader gets (paste it into the issue)."""
        return Rendered(self._render("block.html", block=block), self._render("block.txt", block=block))

    def recipient(self, block: IssueBlock | None, reader: Recipient) -> Rendered:
        """One reader's own progress (a merge field's value, or one file per recipient)."""
        return Rendered(
            self._render("recipient.html", block=block, reader=reader),
            self._render("recipient.txt", block=block, reader=reader),
        )

    def email(self, block: IssueBlock, reader: Recipient) -> Rendered:
        """A whole message for one reader: the community block and their own progress."""
        common, own = self.block(block), self.recipient(block, reader)
        return Rendered(
            self._render(
                "email.html", block=block, reader=reader, community=Markup(common.html), personal=Markup(own.html)
            ),
            self._render("email.txt", block=block, reader=reader, community=common.text, personal=own.text),
        )
