"""The normalisation of ``ingest.records`` as one DuckDB query over an object's lines.

``NORMALISE_SQL`` reads the table ``_aigw_lines(n INTEGER, raw VARCHAR)`` (one row per
non-blank line) and returns, per line, ``n``, ``fast`` and the row's columns in
``ROW_FIELDS`` order (``ts_us`` as BIGINT microseconds). ``fast`` is true only when the
query is certain its row is the one ``ingest.records.normalize`` gives for the line;
every other line (invalid JSON, a rule broken, an unusual shape or value) is left to the
Python path, which rejects it with today's reason or normalises it. So the SQL path never
rejects anything and never decides a reason: it is the fast path for the common shapes.

What is certain (everything else is ``fast = false``):

* valid JSON that orjson reads the same way: no NaN/Infinity, no trailing comma, no
  number with an exponent or of 16 digits before a point (orjson and DuckDB print those
  differently), no 20-digit number, no duplicate or unknown key at the top level or in
  ``Metrics``, at most one spelling per field;
* integers and booleans as JSON integers and booleans, numbers as JSON numbers, text as
  JSON strings or integers, timestamps as integers, digit strings or RFC 3339 text of the
  form ``YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM]``, category lists as arrays of strings or
  a comma-separated printable ASCII string;
* JSON values (metadata, bodies) that are scalars or flat objects with unique keys.

The query is layered (raw values, then each field's text, then typed values and checks)
so that every expression reads plain columns: macros that nest expand into an expression
tree DuckDB took seconds to bind.
"""

from __future__ import annotations

from typing import Final

import orjson

from core.logpush import METRICS, TIMESTAMP
from ingest import fields as f
from ingest.records import ROW_FIELDS
from ingest.values import MAX_US, MICROS_FROM, MILLIS_FROM, NANOS_FROM

__all__ = ["NORMALISE_SQL"]

_WS: Final = "' ' || chr(9) || chr(10) || chr(13) || chr(11) || chr(12)"  # bytes.strip()
# A JSON text orjson and DuckDB may read or print differently (see the docstring).
_GUARD: Final = (
    r"^-?[0-9]|[:,\[]\s*-?([0-9][0-9.]*[eE]|[0-9]{16,}\.|0[0-9])|[0-9]{20,}"
    r"|[:,\[]\s*-0[^.0-9]"
)
# DuckDB reads these, orjson refuses them (NaN, Infinity, trailing commas).
_LENIENT: Final = (
    r"contains(raw, 'NaN') OR contains(raw, 'Inf') OR regexp_matches(raw, ',\s*[\]}]')"
)
_OPENS: Final = (
    f"CASE WHEN left(raw, 1) = '{{' THEN true ELSE left(ltrim(raw, {_WS}), 1) = '{{' END"
)
_ISO: Final = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?"
_I32: Final = (-(2**31), 2**31 - 1)
_I_TOKENS: Final = (-(2**53), 2**53)

