"""``costguard cache stats|clear``: the exact response cache and the semantic index."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import CLIError, add_json_option, emit_json

if TYPE_CHECKING:
    from ..cache import ExactCache

__all__ = ["register"]


@contextmanager
def _exact_cache(args: argparse.Namespace) -> Iterator[tuple[ExactCache, dict[str, Any]]]:
    """The exact cache and its stats, closed afterwards. A cache that cannot be opened has
    ``usable`` False in its stats, and ``why`` says why (its warning is not printed)."""
    from .._errors import CostGuardWarning
    from ..cache import ExactCache

    cache = ExactCache(args.dir) if args.dir else ExactCache()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CostGuardWarning)
            stats = cache.stats()
        if not stats["usable"]:
            reasons = [str(w.message).rpartition("caching is off: ")[2] for w in caught]
            stats["why"] = reasons[-1] if reasons else "unknown"
        yield cache, stats
    finally:
        cache.close()


def _unusable(stats: dict[str, Any]) -> CLIError:
    return CLIError(f"the cache at {stats['directory']} cannot be opened: {stats['why']}")


def _semantic_indexes(args: argparse.Namespace) -> list[Any]:
    """The semantic cache's per-embedder indexes (none when its directory does not exist)."""
    from .._paths import default_cache_dir

    base = Path(args.semantic_dir) if args.semantic_dir else default_cache_dir() / "semantic"
    if not base.is_dir():
        return []
    from ..cache._index import PartitionIndex

    return [PartitionIndex(d, max_entries=1) for d in sorted(base.iterdir()) if d.is_dir()]


def _cmd_stats(args: argparse.Namespace) -> int:
    with _exact_cache(args) as (_, stats):
        pass
    if not stats["usable"] and not args.json:
        raise _unusable(stats)
    semantic = [index.stats() for index in _semantic_indexes(args)]
    stats["semantic_entries"] = sum(s["entries"] for s in semantic)
    stats["semantic_bytes"] = sum(s["bytes"] for s in semantic)
    if args.json:
        emit_json(stats)
        return 0
    print(f"exact cache: {stats['directory']}")
    print(f"  entries: {stats['entries']:,}")
    print(f"  size:    {stats['bytes'] / 2**20:,.1f} MiB of {stats['size_limit'] / 2**20:,.0f} MiB")
    if semantic:
        print(f"semantic index: {stats['semantic_entries']:,} entries, ", end="")
        print(f"{stats['semantic_bytes'] / 2**20:,.1f} MiB")
    return 0


def _cmd_clear(args: argparse.Namespace) -> int:
    tag = f"t:{args.tenant}" if args.tenant else None
    with _exact_cache(args) as (cache, stats):
        if not stats["usable"]:
            raise _unusable(stats)
        removed = cache.clear(tag)
    for index in _semantic_indexes(args):
        index.clear(tag)
    whose = f" of tenant {args.tenant!r}" if args.tenant else ""
    print(f"removed {removed} cache entries{whose} from {cache.directory}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command's parser to ``commands``."""
    cache = commands.add_parser(
        "cache", help="the response cache: exact entries and the semantic index"
    )
    cache_commands = cache.add_subparsers(dest="cache_command", required=True)
    stats = cache_commands.add_parser("stats", help="entries and size")
    clear = cache_commands.add_parser("clear", help="remove entries (all, or one tenant's)")
    for command in (stats, clear):
        command.add_argument(
            "--dir", help="exact cache directory (default: in costguard's cache dir)"
        )
        command.add_argument("--semantic-dir", help="semantic cache directory (default: likewise)")
    add_json_option(stats)
    stats.set_defaults(func=_cmd_stats)
    clear.add_argument("--tenant", help="only this tenant's entries")
    clear.set_defaults(func=_cmd_clear)
