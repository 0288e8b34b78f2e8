"""The spend ledger: every guarded call, priced, in a local SQLite file.

Open one ``Ledger`` per process and share it between threads; ``write`` a ``CallRecord`` per
finished call; read back with ``records`` and ``summary``. The file is plain SQLite (tables
``calls`` and ``meta``), so Datasette, sqlite-utils and the ``sqlite3`` shell work on it.
"""

from __future__ import annotations

from ._ids import new_id
from ._record import CallRecord
from ._store import Ledger, SummaryRow, default_ledger_path

__all__ = [
    "CallRecord",
    "Ledger",
    "SummaryRow",
    "default_ledger_path",
    "new_id",
]
