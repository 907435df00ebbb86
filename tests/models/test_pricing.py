"""Price tables: the gateway-slug -> catalogue mapping, long-context tiers, and user
price files (TOML and CSV) with their one-line, file-naming errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from genai_prices import types as gp_types
from genai_prices.data_snapshot import get_snapshot
from polars.testing import assert_frame_equal

from models import CATALOG_PROVIDERS, PriceFileError, load_price_file, price_table
from models.pricing import OVERRIDE_RANK, catalog_prices, price_key

UTC_US = pl.Datetime("us", "UTC")
# What a FinOps user reads from an override row (rank and time-of-day are internals).
OVERRIDE_VIEW = (
    "provider",
    "model",
    "source",
    "price_ref",
    "valid_from",
    "above_input_tokens",
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
)

PRICES_TOML = """\
[[price]]
provider = "anthropic"
model = "claude-sonnet-4"
input = 3
output = 15
cache_read = 0.30
cache_write = 3.75

[[price]]
provider = "replicate"
model = "acme/llama-ft"
input = 0.5
output = 1.5
valid_from = 2026-04-10
"""

PRICES_CSV = """\
provider,model,input,output,cache_read,cache_write,valid_from
anthropic,claude-sonnet-4,3,15,0.30,3.75,
replicate,acme/llama-ft,0.5,1.5,,,2026-04-10
"""


def _expected_overrides(file_name: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "provider": ["anthropic", "replicate"],
            "model": ["claude-sonnet-4", "acme/llama-ft"],
            "source": ["override", "override"],
            "price_ref": [f"{file_name}:1", f"{file_name}:2"],
            "valid_from": [None, datetime(2026, 4, 10, tzinfo=UTC)],
            "above_input_tokens": [None, None],
            "input_mtok": [3.0, 0.5],
            "output_mtok": [15.0, 1.5],
            "cache_read_mtok": [0.30, None],
            "cache_write_mtok": [3.75, None],
        },
        schema_overrides={
            "valid_from": UTC_US,
            "above_input_tokens": pl.Int64,
            "cache_read_mtok": pl.Float64,
            "cache_write_mtok": pl.Float64,
        },
    )


# --- the catalogue ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "catalogue_provider", "model"),
    [
        ("workers-ai", "cloudflare", "@cf/meta/llama-3.1-8b-instruct"),
        ("google-ai-studio", "google", "gemini-2.5-pro"),
        ("google-vertex-ai", "google", "gemini-2.5-pro"),
        ("azure-openai", "azure", "gpt-4o"),
        ("aws-bedrock", "aws", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ("perplexity-ai", "perplexity", "sonar"),
        ("anthropic", "anthropic", "claude-sonnet-4"),
        ("openai", "openai", "gpt-4o-mini"),
    ],
)
def test_cloudflare_slugs_find_their_models_in_the_catalogue(
    slug: str, catalogue_provider: str, model: str
) -> None:
    """A model logged under a Cloudflare slug is priced from the right catalogue provider."""
    assert CATALOG_PROVIDERS[slug] == catalogue_provider
    rows = catalog_prices([(slug, model)])
    assert rows.height >= 1
    assert rows.select("provider", "model", "source").unique().rows() == [(slug, model, "catalog")]
    assert rows.filter(pl.col("above_input_tokens").is_null())["input_mtok"].min() > 0  # type: ignore[operator]


@pytest.mark.parametrize(
    ("slug", "model"),
    [
        ("replicate", "gpt-4o"),  # a gateway slug the catalogue has no provider for
        ("huggingface", "gpt-4o"),
        ("google", "gemini-2.5-pro"),  # the catalogue's own id is not a gateway slug
        ("openai", ""),
    ],
)
def test_an_unmapped_provider_slug_gets_no_catalogue_price(slug: str, model: str) -> None:
    """Prices are never guessed across providers: an unmapped slug gets no catalogue row."""
    assert catalog_prices([(slug, model)]).is_empty()
    assert price_table([(slug, model)]).schema == catalog_prices([]).schema


def test_a_tiered_model_has_a_base_row_and_a_long_context_row() -> None:
    """gemini-2.5-pro gets its base prices and the prices for prompts above 200k tokens."""
    _, info = get_snapshot().find_provider_model("gemini-2.5-pro", None, "google", None)
    assert isinstance(info.prices, gp_types.ModelPrice)

    def at(value: object, tier: int | None) -> float:
        assert isinstance(value, gp_types.TieredPrices)
        return float(value.base if tier is None else value.tiers[tier].price)

    rows = catalog_prices([("google-ai-studio", "gemini-2.5-pro")]).sort("rank")
    assert rows["above_input_tokens"].to_list() == [None, 200_000]
    for unit in ("input_mtok", "output_mtok", "cache_read_mtok"):
        assert rows[unit].to_list() == [
            at(getattr(info.prices, unit), None),
            at(getattr(info.prices, unit), 0),
        ]
    base, tier = rows["input_mtok"].to_list()
    assert tier > base


def test_user_prices_rank_above_every_catalogue_row() -> None:
    """A negotiated rate beats the catalogue, long-context tiers included."""
    overrides = pl.DataFrame(
        [
            {
                "provider": "google-ai-studio",
                "model": "gemini-2.5-pro",
                "rank": OVERRIDE_RANK + 1,
                "source": "override",
                "price_ref": "prices.toml:1",
                "input_mtok": 1.0,
                "output_mtok": 2.0,
            }
        ],
        schema=catalog_prices([]).schema,
    )
    table = price_table([("google-ai-studio", "gemini-2.5-pro")], overrides)
    assert table["source"].to_list() == ["catalog", "catalog", "override"]
    top = table.sort("rank").tail(1)
    assert top["source"].item() == "override"


# --- user price files ------------------------------------------------------------------------


def test_a_toml_price_file_loads_with_valid_from(tmp_path: Path) -> None:
    """[[price]] entries become override rows in USD per MTok, with their start date (UTC)."""
    path = tmp_path / "prices.toml"
    path.write_text(PRICES_TOML)
    loaded = load_price_file(path)
    assert_frame_equal(loaded.select(OVERRIDE_VIEW), _expected_overrides("prices.toml"))
    assert loaded.schema == catalog_prices([]).schema


def test_a_csv_price_file_loads_like_the_toml_one(tmp_path: Path) -> None:
    """A spreadsheet-friendly CSV gives the same rows; empty cells mean 'not set'."""
    path = tmp_path / "prices.csv"
    path.write_text(PRICES_CSV)
    assert_frame_equal(
        load_price_file(path).select(OVERRIDE_VIEW), _expected_overrides("prices.csv")
    )


def test_a_csv_saved_by_a_spreadsheet_with_a_bom_loads(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark; the file still loads."""
    path = tmp_path / "prices.csv"
    path.write_text("\ufeff" + PRICES_CSV, encoding="utf-8")
    assert_frame_equal(
        load_price_file(path).select(OVERRIDE_VIEW), _expected_overrides("prices.csv")
    )


