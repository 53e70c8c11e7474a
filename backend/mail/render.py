"""Rendering emails from the Jinja templates in `templates/email/`.

Two environments: the HTML part is autoescaped, the text part is not (an `&` in a
username must reach a plain-text reader as `&`, not `&amp;`).
"""

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class EmailRenderer:
    """Templates are read once: checking each file's mtime at every render cost three
    `stat` calls per email while a backlog drains. A changed template needs a restart."""

    def __init__(self, templates_dir: Path) -> None:
        self._loader = FileSystemLoader(templates_dir / "email")

    @cached_property
    def _html_env(self) -> Environment:
        return Environment(
            loader=self._loader, autoescape=True, undefined=StrictUndefined, auto_reload=False
        )

    @cached_property
    def _text_env(self) -> Environment:
        return Environment(
            loader=self._loader,
            autoescape=False,
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=False,
        )

    def render(self, name: str, **context: object) -> RenderedEmail:
        """Render `<name>.subject.txt`, `<name>.txt` and `<name>.html` with one context."""
        subject = self._text_env.get_template(f"{name}.subject.txt").render(**context)
        return RenderedEmail(
            subject=" ".join(subject.split()),
            text=self._text_env.get_template(f"{name}.txt").render(**context),
            html=self._html_env.get_template(f"{name}.html").render(**context),
        )
