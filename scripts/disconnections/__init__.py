"""Helpers of ``disconnection_report`` (not a job of their own): what a report covers and how it is drawn
(``report``), and a report checked against the ledger (``verify``)."""
