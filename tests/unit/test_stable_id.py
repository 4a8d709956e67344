"""Stream ids are the name-based UUIDs of their natural keys: the same as ``uuid5`` gives, so every id
ever stored still names its stream."""

from __future__ import annotations

import pickle
from uuid import NAMESPACE_URL, UUID, uuid5

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.base import stable_id
from ledger.domain.number import Number


@given(st.text(max_size=80))
def test_a_stream_id_is_uuid5_of_its_path(path: str) -> None:
    made = stable_id(path)
    expected = uuid5(NAMESPACE_URL, path)
    assert made == expected and hash(made) == hash(expected)
    assert (str(made), made.bytes, made.version, made.variant) == (str(expected), expected.bytes, 5, expected.variant)
    assert pickle.loads(pickle.dumps(made)) == expected
    assert isinstance(made, UUID)


def test_a_number_s_stream_id_is_unchanged() -> None:
    # The id the ledger has stored for this number since its first version.
    assert str(Number.create_id("+8613800138000")) == "3d731fb5-cfc0-594f-b9c2-afc84513b3d9"
