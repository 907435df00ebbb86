"""Price tables: the genai-prices catalogue and user price files, as Polars frames.

A price table has one row per price that may apply to a (provider, model) as the
gateway logs them, with the conditions under which it applies:

* ``valid_from`` (UTC; null = always): catalogue start dates and user ``valid_from``;
* ``daily_start_min`` / ``daily_end_min`` (minutes after UTC midnight; null = all
  day): the catalogue's time-of-day prices (off-peak discounts);
* ``above_input_tokens`` (null = any): long-context tiers, where crossing the
  threshold prices *all* tokens of the request at the tier's rates;

and ``rank``: among the rows whose conditions hold, the highest rank wins. User
prices rank above the whole catalogue, so a negotiated rate always wins. Prices
are USD per million tokens; a null cache price means "the input price".
``cache_write_1h_mtok`` prices the cache writes with a 1-hour TTL: the catalogue's rate
where it has one, else the provider's documented multiple of the input rate
(``CACHE_WRITE_1H_MULTIPLIERS``), else null (the 5-minute write rate applies).

The catalogue is only consulted for the (provider, model) pairs passed in, once
per pair, never per request.

Provider-prefixed model names (Cloudflare's Unified Billing and OpenAI-compatible
endpoint log ``"model": "openai/gpt-4o-mini"``, ``"workers-ai/@cf/meta/..."``) are
priced by the provider and model they name (``price_key``); the price rows keep the
pair as logged, so requests join them unchanged.
"""

from __future__ import annotations

import csv
import functools
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import polars as pl
from genai_prices import types as gp_types
from genai_prices.data_snapshot import get_snapshot

from core.settings import check_keys, unknown_key
from models.errors import PriceFileError

__all__ = [
    "CACHE_WRITE_1H_MULTIPLIERS",
    "CATALOG_PROVIDERS",
    "PRICE_SCHEMA",
    "PRICE_UNITS",
    "catalog_models",
    "catalog_prices",
    "load_price_file",
    "price_key",
    "price_table",
    "variant_prices",
]

# Cloudflare AI Gateway provider slugs -> genai-prices provider ids. Slugs missing
# here are not guessed: their models are priced only by a user price file.
CATALOG_PROVIDERS: Final = {
    "openai": "openai",
    "azure-openai": "azure",
    "anthropic": "anthropic",
    "google-ai-studio": "google",
    "google-vertex-ai": "google",
    "workers-ai": "cloudflare",
    "aws-bedrock": "aws",
    "groq": "groq",
    "mistral": "mistral",
    "perplexity-ai": "perplexity",
    "deepseek": "deepseek",
    "grok": "x-ai",
    "xai": "x-ai",
    "cohere": "cohere",
    "cerebras": "cerebras",
    "openrouter": "openrouter",
    "baseten": "baseten",
    "fireworks": "fireworks",
    "together": "together",
}

# The 1-hour cache-write rate as a multiple of the input rate, for the providers that
# document one, used where neither the catalogue nor a price file gives the rate.
# Anthropic: 5-minute writes 1.25x, 1-hour writes 2x the base input rate (docs.anthropic.com,
# prompt caching pricing); Vertex AI bills Claude as Anthropic documents. Other providers
# report no 1-hour writes; theirs would be priced at the 5-minute write rate.
CACHE_WRITE_1H_MULTIPLIERS: Final = {"anthropic": 2.0, "google-vertex-ai": 2.0}

# Provider slugs that stand for "the provider is in the model name": Cloudflare's
# OpenAI-compatible endpoint (``compat``) and its unified/universal request types.
_PREFIX_PROVIDERS: Final = frozenset({"", "compat", "unified", "universal"})
# Cloudflare provider slugs the catalogue does not price; their model names are their own
# (Replicate's and Hugging Face's ``owner/model``), never read as a provider prefix.
_OTHER_SLUGS: Final = frozenset(
    {"replicate", "huggingface", "cartesia", "deepgram", "elevenlabs", "ideogram"}
)


def price_key(provider: str | None, model: str) -> tuple[str, str]:
    """The (provider slug, model) a request is priced as.

    A model ``"<slug>/<name>"`` whose ``<slug>`` is a catalogue provider slug is read as
    that provider's ``<name>`` when the logged provider is absent, ``compat``, not a
    Cloudflare provider slug, or the slug itself (``workers-ai`` + ``workers-ai/@cf/...``).
    Any other provider keeps the model whole: OpenRouter's ``openai/gpt-4o``, Groq's
    ``meta-llama/...`` and Replicate's ``openai/whisper`` are those providers' own names.
    """
    slug, sep, name = model.partition("/")
    if not sep or not name or slug not in CATALOG_PROVIDERS:
        return provider or "", model
    logged = provider or ""
    known = logged in CATALOG_PROVIDERS or logged in _OTHER_SLUGS
    if logged in _PREFIX_PROVIDERS or logged == slug or not known:
        return slug, name
    return logged, model