# How each slot's value converts (``ingest.records``: _text, _integer, _number, ...).
_KIND: Final = {
    f.ID: "text",
    f.GATEWAY: "text",
    f.PROVIDER: "text",
    f.MODEL: "text",
    f.REQUESTED_MODEL: "text",
    f.ENDPOINT: "text",
    f.STATUS: "int32",
    f.SUCCESS: "bool",
    f.CACHED: "bool",
    f.RATE_LIMITED: "bool",
    f.DURATION: "num",
    f.COST: "num",
    f.STEP: "int32",
    f.EVENT_ID: "text",
    f.ROUTING_ID: "text",
    f.ROUTING_REASON: "text",
    f.METADATA: "meta",
    f.REQUEST_BODY: "value",
    f.RESPONSE_BODY: "value",
    f.TOK_IN: "int",
    f.TOK_OUT: "int",
    f.CACHE_READ: "int",
    f.CACHE_WRITE: "int",
    f.CACHE_WRITE_1H: "int",
    f.ROUTE: "text",
    f.API_KEY_ID: "text",
    f.DLP_ACTION: "text",
    f.DLP_CATEGORIES: "names",
    f.GUARDRAIL_ACTION: "text",
    f.GUARDRAIL_CATEGORIES: "names",
    f.CACHE_KEY_HASH: "text",
    f.CUSTOM_COST: "bool",
    f.MODEL_TYPE: "text",
    f.REQUEST_TYPE: "text",
    f.REQUEST_CONTENT_TYPE: "text",
    f.RESPONSE_CONTENT_TYPE: "text",
    f.PROMPT_PREFIX_HASH: "text",
    f.PROMPT_PREFIX_TOKENS: "int",
    f.TS: "ts",
}
_COLUMN_SLOTS: Final = {
    "log_id": f.ID,
    "gateway": f.GATEWAY,
    "provider": f.PROVIDER,
    "model": f.MODEL,
    "requested_model": f.REQUESTED_MODEL,
    "endpoint": f.ENDPOINT,
    "cached": f.CACHED,
    "rate_limited": f.RATE_LIMITED,
    "duration_ms": f.DURATION,
    "tokens_out": f.TOK_OUT,
    "cost": f.COST,
    "step": f.STEP,
    "event_id": f.EVENT_ID,
    "routing_decision_id": f.ROUTING_ID,
    "routing_reason": f.ROUTING_REASON,
    "metadata": f.METADATA,
    "request_body": f.REQUEST_BODY,
    "response_body": f.RESPONSE_BODY,
    "route": f.ROUTE,
    "api_key_id": f.API_KEY_ID,
    "dlp_action": f.DLP_ACTION,
    "dlp_categories": f.DLP_CATEGORIES,
    "guardrail_action": f.GUARDRAIL_ACTION,
    "guardrail_categories": f.GUARDRAIL_CATEGORIES,
    "cache_key_hash": f.CACHE_KEY_HASH,
    "custom_cost": f.CUSTOM_COST,
    "model_type": f.MODEL_TYPE,
    "request_type": f.REQUEST_TYPE,
    "request_content_type": f.REQUEST_CONTENT_TYPE,
    "response_content_type": f.RESPONSE_CONTENT_TYPE,
    "cache_write_1h_tokens": f.CACHE_WRITE_1H,
    "prompt_prefix_hash": f.PROMPT_PREFIX_HASH,
    "prompt_prefix_tokens": f.PROMPT_PREFIX_TOKENS,
}


def _ident(key: str) -> str:
    return '"' + key.replace('"', '""') + '"'


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _derived(slot: int) -> list[str]:
    """Layer 3: a slot's text ``s``, its kind char ``c``, its string ``u``, integer ``i``."""
    s, kind = f"s{slot}", _KIND[slot]
    out = [s, f"coalesce({s} = 'null', true) AS z{slot}"]
    if kind in {"text", "names", "meta", "ts"}:
        out.append(
            f"CASE WHEN left({s}, 1) = '\"' THEN CASE WHEN contains({s}, '\\') "
            f"THEN json_extract_string({s}, '$') ELSE substr({s}, 2, length({s}) - 2) END END "
            f"AS u{slot}"
        )
    if kind in {"int", "int32", "ts", "text"}:
        # JSON numbers as DuckDB prints them: an integer is -?[0-9]+; a double has a point
        # or an exponent (try_cast would round '12.5' to 13, so those are told apart).
        number = f"(ascii({s}) BETWEEN 48 AND 57 OR ascii({s}) = 45) AND NOT contains({s}, 'e')"
        whole = f"try_cast({s} AS BIGINT)"
        if kind == "text":
            out.append(f"CASE WHEN {number} AND NOT contains({s}, '.') THEN {whole} END AS i{slot}")
        else:
            out.append(
                f"CASE WHEN NOT ({number}) THEN NULL WHEN NOT contains({s}, '.') THEN {whole} "
                f"WHEN suffix({s}, '.0') THEN try_cast({s}[:-3] AS BIGINT) END AS i{slot}"
            )
    return out


