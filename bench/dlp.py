"""DLP and guardrail benchmark: time per 4 KB prompt on the event loop's thread.

    python bench/dlp.py [--repeat 2000]

Times ``proxy.policy.dlp.scan`` on three 4 KB texts (English prose with numbers, Python code,
prose with a handful of PII and secrets), ``proxy.policy.guardrails.evaluate`` on the prose and
code, and a ``StreamRedactor`` fed the prose in 4-character deltas. Prints microseconds
per call (best of 5 runs) and, for DLP, microseconds of CPU per KB of prompt. Not a test:
numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.policy.dlp import StreamRedactor, scan
from proxy.policy.guardrails import evaluate

_PROSE = (
    "Summarise the quarterly report below for the board. Revenue grew 12.5% to $4.2M in "
    "Q3 2025, driven by 1,284 new customers across 17 countries; churn fell from 3.1% to "
    "2.4%. The team shipped version 2.3 of the API on 2025-09-14, migrated 86 services to "
    "the new cluster and cut p95 latency from 420 ms to 180 ms. Headcount is 142 (up 9). "
    "Next quarter we plan to hire 12 engineers, open an office in Lisbon and reduce cloud "
    "spend by 15% through reserved instances. Please keep the tone neutral and list risks: "
    "currency exposure (38% of revenue is in EUR), one customer at 11% of revenue, and the "
    "pending SOC 2 audit scheduled for 2026-01-20. "
)
_CODE = (
    "def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:\n"
    "    items = [x for x in event.get('items', [])[1:10] if x['qty'] > 0]\n"
    "    total = sum(i['price'] * i['qty'] for i in items)  # cents\n"
    "    api_key = os.environ['API_KEY']\n"
    "    resp = session.post(f'{BASE}/v1/orders', json={'total': total}, timeout=3.5)\n"
    "    return {'statusCode': 200, 'body': json.dumps({'ok': True, 'n': len(items)})}\n\n"
)
_DIRTY = (
    "Contact jane.roe@example.com or +44 20 7946 0958 about card 4111 1111 1111 1111; "
    "the deploy uses AKIAIOSFODNN7EXAMPLE and password=Tr0ub4dor&3x. "
)


def _four_kb(block: str) -> str:
    return (block * (4096 // len(block) + 1))[:4096]


def _stream(text: str) -> None:
    redactor = StreamRedactor()
    for i in range(0, len(text), 4):
        redactor.feed(text[i : i + 4])
    redactor.flush()


def _best_us(fn: Callable[[], object], repeat: int) -> float:
    return min(timeit.repeat(fn, number=repeat, repeat=5)) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    prose, code, dirty = _four_kb(_PROSE), _four_kb(_CODE), _PROSE * 3 + _DIRTY
    dirty = (dirty * 2)[:4096]
    print(
        f"findings in the dirty text: {len(scan(dirty))} (prose {len(scan(prose))}, "
        f"code {len(scan(code))})"
    )
    for name, text in (("prose", prose), ("code", code), ("dirty", dirty)):
        us = _best_us(lambda t=text: scan(t), args.repeat)
        print(f"scan {name:5} 4 KB: {us:8.1f} us ({us / 4:6.1f} us per KB)")
    for name, text in (("prose", prose), ("code", code)):
        us = _best_us(lambda t=text: evaluate([t]), args.repeat)
        print(f"guardrails {name:5} 4 KB: {us:8.1f} us")
    us = _best_us(lambda: _stream(prose), max(1, args.repeat // 100))
    print(f"stream redactor, 4 KB in 4-char deltas: {us:8.1f} us ({us / 4:6.1f} us per KB)")


if __name__ == "__main__":
    main()