PRICE_SCHEMA: Final = pl.Schema(
    {
        "provider": pl.String(),
        "model": pl.String(),
        "rank": pl.Int64(),
        "source": pl.String(),  # "catalog" or "override"
        "price_ref": pl.String(),  # catalogue model id, or "file:row"
        "valid_from": pl.Datetime("us", "UTC"),
        "daily_start_min": pl.Int32(),
        "daily_end_min": pl.Int32(),
        "above_input_tokens": pl.Int64(),
        "input_mtok": pl.Float64(),
        "output_mtok": pl.Float64(),
        "cache_read_mtok": pl.Float64(),
        "cache_write_mtok": pl.Float64(),
        "cache_write_1h_mtok": pl.Float64(),
    }
)
# The priced units of a row (USD per million tokens), as genai-prices names them.
PRICE_UNITS: Final = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
)
_UNITS: Final = PRICE_UNITS
OVERRIDE_RANK: Final = 1_000_000
# The keys of a [[price]] entry and the columns of a CSV price file: any other is refused,
# so that a misspelt `cache_reed` does not silently mean the input price.
_PRICE_KEYS: Final = (
    "provider", "model", "input", "output", "cache_read", "cache_write", "cache_write_1h",
    "valid_from",
)  # fmt: skip
# A price variant's rows rank above the standard rows of their position and below the
# next position's (ranks are position * 100 + tier).
_VARIANT_RANK: Final = 50


