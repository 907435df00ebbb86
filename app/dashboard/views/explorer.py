"""Request explorer: find requests with the global filters, then open one: its metadata,
tokens, cost breakdown, policy actions and failover steps."""

from __future__ import annotations

import orjson
import streamlit as st

from app.dashboard.data import context, fetch
from app.dashboard.ui import NONE, count, ms, table, usd_exact
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
st.caption(f"{found.height:,} newest matching requests (at most 200).")
table(found, key="found", height=320)

st.subheader("One request")
ids = found["log_id"].to_list() if found.height else []
wanted = st.query_params.get("id")
if wanted and wanted not in ids:
    ids.insert(0, wanted)
if not ids:
    st.caption("No request to open.")
else:
    log_id = st.selectbox("Log id", ids, index=ids.index(wanted) if wanted in ids else 0, key="id")
    st.query_params["id"] = log_id
    detail = fetch(ctx.settings, "detail", log_id=log_id)
    if detail is None:
        st.warning(f"No request with log id {log_id}.")
    else:
        fields, cost = detail.fields, detail.cost
        columns = st.columns(4)
        columns[0].metric("Status", str(fields["status_code"]))
        columns[1].metric(
            "Tokens in / out", f"{count(fields['tokens_in'])} / {count(fields['tokens_out'])}"
        )
        columns[2].metric("Duration", ms(fields["duration_ms"]))
        columns[3].metric("Effective cost", usd_exact(cost.get("cost_usd")))
        st.markdown("**Cost breakdown** (recomputed from tokens; USD)")
        parts = {
            "input": cost.get("input_usd"),
            "output": cost.get("output_usd"),
            "cache read": cost.get("cache_read_usd"),
            "cache write": cost.get("cache_write_usd"),
            "saved (cache hit)": cost.get("saved_usd"),
            "logged by the gateway": cost.get("cost_logged"),
        }
        st.table({name: [usd_exact(value) for value in [v]] for name, v in parts.items()})
        st.caption(f"Cost source: {cost.get('cost_source') or NONE}")
        left, right = st.columns(2)
        with left:
            st.markdown("**Request**")
            st.json(orjson.loads(orjson.dumps(fields, default=str)), expanded=True)
        with right:
            st.markdown("**Metadata**")
            st.json(detail.metadata or {}, expanded=True)
            st.markdown("**Policy actions**")
            st.table(
                {
                    "guardrail": [fields.get("guardrail_action") or NONE],
                    "guardrail categories": [
                        ", ".join(fields.get("guardrail_categories") or []) or NONE
                    ],
                    "DLP": [fields.get("dlp_action") or NONE],
                    "DLP categories": [", ".join(fields.get("dlp_categories") or []) or NONE],
                    "rate limited": [str(bool(fields.get("rate_limited")))],
                }
            )
            st.markdown("**Failover steps** (attempts sharing its event id)")
            table(detail.attempts, key="attempts")
