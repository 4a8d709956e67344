"""The read models. Each view owns its tables and its generations, so each rebuilds on its own:
``base`` (the View class and time encoding), ``numbers`` (status, tenures, clearance, check rows),
``simswaps`` (the latest SIM change per number), ``compliance`` (real-name compliance), ``erasure`` (erasure due)."""

from __future__ import annotations

from ledger.domain.rules import VIOLATION_DISCONNECTIONS, VIOLATION_SUSPENSIONS
from projections.views.base import View, from_us, us
from projections.views.compliance import ComplianceView
from projections.views.erasure import ErasureView
from projections.views.numbers import NumbersView
from projections.views.simswaps import SimSwapsView

ALL_VIEWS: tuple[type[View], ...] = (NumbersView, SimSwapsView, ComplianceView, ErasureView)

__all__ = [
    "ALL_VIEWS",
    "VIOLATION_DISCONNECTIONS",
    "VIOLATION_SUSPENSIONS",
    "ComplianceView",
    "ErasureView",
    "NumbersView",
    "SimSwapsView",
    "View",
    "from_us",
    "us",
]
