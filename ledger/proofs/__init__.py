"""Proofs over the log: the Merkle tree (``merkle``, stored by ``log_tree``), signed tree heads
(``heads``), the stream-head map (``stream_map``), their tables (``store``), the publication of a head
(``publish``) and the verifications that use them (``verify``)."""
