"""Request explorer: find requests with the global filters, then open one (a click on its
row, or its log id typed in): its fields, metadata, tokens, cost breakdown, policy
actions and failover steps."""

from __future__ import annotations

import streamlit as st

from app.dashboard.data import context, fetch
from app.dashboard.ui import NONE, count, fields, ms, table, usd_exact
from core.warehouse import EXPLORER_STATUSES

ctx = context()
filters = ctx.filters
st.title("Request explorer")
statuses = list(EXPLORER_STATUSES)
chosen = st.query_params.get("status")
left, right = st.columns([1, 2])
status = left.selectbox(
    "Show", statuses, index=statuses.index(chosen) if chosen in statuses else 0, key="status"
)
st.query_params["status"] = status
prefix = right.text_input("Log id starts with", key="log_prefix").strip()
found = fetch(
    ctx.settings,
    "requests",
    since=filters.since,
    until=filters.until,
    filters=filters.where,
    status=status,
    log_id=prefix,
    limit=200,
)
st.caption(f"{found.height:,} newest matching requests (at most 200). Click a row to open it.")
picked = table(
    found,
    key="found",
    height=320,
    columns=[
        "ts",
        "log_id",
        "provider",
        "model",
        "status_code",
        "cached",
        "tokens_in",
        "tokens_out",
        "cost",
        "duration_ms",
        "step",
    ],
    exact=("cost",),
    select=True,
)

st.subheader("One request")
if picked is not None:
    st.query_params["id"] = str(found["log_id"][picked])
elif prefix and found.height == 1:  # a typed id that names one request opens it
    st.query_params["id"] = str(found["log_id"][0])
log_id = st.query_params.get("id")
if not log_id:
    st.caption("Click a request above, or type its log id, to open it.")
else:
    detail = fetch(ctx.settings, "detail", log_id=log_id)
    if detail is None:
        st.warning(f"No request with log id {log_id}.")
    else:
        record, cost = detail.fields, detail.cost
        st.caption(f"Log id {log_id}")
        columns = st.columns(4)
        status_code = record["status_code"]
        columns[0].metric("Status", NONE if status_code is None else str(status_code))
        columns[1].metric(
            "Tokens in / out", f"{count(record['tokens_in'])} / {count(record['tokens_out'])}"
        )
        columns[2].metric("Duration", ms(record["duration_ms"]))
        columns[3].metric("Effective cost", usd_exact(cost.get("cost_usd")))
        st.markdown("**Cost breakdown** (recomputed from tokens; USD)")
        estimated = bool(cost.get("saved_estimated"))
        saved_label = "saved (cache hit, estimated)" if estimated else "saved (cache hit)"
        parts = {
            "input": cost.get("input_usd"),
            "output": cost.get("output_usd"),
            "cache read": cost.get("cache_read_usd"),
            "cache write 5m": cost.get("cache_write_usd"),
            "cache write 1h": cost.get("cache_write_1h_usd"),
            saved_label: cost.get("saved_usd"),
            "logged by the gateway": cost.get("cost_logged"),
        }
        st.table({name: [usd_exact(value) for value in [v]] for name, v in parts.items()})
        st.caption(f"Cost source: {cost.get('cost_source') or NONE}")
        left, right = st.columns(2)
        with left:
            st.markdown("**Request** (empty fields left out)")
            fields(record)
        with right:
            st.markdown("**Metadata**")
            metadata = detail.metadata
            fields(metadata if isinstance(metadata, dict) else {"metadata": metadata})
            st.markdown("**Policy actions**")
            st.table(
                {
                    "guardrail": [record.get("guardrail_action") or NONE],
                    "guardrail categories": [
                        ", ".join(record.get("guardrail_categories") or []) or NONE
                    ],
                    "DLP": [record.get("dlp_action") or NONE],
                    "DLP categories": [", ".join(record.get("dlp_categories") or []) or NONE],
                    "rate limited": ["yes" if record.get("rate_limited") else "no"],
                }
            )
            st.markdown("**Failover steps** (attempts sharing its event id)")
            table(detail.attempts, key="attempts", exact=("cost",))