def test_a_valid_from_with_an_offset_is_converted_to_utc(tmp_path: Path) -> None:
    """valid_from "2026-04-10T12:00:00+02:00" starts at 10:00 UTC."""
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[price]]\nprovider = "openai"\nmodel = "gpt-4o"\ninput = 2\noutput = 8\n'
        'valid_from = "2026-04-10T12:00:00+02:00"\n'
    )
    assert load_price_file(path)["valid_from"].to_list() == [datetime(2026, 4, 10, 10, tzinfo=UTC)]


def test_later_user_prices_win_over_earlier_ones(tmp_path: Path) -> None:
    """Among overrides of one model, a later valid_from ranks higher, whatever the file order."""
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[price]]\nprovider = "openai"\nmodel = "gpt-4o"\ninput = 2\noutput = 8\n'
        'valid_from = "2026-05-01"\n'
        '[[price]]\nprovider = "openai"\nmodel = "gpt-4o"\ninput = 3\noutput = 9\n'
        'valid_from = "2026-04-01"\n'
    )
    loaded = load_price_file(path).sort("rank")
    assert loaded["input_mtok"].to_list() == [3.0, 2.0]
    assert loaded["rank"].min() > OVERRIDE_RANK  # type: ignore[operator]


ENTRY = 'provider = "openai"\nmodel = "gpt-4o"\n'
BAD_FILES = [
    pytest.param(
        "prices.toml",
        f"[[price]]\n{ENTRY}input = 2\noutput = 8\n[[price]]\n{ENTRY}output = 8\n",
        ("entry 2", "`input`", "missing"),
        id="missing-input",
    ),
    pytest.param(
        "prices.toml",
        f"[[price]]\n{ENTRY}input = 2\noutput = -8\n",
        ("entry 1", "`output`", "negative"),
        id="negative-price",
    ),
    pytest.param(
        "prices.toml",
        f'[[price]]\n{ENTRY}input = 2\noutput = 8\nvalid_from = "next tuesday"\n',
        ("entry 1", "`valid_from`", "next tuesday"),
        id="bad-date",
    ),
    pytest.param(
        "prices.csv",
        "provider,model,input,output\nopenai,gpt-4o,2,8\nopenai,gpt-4o,two,8\n",
        ("entry 2", "`input`", "not a number"),
        id="csv-not-a-number",
    ),
    pytest.param(
        "prices.csv",
        "provider,model,input,output\n,gpt-4o,2,8\n",
        ("entry 1", "`provider`", "missing"),
        id="csv-missing-provider",
    ),
]


