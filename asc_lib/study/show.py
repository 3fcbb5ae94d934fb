"""The method on the page: the few lines of the library that are a method (its loss, its batches), shown in the
method's notebook from the library's own source, so that what the reader sees is what runs."""
from __future__ import annotations

import inspect
import textwrap

from IPython.display import Markdown


def source(*objects) -> Markdown:
    """The source of each function or method, one Python code block, each headed by where it lives."""
    parts = []
    for obj in objects:
        where = f"# {inspect.getmodule(obj).__name__}.{obj.__qualname__}"
        parts.append(where + "\n" + textwrap.dedent(inspect.getsource(obj)))
    return Markdown("```python\n" + "\n".join(parts) + "```")