def price_table(
    pairs: Iterable[tuple[str, str]], overrides: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Catalogue prices for ``pairs`` (provider slug, model) plus user ``overrides``.

    An override written for the priced pair (``openai``, ``gpt-4o-mini``) also applies
    to a pair logged with a prefix (``compat``, ``openai/gpt-4o-mini``): it is repeated
    under the logged pair.
    """
    pairs = sorted(set(pairs))
    catalog = catalog_prices(pairs)
    if overrides is None or overrides.is_empty():
        return catalog
    overrides = overrides.select(PRICE_SCHEMA.keys())
    aliases = [
        (logged, key)
        for logged in pairs
        if (key := price_key(*logged)) != (logged[0] or "", logged[1])
    ]
    aliased = [
        overrides.filter((pl.col("provider") == key[0]) & (pl.col("model") == key[1])).with_columns(
            provider=pl.lit(logged[0]), model=pl.lit(logged[1])
        )
        for logged, key in aliases
    ]
    return pl.concat([catalog, overrides, *aliased], how="vertical")


def catalog_prices(pairs: Iterable[tuple[str, str]]) -> pl.DataFrame:
    """Rows for every (provider slug, model) the catalogue knows; unknown pairs get none.

    Each pair is looked up as ``price_key`` reads it; its rows carry the pair as given.
    """
    rows: list[dict[str, Any]] = []
    for provider, model, info in _catalog_models(pairs):
        rows.extend(map(_with_1h_rate, _model_rows(provider, model, info)))
    return pl.DataFrame(rows, schema=PRICE_SCHEMA, orient="row") if rows else _empty()


_SERVABLE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")


@functools.cache
def catalog_models(slug: str) -> tuple[str, ...]:
    """The model names the catalogue prices for the Cloudflare provider ``slug``, sorted
    (none for a slug it does not map). Left out: deprecated models and catalogue ids that
    are not names a client sends (``ft:gpt-4o``, ``gpt-4o-mini-2024-07-18.ft-``)."""
    provider_id = CATALOG_PROVIDERS.get(slug)
    found = [p for p in get_snapshot().providers if p.id == provider_id]
    if provider_id is None or not found:
        return ()
    return tuple(
        sorted(
            m.id
            for m in found[0].models
            if not m.deprecated and _SERVABLE_NAME.fullmatch(m.id) is not None
        )
    )


def _catalog_models(
    pairs: Iterable[tuple[str, str]],
) -> Iterator[tuple[str, str, gp_types.ModelInfo]]:
    """(provider slug, model, catalogue entry) of each pair the catalogue knows, in order."""
    snapshot = get_snapshot()
    for provider, model in sorted(set(pairs)):
        if not model:
            continue
        slug, name = price_key(provider, model)
        provider_id = CATALOG_PROVIDERS.get(slug)
        if provider_id is None:
            continue
        try:
            _, info = snapshot.find_provider_model(name, None, provider_id, None)
        except LookupError:
            continue
        yield provider, model, info


def variant_prices(pairs: Iterable[tuple[str, str]], when: Mapping[str, str]) -> pl.DataFrame:
    """Rows of the catalogue's price variants selected by ``when`` (``{"processing":
    "batch"}``: the batch APIs' prices) for ``pairs``; pairs without such a variant get none.

    Each standard row (see ``catalog_prices``) gets a twin with the variant's prices where
    it sets them (the standard ones elsewhere, as in genai-prices), the variant's own start
    date or time-of-day window added to its conditions, and a rank above its standard row.
    When several variants match, the first one is used.
    """
    rows: list[dict[str, Any]] = []
    for provider, model, info in _catalog_models(pairs):
        variant = next(
            (
                entry
                for entry in info.price_variants or ()
                if all(entry.when.get(key) == value for key, value in when.items())
            ),
            None,
        )
        if variant is not None:
            rows.extend(map(_with_1h_rate, _variant_rows(provider, model, info, variant)))
    return pl.DataFrame(rows, schema=PRICE_SCHEMA, orient="row") if rows else _empty()


def _variant_rows(
    provider: str, model: str, info: gp_types.ModelInfo, variant: gp_types.PriceVariant
) -> list[dict[str, Any]]:
    rows = []
    for row in _model_rows(provider, model, info):
        constraint = variant.constraint
        if isinstance(constraint, gp_types.StartDateConstraint):
            start = datetime.combine(constraint.start_date, datetime.min.time(), tzinfo=UTC)
            row["valid_from"] = max(row["valid_from"] or start, start)
        elif isinstance(constraint, gp_types.TimeOfDateConstraint):
            if row["daily_start_min"] is not None:
                continue  # two windows on one row: not representable, the standard row stays
            row["daily_start_min"] = _minutes(constraint.start_time)
            row["daily_end_min"] = _minutes(constraint.end_time)
        for unit in _UNITS:
            value = getattr(variant.prices, unit, None)
            if value is not None:
                row[unit] = _price_at(value, row["above_input_tokens"])
        row["rank"] += _VARIANT_RANK
        row["price_ref"] = f"{info.id} ({', '.join(variant.when.values())})"
        rows.append(row)
    return rows


def _model_rows(provider: str, model: str, info: gp_types.ModelInfo) -> list[dict[str, Any]]:
    """One row per (conditional price x tier threshold) of a catalogue model.

    As in genai-prices, the last conditional price whose constraint holds wins and
    the first one applies when none holds, so the first is stored unconditional.
    """
    conditional = info.prices if isinstance(info.prices, list) else [None]
    rows = []
    for position, entry in enumerate(conditional):
        prices = info.prices if entry is None else entry.prices
        constraint = None if entry is None or position == 0 else entry.constraint
        if not isinstance(prices, gp_types.ModelPrice):
            continue
        valid_from = start = end = None
        if isinstance(constraint, gp_types.StartDateConstraint):
            valid_from = datetime.combine(constraint.start_date, datetime.min.time(), tzinfo=UTC)
        elif isinstance(constraint, gp_types.TimeOfDateConstraint):
            start, end = _minutes(constraint.start_time), _minutes(constraint.end_time)
        for tier, threshold in enumerate(_thresholds(prices)):
            row: dict[str, Any] = {
                "provider": provider,
                "model": model,
                "rank": position * 100 + tier,
                "source": "catalog",
                "price_ref": info.id,
                "valid_from": valid_from,
                "daily_start_min": start,
                "daily_end_min": end,
                "above_input_tokens": threshold,
            }
            for unit in _UNITS:
                row[unit] = _price_at(getattr(prices, unit, None), threshold)
            rows.append(row)
    return rows


def _with_1h_rate(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its 1-hour cache-write rate: its own where set, else the documented
    multiple of its input rate for its provider (``CACHE_WRITE_1H_MULTIPLIERS``)."""
    multiplier = CACHE_WRITE_1H_MULTIPLIERS.get(price_key(row["provider"], row["model"])[0])
    if row["cache_write_1h_mtok"] is None and multiplier and row["input_mtok"] is not None:
        row["cache_write_1h_mtok"] = row["input_mtok"] * multiplier
    return row


def _thresholds(prices: gp_types.ModelPrice) -> list[int | None]:
    starts = sorted(
        {
            tier.start
            for unit in _UNITS
            if isinstance(value := getattr(prices, unit, None), gp_types.TieredPrices)
            for tier in value.tiers
        }
    )
    return [None, *starts]


