"""Response-cache TTL replay: identical requests replayed under another TTL, by hand.

Two identical requests, ``a`` and ``b``, on route prod chat/completions:
``a`` at 10:00 (paid $1), 10:02 (paid $1), 10:04 (a real hit, would have cost $1),
10:07 (paid $1), 10:30 (paid $1); ``b`` at 10:00 (a real hit filled before the window,
$2) and 10:10 (paid $2). The route served 10 requests for $10.00 of which 2 were hits
that saved $3.00."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import parse_ttl, replay_cache_ttl
from models.whatif.cache_ttl import _bucket_order, _group_order, _replay
from tests.models.whatif_fixtures import HOUR, requests, rollup

MIN = timedelta(minutes=1)
ROUTE_TOTALS = rollup({"requests": 10, "cached_requests": 2, "cost_usd": 10.0, "saved_usd": 3.0})
REPEATED = requests(
    {"request_hash": "a", "cost_usd": 1.0},
    {"request_hash": "a", "ts": HOUR + 2 * MIN, "cost_usd": 1.0},
    {"request_hash": "a", "ts": HOUR + 4 * MIN, "cached": True, "cost_usd": 0.0, "saved_usd": 1.0},
    {"request_hash": "a", "ts": HOUR + 7 * MIN, "cost_usd": 1.0},
    {"request_hash": "a", "ts": HOUR + 30 * MIN, "cost_usd": 1.0},
    {"request_hash": "b", "cached": True, "cost_usd": 0.0, "saved_usd": 2.0},
    {"request_hash": "b", "ts": HOUR + 10 * MIN, "cost_usd": 2.0},
)  # fmt: skip


def replay(ttl: str, frame: pl.LazyFrame = REPEATED, **options: bool) -> dict[str, object]:
    answer = replay_cache_ttl(ROUTE_TOTALS, frame, parse_ttl(ttl), **options)
    assert answer.table.height == 1
    return answer.table.row(0, named=True)


def test_five_minutes_serves_one_more_request_from_the_cache() -> None:
    """5m: a fills at 10:00, 10:02 hits (+$1), 10:04 hits (as it did), 10:07 refills, 10:30
    refills; b's first hit stays and its entry is gone by 10:10. Saving $1.00."""
    row = replay("5m")
    assert row["extra_hit_requests"] == 1
    assert row["lost_hit_requests"] == 0
    assert row["replay_cached_requests"] == 3
    assert row["affected_requests"] == 1
    assert row["current_cost_usd"] == 10.0
    assert row["saving_usd"] == pytest.approx(1.0)
    assert row["projected_cost_usd"] == pytest.approx(9.0)
    assert row["cache_saved_usd"] == 3.0  # what the cache saved already, not counted again


def test_an_hour_serves_every_repeat_after_the_first() -> None:
    """1h: a's 10:02, 10:07 and 10:30 and b's 10:10 become hits: $1 + $1 + $1 + $2 = $5."""
    row = replay("1h")
    assert (row["extra_hit_requests"], row["lost_hit_requests"]) == (4, 0)
    assert row["saving_usd"] == pytest.approx(5.0)
    assert row["replay_cached_requests"] == 6


def test_a_shorter_ttl_loses_hits_and_costs_what_they_saved() -> None:
    """90s: a's 10:04 hit (filled at 10:02) would have expired: paid again, -$1.00."""
    row = replay("90s")
    assert (row["extra_hit_requests"], row["lost_hit_requests"]) == (0, 1)
    assert row["saving_usd"] == pytest.approx(-1.0)
    assert row["projected_cost_usd"] == pytest.approx(11.0)


def test_refused_and_failed_requests_neither_hit_nor_fill() -> None:
    """A rate-limited and a failed request of a at 09:59 do not start an entry: 5m saves $1.00
    as before, not more."""
    frame = pl.concat(
        [
            REPEATED,
            requests(
                {"request_hash": "a", "ts": HOUR - MIN, "rate_limited": True, "status_code": 429},
                {"request_hash": "a", "ts": HOUR - MIN, "status_code": 500},
            ),
        ]
    )
    assert replay("5m", frame)["saving_usd"] == pytest.approx(1.0)


