"""The benchmark's result table: each figure beside its ceiling, printed and kept for ``--json``."""

from __future__ import annotations

from typing import Any


class Rows:
    """The result table."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self, name: str, value: float, unit: str, ceiling: float | None, target: str, inverse: bool = False
    ) -> None:
        """One figure and its ceiling (None where there is none to measure); ratio is higher-is-better."""
        ratio = (ceiling / value if inverse else value / ceiling) if value and ceiling else None
        self.rows.append(
            {
                "name": name,
                "value": round(value, 2),
                "unit": unit,
                "ceiling": None if ceiling is None else round(ceiling, 2),
                "ratio": None if ratio is None else round(ratio, 3),
                "target": target,
            }
        )
        shown = "-" if ceiling is None else f"{ceiling:,.1f}"
        print(
            f"  {name:<52} {value:>11,.1f} {unit:<9} ceiling {shown:>11}  ratio "
            f"{'-' if ratio is None else f'{ratio:.2f}':>5}  {target}",
            flush=True,
        )
