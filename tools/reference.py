"""Generate the settings table and the errors list of docs/reference.md from the code.

    python tools/reference.py          # rewrite the generated parts of the page
    python tools/reference.py --check  # exit 1 if the page is not current (CI)

Settings come from the fields of ``thread_pool.Settings`` and the docstring under each field (read
with ``ast`` from the class's source, since pydantic keeps no attribute docstrings); errors are
every public subclass of ``ThreadPoolError`` defined anywhere in the package. Each part replaces
the text between its marker comments: ``<!-- settings:begin -->`` ... ``<!-- settings:end -->``,
and the same for ``errors``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import pkgutil
import re
import sys
import textwrap
import typing
from pathlib import Path

import thread_pool
from thread_pool import Settings, ThreadPoolError

PAGE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"


def one_line(doc: str) -> str:
    """A docstring as one Markdown table cell: reST ``code`` made `code`, pipes escaped."""
    text = " ".join(inspect.cleandoc(doc).split())
    return text.replace("``", "`").replace("|", "\\|")


def field_docs() -> dict[str, str]:
    """Each field's docstring: the string literal right after its annotated assignment."""
    body = ast.parse(textwrap.dedent(inspect.getsource(Settings))).body[0]
    assert isinstance(body, ast.ClassDef)
    docs = {}
    for node, after in zip(body.body, body.body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = after.value.value
    return docs


def type_name(annotation: object) -> str:
    """A setting's type as a reader writes it (``int or None``, ``"full" or "none"``): a ``|``
    would split the Markdown table's cell."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return " or ".join(json.dumps(a) for a in args)
    if args:
        return " or ".join(type_name(a) for a in args)
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def settings_table() -> str:
    """One row per setting: name, environment variable, type, default, meaning."""
    prefix = Settings.model_config.get("env_prefix", "")
    docs = field_docs()
    rows = [
        "| setting | environment variable | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        kind = type_name(field.annotation)
        default = field.default if isinstance(field.default, str) else repr(field.default)
        meaning = one_line(docs.get(name, ""))
        rows.append(f"| `{name}` | `{prefix}{name.upper()}` | `{kind}` | `{default}` | {meaning} |")
    return "\n".join(rows)


def error_classes() -> list[type[BaseException]]:
    """``ThreadPoolError`` and its public subclasses, parents before children, by name."""
    for info in pkgutil.walk_packages(thread_pool.__path__, "thread_pool."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found: list[type[BaseException]] = []

    def visit(cls: type[BaseException]) -> None:
        if cls not in found and not cls.__name__.startswith("_"):
            found.append(cls)
            for sub in sorted(cls.__subclasses__(), key=lambda c: c.__name__):
                visit(sub)

    visit(ThreadPoolError)
    return found


def errors_table() -> str:
    """One row per error: class, where to import it from, base classes, docstring."""
    rows = ["| error | import from | bases | meaning |", "|---|---|---|---|"]
    for cls in error_classes():
        where = "thread_pool" if cls.__name__ in thread_pool.__all__ else cls.__module__
        bases = ", ".join(f"`{b.__name__}`" for b in cls.__bases__)
        rows.append(f"| `{cls.__name__}` | `{where}` | {bases} | {one_line(cls.__doc__ or '')} |")
    return "\n".join(rows)


def render(page: str) -> str:
    """``page`` with each generated part replaced by what the code says now."""
    for part, table in (("settings", settings_table()), ("errors", errors_table())):
        begin, end = f"<!-- {part}:begin -->", f"<!-- {part}:end -->"
        found = re.search(re.escape(begin) + ".*?" + re.escape(end), page, re.DOTALL)
        if found is None:
            raise SystemExit(f"{PAGE}: no {begin} ... {end} markers")
        page = page[: found.start()] + f"{begin}\n{table}\n{end}" + page[found.end() :]
    return page


def main() -> int:
    """Rewrite the page, or with ``--check`` say whether it is current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the page is not current")
    args = parser.parse_args()
    old = PAGE.read_text()
    new = render(old)
    if args.check:
        if new != old:
            print(f"{PAGE} is not current: run tools/reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
