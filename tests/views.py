"""Reading the read models' tables directly in tests, through the generation that serves."""

from __future__ import annotations

from typing import Any

from projections.generations import RenamedCursor, Renamer, serving_tables


def serving(conn: Any) -> RenamedCursor:
    """A cursor over ``conn`` (sqlite3, or psycopg with the views' search_path) whose statements use the
    plain table names and read the serving generation."""
    return RenamedCursor(conn, Renamer(serving_tables(conn)))


def dump(conn: Any) -> dict[str, list[str]]:
    """Every serving table's rows (plain name -> sorted reprs)."""
    cur = serving(conn)
    return {t: sorted(map(repr, cur.execute(f"SELECT * FROM {t}").fetchall())) for t in sorted(serving_tables(conn))}


def tracked(conn: Any) -> int:
    """The lowest position any generation has applied (0 before there are views)."""
    try:
        row = conn.execute("SELECT min(position) FROM rm_generations").fetchone()
    except Exception:
        return 0
    return int(row[0] or 0)


def positions(conn: Any) -> dict[str, int]:
    """Each view's position in the generation that serves it."""
    rows = conn.execute("SELECT view, position FROM rm_generations WHERE state = 'ready'").fetchall()
    return {str(v): int(p) for v, p in rows}
