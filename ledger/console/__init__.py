"""Commands for people: ``ledger history``, ``check``, ``simswap``, ``status``, ``verify`` and ``trace``
ask a running server over gRPC and print a readable answer (or, with ``--json``, the RPC's response in
protobuf JSON, as ``buf curl`` prints it).

Exit codes: 0 answered, 1 refused or not found (and ``verify`` not ok), 2 usage, 3 server not reachable.
"""
