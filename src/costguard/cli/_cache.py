"""``costguard cache stats|clear``: the exact response cache and the semantic index."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import CLIError

if TYPE_CHECKING:
    from ..cache import ExactCache

__all__ = ["register"]


def _exact_cache(args: argparse.Namespace) -> ExactCache:
    from ..cache import ExactCache

    return ExactCache(args.dir) if args.dir else ExactCache()


def _semantic_indexes(args: argparse.Namespace) -> list[Any]:
    """The semantic cache's per-embedder indexes (they need numpy, loaded only if present)."""
    from .._paths import default_cache_dir

    base = Path(args.semantic_dir) if args.semantic_dir else default_cache_dir() / "semantic"
    if not base.is_dir():
        return []
    from ..cache._index import PartitionIndex

    return [PartitionIndex(d, max_entries=1) for d in sorted(base.iterdir()) if d.is_dir()]


def _cmd_stats(args: argparse.Namespace) -> int:
    stats = _exact_cache(args).stats()
    semantic = [index.stats() for index in _semantic_indexes(args)]
    stats["semantic_entries"] = sum(s["entries"] for s in semantic)
    stats["semantic_bytes"] = sum(s["bytes"] for s in semantic)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    if not stats["usable"]:
        raise CLIError(f"the cache at {stats['directory']} cannot be opened")
    print(f"exact cache: {stats['directory']}")
    print(f"  entries: {stats['entries']:,}")
    print(f"  size:    {stats['bytes'] / 2**20:,.1f} MiB of {stats['size_limit'] / 2**20:,.0f} MiB")
    if semantic:
        print(f"semantic index: {stats['semantic_entries']:,} entries, ", end="")
        print(f"{stats['semantic_bytes'] / 2**20:,.1f} MiB")
    return 0


def _cmd_clear(args: argparse.Namespace) -> int:
    cache = _exact_cache(args)
    tag = f"t:{args.tenant}" if args.tenant else None
    removed = cache.clear(tag)
    for index in _semantic_indexes(args):
        index.clear(tag)
    whose = f" of tenant {args.tenant!r}" if args.tenant else ""
    print(f"removed {removed} cache entries{whose} from {cache.directory}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cache = commands.add_parser("cache", help="the exact response cache")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True)
    stats = cache_commands.add_parser("stats", help="entries and size")
    stats.add_argument("--dir", help="exact cache directory (default: in costguard's cache dir)")
    stats.add_argument("--semantic-dir", help="semantic cache directory (default: likewise)")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(func=_cmd_stats)
    clear = cache_commands.add_parser("clear", help="remove entries")
    clear.add_argument("--dir", help="exact cache directory (default: in costguard's cache dir)")
    clear.add_argument("--semantic-dir", help="semantic cache directory (default: likewise)")
    clear.add_argument("--tenant", help="only this tenant's entries")
    clear.set_defaults(func=_cmd_clear)