def _typed(slot: int) -> tuple[str, str]:
    """Layer 4: (value, ok) of a slot, reading layer 3's columns."""
    s, z, u, i, kind = f"s{slot}", f"z{slot}", f"u{slot}", f"i{slot}", _KIND[slot]
    if kind in {"int", "int32"}:
        lo, hi = _I32 if kind == "int32" else _I_TOKENS
        cast = "INTEGER" if kind == "int32" else "BIGINT"
        return f"try_cast({i} AS {cast})", f"({z} OR coalesce({i} BETWEEN {lo} AND {hi}, false))"
    if kind == "text":
        value = f"coalesce({u}, CASE WHEN {i} IS NOT NULL THEN {s} END)"
        return value, f"({z} OR t{slot} IS NOT NULL)"
    if kind == "num":
        number = f"ascii({s}) BETWEEN 48 AND 57 OR ascii({s}) = 45"
        value = f"CASE WHEN {number} THEN try_cast({s} AS DOUBLE) END"
        return value, f"({z} OR t{slot} IS NOT NULL)"
    if kind == "bool":
        value = f"CASE {s} WHEN 'true' THEN true WHEN 'false' THEN false END"
        return value, f"({z} OR {s} IN ('true', 'false'))"
    flat = (
        "(left({0}, 1) = '{{' AND strpos(substr({0}, 2), '{{') = 0 AND strpos({0}, '[') = 0 "
        "AND len(json_keys({0})) = len(list_distinct(json_keys({0}))))"
    )
    if kind == "value":
        return (
            f"CASE WHEN NOT {z} THEN {s} END",
            f"({z} OR (NOT regexp_matches({s}, {_quote(_GUARD)}) AND "
            f"(left({s}, 1) NOT IN ('{{', '[') OR {flat.format(s)})))",
        )
    if kind == "meta":
        opens = f"left({u}, 1) IN ('{{', '[')"
        parsed = f"json({u})::VARCHAR"
        value = f"CASE WHEN {opens} AND json_valid({u}) THEN {parsed} WHEN NOT {z} THEN {s} END"
        ok = (
            f"({z} OR CASE WHEN {opens} THEN NOT regexp_matches({u}, {_quote(_GUARD)}) AND "
            f"CASE WHEN json_valid({u}) THEN {flat.format(parsed)} ELSE true END "
            f"ELSE NOT regexp_matches({s}, {_quote(_GUARD)}) AND "
            f"(left({s}, 1) NOT IN ('{{', '[') OR {flat.format(s)}) END)"
        )
        return value, ok
    if kind == "names":
        value = (
            f"CASE WHEN left({s}, 1) = '\"' THEN list_filter(list_transform("
            f"string_split({u}, ','), x -> trim(x)), x -> x <> '') "
            f"WHEN left({s}, 1) = '[' THEN json_extract_string({s}, '$[*]') END"
        )
        ok = (
            f"({z} OR CASE WHEN left({s}, 1) = '\"' THEN regexp_full_match({u}, '[ -~]*') "
            f"WHEN left({s}, 1) = '[' THEN len(list_filter(json_type({s}, '$[*]'), "
            "x -> x <> 'VARCHAR')) = 0 ELSE false END)"
        )
        return value, ok
    # the timestamp: integers by magnitude, digit strings likewise, RFC 3339 text
    digits = f"CASE WHEN regexp_full_match({u}, '[0-9]+') THEN try_cast({u} AS BIGINT) END"
    number = f"coalesce({i}, {digits})"
    by_size = (
        f"CASE WHEN {number} >= {NANOS_FROM} THEN {number} // 1000 "
        f"WHEN {number} >= {MICROS_FROM} THEN {number} "
        f"WHEN {number} >= {MILLIS_FROM} THEN {number} * 1000 ELSE {number} * 1000000 END"
    )
    iso = (
        f"epoch_us(try_strptime(substr({u}, 1, 19), '%Y-%m-%dT%H:%M:%S')) "
        f"+ CASE WHEN substr({u}, 20, 1) = '.' "
        f"THEN rpad(regexp_extract({u}, '\\.(\\d+)', 1), 6, '0')::BIGINT ELSE 0 END "
        f"- CASE WHEN regexp_matches({u}, '[+-]\\d\\d:\\d\\d$') "
        f"THEN (CASE WHEN substr({u}, -6, 1) = '-' THEN -1 ELSE 1 END) "
        f"* (substr({u}, -5, 2)::BIGINT * 3600 + substr({u}, -2, 2)::BIGINT * 60) * 1000000 "
        "ELSE 0 END"
    )
    plain_text = f"(left({s}, 1) = '\"' AND NOT contains({s}, '\\'))"
    value = (
        f"CASE WHEN {number} >= 0 AND (i{slot} IS NOT NULL OR {plain_text}) THEN {by_size} "
        f"WHEN {plain_text} AND regexp_full_match({u}, {_quote(_ISO)}) THEN {iso} END"
    )
    return value, f"(NOT {z} AND coalesce(ts_us BETWEEN 0 AND {MAX_US - 1}, false))"


