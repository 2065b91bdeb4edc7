"""The one renderer of every HTML report: Jinja2 templates with autoescape, so that a frame, a
token or a server's error text shows as text and never as markup. Each tool keeps its templates
in its own `templates/` folder; they extend `base.html` here."""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined


@functools.cache
def _environment(package: str) -> Environment:
    loader = ChoiceLoader(
        [PackageLoader(package, "templates"), PackageLoader("notify_reports", "templates")]
    )
    return Environment(
        loader=loader,
        autoescape=True,
        undefined=StrictUndefined,  # a name the writer did not pass is an error, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(package: str, template: str, **context: Any) -> str:
    """`package`'s `templates/<template>`, filled in, every value escaped."""
    return _environment(package).get_template(template).render(**context)