def test_a_request_sent_with_skip_cache_neither_hits_nor_fills() -> None:
    """A paid request of a at 09:59 would fill the cache and make 10:00 a hit (+$1.00 with
    5m: $2.00); sent with cf-aig-skip-cache it does not: $1.00 as without it."""
    early = {"request_hash": "a", "ts": HOUR - MIN, "cost_usd": 1.0}
    fills = pl.concat([REPEATED, requests(early)])
    assert replay("5m", fills)["saving_usd"] == pytest.approx(2.0)
    skipped = pl.concat(
        [REPEATED, requests(early).with_columns(pl.lit(True).alias("cache_skipped"))],
        how="diagonal_relaxed",
    )
    row = replay("5m", skipped)
    assert (row["saving_usd"], row["extra_hit_requests"]) == (pytest.approx(1.0), 1)


def test_per_key_caches_share_nothing_across_gateway_keys() -> None:
    """With a second key sending a at 10:01, a shared cache serves it (+$1 more); one cache
    per key does not: the 10:02 request of k1 still hits."""
    second_key = requests({"request_hash": "a", "ts": HOUR + MIN, "api_key": "k2", "cost_usd": 1.0})
    frame = pl.concat([REPEATED, second_key])
    assert replay("5m", frame)["saving_usd"] == pytest.approx(2.0)
    assert replay("5m", frame, per_key=True)["saving_usd"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("1h", 3600), ("24h", 86400), ("90s", 90), ("2d", 172_800), ("600", 600)],
)
def test_ttls_parse_with_a_unit(text: str, seconds: int) -> None:
    assert parse_ttl(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0m", "-5m", "soon"])
def test_a_ttl_that_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_ttl(text)


def reference_replay(groups: list[list[tuple[int, bool]]], ttl: int) -> list[bool]:
    """The replay rule, request by request: what the vectorised replay must equal."""
    hits = []
    for group in groups:
        expiry = None
        for position, (ts, cached) in enumerate(group):
            if position == 0:
                hits.append(cached)
                expiry = ts + ttl
            elif expiry is not None and ts < expiry:
                hits.append(True)
            else:
                hits.append(False)
                expiry = ts + ttl
    return hits


@settings(max_examples=200, deadline=None)
@given(
    groups=st.lists(
        st.lists(st.tuples(st.integers(0, 10_000), st.booleans()), min_size=1, max_size=12),
        min_size=1,
        max_size=8,
    ),
    ttl=st.integers(1, 3_000),
    far=st.booleans(),
)
def test_the_vectorised_replay_follows_the_rule_request_by_request(
    groups: list[list[tuple[int, bool]]], ttl: int, far: bool
) -> None:
    """Any groups, any TTL; ``far`` puts the last group 2^61 microseconds later, so that
    the (group, time) keys are split into chunks."""
    ordered = [sorted(group) for group in groups]
    if far:
        ordered[-1] = [(ts + 2**61, cached) for ts, cached in ordered[-1]]
    flat = [item for group in ordered for item in group]
    starts = np.array([position == 0 for group in ordered for position in range(len(group))])
    hits = _replay(
        np.array([ts for ts, _ in flat], dtype=np.int64),
        starts,
        np.array([cached for _, cached in flat]),
        ttl,
    )
    assert hits.tolist() == reference_replay(ordered, ttl)


@settings(max_examples=100, deadline=None)
@given(
    groups=st.lists(
        st.lists(
            st.tuples(st.integers(0, 600), st.booleans()),
            min_size=1,
            max_size=10,
            unique_by=lambda item: item[0],
        ),
        min_size=1,
        max_size=6,
    ),
    ttl_minutes=st.integers(1, 120),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_replay_of_shuffled_requests_follows_the_rule_request_by_request(
    groups: list[list[tuple[int, bool]]], ttl_minutes: int, seed: int
) -> None:
    """Requests of several identical-request groups, interleaved in any order (as a
    warehouse returns them): the replay's extra and lost hits are the rule's, applied
    group by group in time order. Times are minutes; each paid request costs $1, each
    real hit saved $1."""
    rows = [
        {
            "request_hash": f"h{index}",
            "ts": HOUR + minute * MIN,
            "cached": cached,
            "cost_usd": 0.0 if cached else 1.0,
            "saved_usd": 1.0 if cached else None,
        }
        for index, group in enumerate(groups)
        for minute, cached in group
    ]
    np.random.default_rng(seed).shuffle(rows)  # type: ignore[arg-type]
    ordered = [sorted(group) for group in groups]
    expected = reference_replay(ordered, ttl_minutes)
    was_hit = [cached for group in ordered for _, cached in group]
    extra = sum(hit and not cached for hit, cached in zip(expected, was_hit, strict=True))
    lost = sum(cached and not hit for hit, cached in zip(expected, was_hit, strict=True))
    answer = replay_cache_ttl(ROUTE_TOTALS, requests(*rows), parse_ttl(f"{ttl_minutes}m"))
    row = answer.table.row(0, named=True)
    assert (row["extra_hit_requests"], row["lost_hit_requests"]) == (extra, lost)
    assert row["saving_usd"] == pytest.approx(extra - lost)


def test_two_groups_sharing_the_first_hash_are_kept_apart() -> None:
    """Groups 7/1 and 7/2 share their first 64-bit hash: the second orders them, and the
    rows get one group number per group (rows 0, 2 are one group; 1, 3 the other)."""
    order, renumbered = _group_order(
        np.array([10, 20, 30, 40, 5]),
        np.array([7, 7, 7, 7, 3], dtype=np.uint64),
        np.array([1, 2, 1, 2, 9], dtype=np.uint64),
    )
    assert order.tolist() == [4, 0, 2, 1, 3]
    assert renumbered is not None
    assert renumbered.tolist() == [2, 3, 2, 3, 1]


def test_groups_with_distinct_first_hashes_keep_them() -> None:
    order, renumbered = _group_order(
        np.array([30, 10, 20]), np.array([5, 5, 4], dtype=np.uint64), np.zeros(3, np.uint64)
    )
    assert order.tolist() == [2, 1, 0]
    assert renumbered is None


def test_the_one_sort_order_is_the_two_key_order() -> None:
    """200,000 requests in 20,000 groups (random 64-bit hashes, times with ties): the
    bucket sort gives lexsort's order exactly, ties in time kept in row order."""
    rng = np.random.default_rng(7)
    groups = rng.integers(0, 2**64, size=20_000, dtype=np.uint64)
    first = groups[rng.integers(0, 20_000, size=200_000)]
    ts = rng.integers(0, 50_000, size=200_000)  # about 4 requests a microsecond: ties
    order = _bucket_order(ts, first)
    assert order is not None
    assert order.tolist() == np.lexsort((ts, first)).tolist()


def test_two_groups_in_one_bucket_are_told_apart() -> None:
    """Hashes equal but for their low bits share a bucket, so the one sort interleaves
    their requests by time; the order still groups them, each in time order."""
    first = np.array([2**63 + 2, 2**63 + 1, 2**63 + 2, 2**63 + 1, 5], dtype=np.uint64)
    ts = np.array([1, 2, 3, 4, 9])
    order = _bucket_order(ts, first)
    assert order is not None
    assert order.tolist() == [4, 1, 3, 0, 2] == np.lexsort((ts, first)).tolist()


def test_a_group_per_request_sorts_as_lexsort() -> None:
    """1,000,000 requests, nearly each its own group (random 64-bit hashes, times
    unordered): the order is lexsort's."""
    rng = np.random.default_rng(11)
    first = rng.integers(0, 2**64, size=1_000_000, dtype=np.uint64)
    first[:300_000:3] = first[1:300_000:3]  # and 100,000 groups of two
    ts = rng.integers(0, 10**9, size=1_000_000)
    order = _bucket_order(ts, first)
    assert order is not None
    assert np.array_equal(order, np.lexsort((ts, first)))