def _build() -> str:
    """The query, generated from ``ingest.fields`` so that both paths share the spellings.

    Each shape has its own struct (DuckDB's struct fields ignore case, so ``Provider``
    and REST's ``provider`` cannot share one; keys themselves match exactly).
    """
    extras = {**f.METRIC_FIELDS, **f.ANTHROPIC_CACHE_FIELDS}
    # Logpush puts the counts in Metrics; a record that spells one at the top level is
    # rare and goes to Python (its key counts as unknown here). REST has them on top.
    shapes = {
        "lp": dict(f.LOGPUSH_FIELDS),
        "rest": {**f.REST_FIELDS, **{k: v for k, v in extras.items() if k not in f.REST_FIELDS}},
    }
    specs = {
        name: orjson.dumps(dict.fromkeys(keys, "JSON")).decode() for name, keys in shapes.items()
    }
    inner_spec = orjson.dumps(dict.fromkeys(extras, "JSON")).decode()

    def field(shape: str, key: str) -> str:
        return f"r_{shape}.{_ident(key)}"

    def present(fields: list[str]) -> str:
        return "(" + (" + ".join(f"({name} IS NOT NULL)::INT" for name in fields) or "0") + ")"

    def spellings(shape: str, slot: int) -> list[str]:
        found = [field(shape, k) for k, s in shapes[shape].items() if s == slot]
        if shape == "lp":
            found += [f"m.{_ident(k)}" for k, s in extras.items() if s == slot]
        return found

    slots = sorted(_KIND)
    values, once = [], []
    for slot in slots:
        lp, rest = spellings("lp", slot), spellings("rest", slot)
        values.append(
            f"(CASE WHEN is_lp THEN coalesce({', '.join(lp) or 'NULL'}) "
            f"ELSE coalesce({', '.join(rest) or 'NULL'}) END)::VARCHAR AS s{slot}"
        )
        once.append(f"(CASE WHEN is_lp THEN {present(lp)} ELSE {present(rest)} END) <= 1")
    anthropic = list(f.ANTHROPIC_CACHE_FIELDS)
    apart_lp = [f"m.{_ident(k)}" for k in anthropic]
    metrics = f"{field('lp', METRICS)}::VARCHAR"
    shape_ok = [
        *once,
        f"len(keys) = CASE WHEN is_lp THEN {present([field('lp', k) for k in shapes['lp']])} "
        f"ELSE {present([field('rest', k) for k in shapes['rest']])} END",
        f"(NOT is_lp OR coalesce({metrics} = 'null', true) OR (left({metrics}, 1) = '{{' AND "
        f"len(json_keys({metrics})) = {present([f'm.{_ident(k)}' for k in extras])}))",
    ]
    typed = {slot: _typed(slot) for slot in slots}
    ts_value, ts_ok = typed.pop(f.TS)
    checks = " AND ".join([ts_ok, *(ok for _, ok in typed.values())])
    columns = {column: f"t{slot}" for column, slot in _COLUMN_SLOTS.items()}
    total = "(coalesce(cread, 0) + coalesce(cwrite, 0))"
    columns |= {
        "log_id": f"CASE WHEN z{f.ID} THEN sha256(trim(raw, {_WS}))[:32] ELSE t{f.ID} END",
        "ts_us": "ts_us",
        "status_code": "status_code",
        "success": f"coalesce(t{f.SUCCESS}, "
        "CASE WHEN status_code IS NOT NULL THEN status_code BETWEEN 200 AND 399 END)",
        "tokens_in": "try_cast(CASE WHEN cread IS NULL AND cwrite IS NULL THEN tin "
        f"WHEN tin IS NULL THEN {total} WHEN apart OR tin < {total} THEN tin + {total} "
        "ELSE tin END AS BIGINT)",
        "cache_read_tokens": "cread::BIGINT",
        "cache_write_tokens": "cwrite::BIGINT",
        "extra": "NULL::VARCHAR",
        "log_format": "CASE WHEN is_lp THEN 'logpush' ELSE 'rest' END",
        "decrypt_error": "NULL::VARCHAR",
        "endpoint": f"coalesce(t{f.ENDPOINT}, CASE WHEN NOT is_lp THEN CASE t{f.REQUEST_TYPE} "
        + " ".join(
            f"WHEN {_quote(k)} THEN {_quote(v)}" for k, v in f.ENDPOINT_OF_REQUEST_TYPE.items()
        )
        + " END END)",
        "duplicate_keys": "NULL::VARCHAR[]",  # a repeated key is never fast (shape_ok)
    }
    # The shape as records.normalize decides it, for the records it can load: with a
    # Timestamp a Logpush record, else with created_at a REST one (any other record is
    # rejected there for a missing time, so it is left to Python here).
    is_lp = f"list_contains(keys, {_quote(TIMESTAMP)})"
    is_rest = f"NOT list_contains(keys, {_quote(TIMESTAMP)}) AND list_contains(keys, 'created_at')"
    derived = ", ".join(c for slot in slots for c in _derived(slot))
    typed_values = ", ".join(f"{v} AS t{slot}" for slot, (v, _) in typed.items())
    lp_metrics = field("lp", METRICS)
    # Every name and literal below comes from this module and ingest.fields: no input.
    return f"""
SELECT n, fast, {", ".join(f"{columns[name]} AS {name}" for name in ROW_FIELDS)}
FROM (SELECT *, coalesce(shape_ok AND {checks}, false) AS fast
FROM (SELECT *, t{f.STATUS} AS status_code, t{f.TOK_IN}::HUGEINT AS tin,
        t{f.CACHE_READ}::HUGEINT AS cread, t{f.CACHE_WRITE}::HUGEINT AS cwrite
FROM (SELECT *, {ts_value} AS ts_us, {typed_values}
FROM (SELECT n, raw, is_lp, apart, shape_ok, {derived}
FROM (SELECT n, raw, is_lp, apart, {", ".join(values)},
        keys IS NOT NULL AND (is_lp OR is_rest) AND {" AND ".join(shape_ok)} AS shape_ok
FROM (SELECT *, CASE WHEN is_lp THEN {present(apart_lp)}
        ELSE {present([field("rest", k) for k in anthropic])} END > 0 AS apart
FROM (SELECT *, CASE WHEN left({lp_metrics}, 1) = '{{'
        THEN from_json({lp_metrics}, {_quote(inner_spec)}) END AS m
FROM (SELECT n, raw, keys, is_lp, is_rest,
        CASE WHEN is_lp THEN from_json(raw, {_quote(specs["lp"])}) END AS r_lp,
        CASE WHEN is_rest THEN from_json(raw, {_quote(specs["rest"])}) END AS r_rest
FROM (SELECT *, {is_lp} AS is_lp, {is_rest} AS is_rest
FROM (SELECT n, raw, CASE WHEN ({_OPENS}) AND NOT ({_LENIENT})
        THEN try(json_keys(raw)) END AS keys
    FROM _aigw_lines
    WHERE CASE WHEN left(raw, 1) = '{{' THEN true ELSE trim(raw, {_WS}) <> '' END
))))))))))
"""  # noqa: S608


NORMALISE_SQL: Final = _build()