def _price_at(value: Decimal | gp_types.TieredPrices | None, threshold: int | None) -> float | None:
    """The per-MTok price of a unit for requests above ``threshold`` input tokens."""
    if value is None:
        return None
    if isinstance(value, gp_types.TieredPrices):
        applicable = value.base
        for tier in value.tiers:
            if threshold is not None and tier.start <= threshold:
                applicable = tier.price
        return float(applicable)
    return float(value)


def _minutes(moment: Any) -> int:
    utc = datetime.combine(date(1970, 1, 1), moment)
    if utc.tzinfo is not None:
        utc = utc.astimezone(UTC)
    return utc.hour * 60 + utc.minute


def load_price_file(path: Path) -> pl.DataFrame:
    """User prices from TOML (``[[price]]`` tables) or CSV, as override rows.

    Each entry: ``provider`` and ``model`` as the gateway logs them, ``input`` and
    ``output`` (USD per million tokens, required), optional ``cache_read``,
    ``cache_write`` (5-minute writes), ``cache_write_1h`` (1-hour writes; default: the
    provider's documented multiple of ``input``, else ``cache_write``) and
    ``valid_from`` (ISO date or time, UTC). Errors name the file, the entry and the key;
    an unknown key (or CSV column) is one.
    """
    error = functools.partial(PriceFileError, path=str(path))
    try:
        if path.suffix.lower() == ".csv":
            # utf-8-sig: spreadsheets save "CSV UTF-8" with a byte-order mark.
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                entries: Sequence[dict[str, Any]] = list(reader)
            # an unnamed column (a trailing comma in the header) holds nothing: allowed
            column = unknown_key(dict.fromkeys(reader.fieldnames or ()), (*_PRICE_KEYS, ""))
            if column is not None:
                raise error(
                    f"{path}: unknown column {column!r} (known: {', '.join(sorted(_PRICE_KEYS))})"
                )
        else:
            with path.open("rb") as handle:
                document = tomllib.load(handle)
            check_keys(path, document, ("price",), error=error)
            entries = document.get("price", [])
            if not isinstance(entries, list):
                raise PriceFileError(
                    f"{path}: `price` must be an array of tables ([[price]])", path=str(path)
                )
    except OSError as err:
        raise PriceFileError(
            f"cannot read price file {path}: {err.strerror}", path=str(path)
        ) from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, csv.Error) as err:
        raise PriceFileError(f"price file {path} is not valid: {err}", path=str(path)) from err
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise PriceFileError(
                f"{path} entry {index}: expected a table ([[price]])", path=str(path)
            )
        if path.suffix.lower() != ".csv":
            check_keys(f"{path} entry {index}", entry, _PRICE_KEYS, error=error)
    rows = [_override_row(path, index, entry) for index, entry in enumerate(entries, start=1)]
    return pl.DataFrame(rows, schema=PRICE_SCHEMA, orient="row") if rows else _empty()


def _override_row(path: Path, index: int, entry: dict[str, Any]) -> dict[str, Any]:
    where = f"{path} entry {index}"
    for key in ("provider", "model"):
        if not str(entry.get(key) or "").strip():
            raise PriceFileError(f"{where}: `{key}` is missing", path=str(path))
    row: dict[str, Any] = {
        "provider": str(entry["provider"]).strip(),
        "model": str(entry["model"]).strip(),
        "source": "override",
        "price_ref": f"{path.name}:{index}",
        "daily_start_min": None,
        "daily_end_min": None,
        "above_input_tokens": None,
    }
    for key, unit, required in (
        ("input", "input_mtok", True),
        ("output", "output_mtok", True),
        ("cache_read", "cache_read_mtok", False),
        ("cache_write", "cache_write_mtok", False),
        ("cache_write_1h", "cache_write_1h_mtok", False),
    ):
        row[unit] = _usd(entry.get(key), path, where, key, required=required)
    _with_1h_rate(row)
    row["valid_from"] = _valid_from(entry.get("valid_from"), path, where)
    # Later valid_from wins among overrides of one model, then later entries.
    stamp = row["valid_from"].timestamp() if row["valid_from"] else 0
    row["rank"] = OVERRIDE_RANK + int(stamp) * 1000 + index
    return row


def _usd(value: Any, path: Path, where: str, key: str, *, required: bool) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise PriceFileError(
                f"{where}: `{key}` is missing (USD per million tokens)", path=str(path)
            )
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PriceFileError(
            f"{where}: `{key}` is not a number: {value!r}", path=str(path)
        ) from None
    if number < 0:
        raise PriceFileError(f"{where}: `{key}` is negative: {value!r}", path=str(path))
    return number


def _valid_from(value: Any, path: Path, where: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time(), tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise PriceFileError(
            f"{where}: `valid_from` is not a date: {value!r}", path=str(path)
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=PRICE_SCHEMA)
