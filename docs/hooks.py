"""mkdocs hooks (``hooks:`` in mkdocs.yml): generate the CLI reference from the CLI itself.

``docs/cli.md`` holds the markers ``<!-- cli-reference -->`` and ``<!-- /cli-reference -->``.
When mkdocs reads that page, they and whatever is between them (a note for people reading the
file in the repository) are replaced by the help of every ``costguard`` command and
subcommand, found by walking
:func:`costguard.cli.parser` (an ``argparse`` parser) through its sub-parser actions,
recursively. A command added to the CLI therefore appears in the docs with no edit here, and
the reference always says what ``costguard ... --help`` says.

A ``cli.md`` without the markers is reported as a warning, so
``mkdocs build --strict`` fails instead of publishing a reference with nothing in it.

On ``api.md``, every name in ``costguard.__all__`` must have a ``::: costguard.<name>`` block;
a missing one is a warning (so ``--strict`` fails), and the reference keeps up with the
package's public names.

The docstrings use Sphinx roles (``:class:`~costguard.Cap```), which mkdocstrings renders
literally. ``on_page_content`` turns each into an optional cross-reference: a link when the
object is documented in the API reference, plain code otherwise (never a warning).
"""

from __future__ import annotations

import argparse
import functools
import html
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Command",
    "cli_commands",
    "on_page_content",
    "on_page_markdown",
    "render_cli_reference",
    "undocumented_names",
]

MARKER = "<!-- cli-reference -->"
END_MARKER = "<!-- /cli-reference -->"
_GENERATED = re.compile(re.escape(MARKER) + r".*?" + re.escape(END_MARKER), re.DOTALL)
CLI_PAGE = "cli.md"
API_PAGE = "api.md"
#: Help is wrapped at this width, whatever the terminal that runs mkdocs says.
HELP_WIDTH = 88

log = logging.getLogger("mkdocs.hooks.costguard")

#: A Sphinx role as mkdocstrings leaves it in HTML: ``:class:<code>~costguard.Cap</code>``.
_SPHINX_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|exc|data|mod|obj|const):<code>(~?)([\w.]+)(\(\))?</code>"
)


@dataclass(frozen=True)
class Command:
    """One command of the CLI: ``("cache", "clear")`` is ``costguard cache clear``."""

    path: tuple[str, ...]
    summary: str  # the one-line ``help=`` its parent gave it ("" for the root)
    parser: argparse.ArgumentParser

    @property
    def name(self) -> str:
        return " ".join(("costguard", *self.path))

    @property
    def anchor(self) -> str:
        # What mkdocs' default ``toc`` slugify makes of the heading ``costguard cache clear``.
        return "-".join(("costguard", *self.path))


def _subcommands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each direct subcommand, in the order they were added.

    Aliases map several names to one parser; each parser is listed once, under its first name.
    """
    for action in parser._actions:  # argparse keeps sub-parsers only in private attributes
        if not isinstance(action, argparse._SubParsersAction):
            continue
        summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            yield name, summaries.get(name, ""), sub


def cli_commands(root: argparse.ArgumentParser) -> list[Command]:
    """``root`` and every command below it, depth first, in the order they were added."""
    commands: list[Command] = []

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...], summary: str) -> None:
        commands.append(Command(path, summary, parser))
        for name, sub_summary, sub in _subcommands(parser):
            walk(sub, (*path, name), sub_summary)

    walk(root, (), "")
    return commands


def _help(parser: argparse.ArgumentParser) -> str:
    """``parser``'s ``--help`` text, wrapped at :data:`HELP_WIDTH` columns."""
    original = parser.formatter_class
    parser.formatter_class = functools.partial(original, width=HELP_WIDTH)  # type: ignore[assignment]
    try:
        return parser.format_help().rstrip()
    finally:
        parser.formatter_class = original


def render_cli_reference(root: argparse.ArgumentParser | None = None) -> str:
    """Markdown for the whole CLI: a table of commands, then each command's full help."""
    if root is None:
        from costguard.cli import parser

        root = parser()
    commands = cli_commands(root)
    lines = ["| command | what it does |", "| --- | --- |"]
    for command in commands[1:]:
        summary = command.summary.replace("|", "\\|")
        lines.append(f"| [`{command.name}`](#{command.anchor}) | {summary} |")
    for command in commands:
        level = min(2 + len(command.path), 6)
        lines += ["", f"{'#' * level} {command.name}", ""]
        if command.summary:
            sentence = command.summary[:1].upper() + command.summary[1:]
            lines += [sentence if sentence.endswith((".", "!", "?")) else sentence + ".", ""]
        lines += ["```text", _help(command.parser), "```"]
    return "\n".join(lines) + "\n"


def _import_from_checkout(config: Any) -> None:
    """Make ``import costguard`` find this checkout's ``src/`` even when it is not installed."""
    src = Path(config["config_file_path"]).resolve().parent / "src"
    if src.is_dir() and str(src) not in sys.path:
        sys.path.insert(0, str(src))


def undocumented_names(markdown: str) -> list[str]:
    """Names in ``costguard.__all__`` without a ``::: costguard.<name>`` block in ``markdown``."""
    import costguard

    documented = set(re.findall(r"^::: costguard\.(\w+)\s*$", markdown, re.MULTILINE))
    return [name for name in costguard.__all__ if name not in documented]


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str | None:
    """mkdocs event: fill in the CLI reference on ``cli.md`` and check that ``api.md`` covers
    every public name; leave other pages alone."""
    if page.file.src_uri == API_PAGE:
        _import_from_checkout(config)
        missing = undocumented_names(markdown)
        if missing:
            log.warning("%s has no ::: block for costguard.%s", API_PAGE, ", ".join(missing))
        return None
    if page.file.src_uri != CLI_PAGE:
        return None
    if _GENERATED.search(markdown) is None:
        log.warning(
            "%s has no %s ... %s markers: the CLI reference was not generated",
            CLI_PAGE,
            MARKER,
            END_MARKER,
        )
        return None
    _import_from_checkout(config)
    reference = render_cli_reference()
    return _GENERATED.sub(lambda _: reference, markdown, count=1)


def _autoref(match: re.Match[str]) -> str:
    short, target, parens = match.group(1), match.group(2), match.group(3) or ""
    title = (target.rsplit(".", 1)[-1] if short else target) + parens
    return (
        f'<autoref identifier="{html.escape(target)}" optional>'
        f"<code>{html.escape(title)}</code></autoref>"
    )


def on_page_content(html_text: str, *, page: Any, config: Any, files: Any) -> str:
    """mkdocs event: Sphinx roles in rendered docstrings become (optional) cross-references."""
    return _SPHINX_ROLE.sub(_autoref, html_text)