@pytest.mark.parametrize(("name", "text", "fragments"), BAD_FILES)
def test_price_file_errors_name_the_file_entry_and_key(
    tmp_path: Path, name: str, text: str, fragments: tuple[str, ...]
) -> None:
    """A bad entry is a one-line PriceFileError naming the file, the entry and the key."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PriceFileError) as caught:
        load_price_file(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("name", "text"), [pytest.param(*case.values[:2], id=case.id) for case in BAD_FILES]
)
def test_price_file_errors_carry_the_file_path(tmp_path: Path, name: str, text: str) -> None:
    """PriceFileError.path is the price file itself, whichever key is wrong."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PriceFileError) as caught:
        load_price_file(path)
    assert caught.value.path == str(path)


KNOWN = "cache_read, cache_write, cache_write_1h, input, model, output, provider, valid_from"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        pytest.param(
            "prices.toml",
            f"[[price]]\n{ENTRY}input = 2\noutput = 8\n[[price]]\n{ENTRY}input = 2\noutput = 8\n"
            "cache_reed = 1\n",
            "{path} entry 2: unknown key 'cache_reed' (known: " + KNOWN + ")",
            id="entry",
        ),
        pytest.param(
            "prices.toml",
            f"[[prices]]\n{ENTRY}input = 2\noutput = 8\n",
            "{path}: unknown key 'prices' (known: price)",
            id="top-level",
        ),
        pytest.param(
            "prices.csv",
            "provider,model,input,output,cache_reed\nopenai,gpt-4o,2,8,1\n",
            "{path}: unknown column 'cache_reed' (known: " + KNOWN + ")",
            id="csv-column",
        ),
    ],
)
def test_an_unknown_key_in_a_price_file_is_refused(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    """A misspelt key must not silently fall back (`cache_reed` would mean the input price)."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PriceFileError) as caught:
        load_price_file(path)
    assert str(caught.value) == message.format(path=path)
    assert caught.value.path == str(path)


def test_an_unnamed_csv_column_is_ignored(tmp_path: Path) -> None:
    """A trailing comma in a spreadsheet's header names no column: the file still loads."""
    path = tmp_path / "prices.csv"
    path.write_text("provider,model,input,output,\nopenai,gpt-4o,2,8,\n")
    assert load_price_file(path).select("model", "input_mtok", "output_mtok").rows() == [
        ("gpt-4o", 2.0, 8.0)
    ]


def test_a_price_file_that_is_not_toml_is_a_price_file_error(tmp_path: Path) -> None:
    """Broken TOML is one PriceFileError naming the file and where the syntax breaks."""
    path = tmp_path / "prices.toml"
    path.write_text("[[price]\nprovider = 'openai'\n")
    with pytest.raises(PriceFileError) as caught:
        load_price_file(path)
    message = str(caught.value)
    assert str(path) in message and "line 1" in message and "\n" not in message
    assert caught.value.path == str(path)


def test_a_missing_price_file_is_a_price_file_error(tmp_path: Path) -> None:
    """A price file that does not exist is named in a PriceFileError, not an OSError."""
    path = tmp_path / "nope.toml"
    with pytest.raises(PriceFileError, match=r"nope\.toml"):
        load_price_file(path)


def test_price_units_are_usd_per_million_tokens(tmp_path: Path) -> None:
    """Prices are stored exactly as written: USD per million tokens, as floats."""
    path = tmp_path / "prices.toml"
    path.write_text(f"[[price]]\n{ENTRY}input = 2.5\noutput = 10\ncache_read = 1.25\n")
    row = load_price_file(path).row(0, named=True)
    assert (row["input_mtok"], row["output_mtok"], row["cache_read_mtok"]) == (2.5, 10.0, 1.25)
    assert row["cache_write_mtok"] is None  # null means "the input price"


# --- provider-prefixed model names (Unified Billing, the OpenAI-compatible endpoint) ---------


@pytest.mark.parametrize(
    ("logged", "priced"),
    [
        (("compat", "openai/gpt-4o-mini"), ("openai", "gpt-4o-mini")),
        (("openai", "openai/gpt-4o-mini"), ("openai", "gpt-4o-mini")),
        (("", "anthropic/claude-3-5-haiku-20241022"), ("anthropic", "claude-3-5-haiku-20241022")),
        (("some-new-slug", "openai/gpt-4o-mini"), ("openai", "gpt-4o-mini")),
        (
            ("workers-ai", "workers-ai/@cf/meta/llama-3.1-8b-instruct"),
            ("workers-ai", "@cf/meta/llama-3.1-8b-instruct"),
        ),
        (("compat", "google-ai-studio/gemini-2.0-flash"), ("google-ai-studio", "gemini-2.0-flash")),
        # another catalogue provider's own names keep their slash
        (("openrouter", "openai/gpt-4o"), ("openrouter", "openai/gpt-4o")),
        (("groq", "meta-llama/llama-4-scout"), ("groq", "meta-llama/llama-4-scout")),
        (
            ("workers-ai", "@cf/meta/llama-3.1-8b-instruct"),
            ("workers-ai", "@cf/meta/llama-3.1-8b-instruct"),
        ),
        (("replicate", "acme/llama-ft"), ("replicate", "acme/llama-ft")),
        (("replicate", "openai/whisper"), ("replicate", "openai/whisper")),
    ],
)
def test_price_key_reads_a_provider_prefix(
    logged: tuple[str, str], priced: tuple[str, str]
) -> None:
    """A `<slug>/<model>` name is read as that provider's model unless the logged provider
    is another catalogue provider (whose own model names hold a slash)."""
    assert price_key(*logged) == priced


def test_a_prefixed_model_gets_the_catalogue_rows_under_its_logged_pair() -> None:
    """compat + openai/gpt-4o-mini is priced as OpenAI's gpt-4o-mini ($0.15 / $0.60 per
    MTok); the rows keep the pair as logged so that requests join them unchanged."""
    table = catalog_prices([("compat", "openai/gpt-4o-mini")])
    assert table.select("provider", "model", "price_ref", "input_mtok", "output_mtok").rows() == [
        ("compat", "openai/gpt-4o-mini", "gpt-4o-mini", 0.15, 0.6)
    ]


def test_an_override_for_the_parsed_pair_applies_to_the_prefixed_one(tmp_path: Path) -> None:
    """A price file entry for openai/gpt-4o-mini (as a user writes it: provider openai,
    model gpt-4o-mini) also prices compat + openai/gpt-4o-mini."""
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[price]]\nprovider = "openai"\nmodel = "gpt-4o-mini"\ninput = 0.1\noutput = 0.4\n'
    )
    table = price_table([("compat", "openai/gpt-4o-mini")], load_price_file(path))
    overrides = table.filter(pl.col("source") == "override")
    assert overrides.select("provider", "model", "input_mtok").rows() == [
        ("openai", "gpt-4o-mini", 0.1),
        ("compat", "openai/gpt-4o-mini", 0.1),
    ]
