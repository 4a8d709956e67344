"""Domain model: aggregates, value rules and errors. No I/O, clock, configuration or transport here."""
