"""The pure parts of the ingest worker, without a broker: the batching policy, the offsets a
batch commits, backoff, and the size of dead-letter envelopes."""

from __future__ import annotations

import base64
import itertools

from hypothesis import given
from hypothesis import strategies as st

from ingest.batching import BatchPolicy, backoff, next_offsets
from ingest.deadletter import fitted, headers
from monitor.errors import InvalidMessage
from monitor.schemas import Rejected

positions = st.lists(
    st.tuples(st.sampled_from(["p", "l"]), st.integers(0, 3), st.integers(0, 10**6))
)


@given(positions)
def test_a_batch_commits_one_past_its_last_offset_per_partition(
    records: list[tuple[str, int, int]],
) -> None:
    offsets = next_offsets(records)
    assert set(offsets) == {(t, p) for t, p, _ in records}
    for (topic, partition), offset in offsets.items():
        assert offset == 1 + max(o for t, p, o in records if (t, p) == (topic, partition))


@given(
    max_records=st.integers(1, 100),
    limit=st.none() | st.integers(1, 300),
    buffered=st.integers(0, 100),
    inflight=st.integers(0, 100),
    consumed=st.integers(0, 300),
)
def test_a_poll_never_brings_more_than_the_batch_or_the_run_can_take(
    max_records: int, limit: int | None, buffered: int, inflight: int, consumed: int
) -> None:
    policy = BatchPolicy(max_records, 1.0, limit)
    room = policy.room(buffered, inflight, consumed)
    assert buffered + room <= max_records
    if limit is not None:
        assert consumed + buffered + inflight + room <= limit


def test_a_batch_is_cut_when_full_due_asked_for_or_stopping_and_never_empty() -> None:
    policy = BatchPolicy(10, 1.0, limit=25)
    assert not policy.cut(0, 5.0, 0, 0, stopping=True)  # nothing to cut
    assert policy.cut(10, 0.0, 0, 0, stopping=False)  # full
    assert policy.cut(3, 1.0, 0, 0, stopping=False)  # due
    assert policy.cut(3, 0.0, 2, 20, stopping=False)  # the run's 25 are in hand
    assert policy.cut(3, 0.0, 0, 0, stopping=True)
    assert not policy.cut(3, 0.5, 0, 0, stopping=False)
    assert policy.finished(25) and not policy.finished(24)
    assert not BatchPolicy(10, 1.0).finished(10**9)
    assert policy.poll_seconds(0.2, writing=False) == 0.8
    assert policy.poll_seconds(0.2, writing=True) == 0.05
    assert policy.poll_seconds(3.0, writing=False) == 0.001


def test_backoff_doubles_up_to_its_cap() -> None:
    assert list(itertools.islice(backoff(0.1, 1.0), 6)) == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


@given(size=st.integers(0, 200_000), limit=st.integers(1_000, 100_000))
def test_a_dead_letter_always_fits_and_keeps_a_decodable_prefix(size: int, limit: int) -> None:
    raw = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    rej = Rejected.of(InvalidMessage("oversized", "too big"), "p", 3, 41, raw, b"key")
    env = fitted(rej, limit)
    assert len(env.model_dump_json()) <= limit
    assert raw.startswith(base64.b64decode(env.raw)) and env.raw_size == size
    assert env.truncated == (len(rej.model_dump_json()) > limit)
    assert (env.topic, env.partition, env.offset, env.reason) == ("p", 3, 41, "oversized")
    assert dict(headers(env))["truncated"] == (b"1" if env.truncated else b"0")
