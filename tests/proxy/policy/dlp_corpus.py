"""A DLP corpus: secrets and PII of every category in varied surroundings, and benign
text that must stay clean. Generated from a fixed seed, so every run tests the same items.

``SECRETS`` items are ``(category, text, secret)``: ``secret`` is the part of ``text`` that
must not survive redaction (a value without its name, a URL's password, a whole encoded
run). ``BENIGN`` items are texts in which DLP should find nothing.
"""

from __future__ import annotations

import base64
import json
import random
import string
from urllib.parse import quote

__all__ = ["BENIGN", "SECRETS"]

_rng = random.Random(20250114)  # noqa: S311 - a reproducible corpus, not key material
_ALNUM = string.ascii_letters + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits
_B64 = string.ascii_letters + string.digits + "+/"

# Surroundings a secret is written in: prose, YAML, quoted, in brackets, alone on a line.
_AROUND = (
    "Here it is: {} -- keep it safe.",
    "config:\n  value: {}\n  retries: 3\n",
    'He wrote "{}" in the ticket.',
    "(see {})",
    "{}",
    "Line one.\n{}\nLine three.",
)


def _pick(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _mixed(n: int, alphabet: str = _ALNUM) -> str:
    """A random token with upper and lower case letters and digits."""
    while True:
        token = _pick(alphabet, n)
        classes = (str.isupper, str.islower, str.isdigit)
        if all(any(test(c) for c in token) for test in classes):
            return token


def _luhn_complete(prefix: str, length: int) -> str:
    body = prefix + _pick(string.digits, length - len(prefix) - 1)
    for check in string.digits:
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def _iban(country: str, bban: str) -> str:
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(claims: dict[str, object]) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    return f"{header}.{payload}.{_b64url(_rng.randbytes(32))}"


def _pem(kind: str) -> str:
    lines = [_pick(_B64, 64) for _ in range(4)]
    label = f"{kind} PRIVATE KEY".strip()
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"


def _placed(category: str, secrets: list[str]) -> list[tuple[str, str, str]]:
    return [(category, _AROUND[i % len(_AROUND)].format(s), s) for i, s in enumerate(secrets)]


def _named(category: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """Items whose text is ``template`` with the secret in its ``{}``."""
    return [(category, template.format(secret), secret) for template, secret in pairs]


def _build() -> list[tuple[str, str, str]]:
    items: list[tuple[str, str, str]] = []
    names = ("jane.roe", "j_smith", "ops+alerts", "maria.garcia", "li.wei", "o.brien")
    domains = ("example.com", "mail.example.co.uk", "corp.example.org", "ex-ample.io")
    items += _placed("EMAIL", [f"{n}{i}@{domains[i % 4]}" for i, n in enumerate(names * 2)])
    phones = [
        "+44 20 7946 0958",
        "+1 415 555 2671",
        "+49 30 901820",
        "+33 1 42 68 53 00",
        "(415) 555-2671",
        "212-555-0147",
        "312.555.0199",
        "+81 3-1234-5678",
        "+61 2 9876 5432",
        "(646) 555-0111",
    ]
    items += _placed("PHONE", phones)
    cards = [_luhn_complete(p, n) for p, n in (("4", 16), ("51", 16), ("37", 15), ("6011", 16))]
    cards += [_luhn_complete(p, n) for p, n in (("2221", 16), ("4", 13), ("55", 16), ("35", 16))]
    spaced = [" ".join(c[i : i + 4] for i in range(0, 16, 4)) for c in cards[:2]]
    dashed = ["-".join(cards[5 + i][j : j + 4] for j in range(0, 16, 4)) for i in (1, 2)]
    items += _placed("CARD_NUMBER", cards + spaced + dashed)
    ibans = [_iban("DE", _pick(string.digits, 18)) for _ in range(4)]
    ibans += [_iban("GB", "WEST" + _pick(string.digits, 14)) for _ in range(3)]
    ibans += [_iban("FR", _pick(string.digits, 23)) for _ in range(3)]
    grouped = [" ".join(ib[i : i + 4] for i in range(0, len(ib), 4)) for ib in ibans[:3]]
    items += _placed("IBAN", ibans + grouped)
    ssns = [f"{_rng.randint(1, 665):03d}-{_rng.randint(1, 99):02d}-{_rng.randint(1, 9999):04d}"]
    ssns += [f"{_rng.randint(1, 665):03d}-{_rng.randint(1, 99):02d}-{_rng.randint(1, 9999):04d}"]
    ssns += ["123-45-6789", "078-05-1120", "219 09 9999", "536 22 1234"]
    items += _placed("NATIONAL_ID", ssns)
    items += _named(
        "NATIONAL_ID",
        [
            ("Passport number: {}", "123456789"),
            ("US passport no. {} (expires 2031)", "987654321"),
            ("passport #{}", "456123789"),
            ("My passport is {}.", "314159265"),
        ],
    )
    ips = [".".join(str(_rng.randint(1, 254)) for _ in range(4)) for _ in range(6)]
    ips += ["10.0.0.1", "2001:db8::8a2e:370:7334", "fe80::1ff:fe23:4567:890a", "192.168.100.200"]
    items += _placed("IP_ADDRESS", ips)
    aws_ids = ["AKIA" + _pick(_UPPER_DIGITS, 16) for _ in range(5)]
    aws_ids += ["ASIA" + _pick(_UPPER_DIGITS, 16) for _ in range(3)]
    items += _placed("AWS_ACCESS_KEY", aws_ids)
    aws_secret = [_mixed(40, _B64) for _ in range(6)]
    items += _named(
        "AWS_SECRET_KEY",
        [
            ("aws_secret_access_key = {}", aws_secret[0]),
            ("AWS_SECRET_ACCESS_KEY={}", aws_secret[1]),
            ('"SecretAccessKey": "{}"', aws_secret[2]),
            (f"id {aws_ids[0]} secret {{}}", aws_secret[3]),
            ("aws_secret_key: {}", aws_secret[4]),
            (f"{aws_ids[1]}\n{{}}", aws_secret[5]),
        ],
    )
    github = ["ghp_" + _mixed(36), "gho_" + _mixed(36), "ghs_" + _mixed(36), "ghu_" + _mixed(36)]
    github += ["ghr_" + _mixed(36), "github_pat_11" + _mixed(20) + "_" + _mixed(59)]
    github += ["ghp_" + _mixed(300)]
    items += _placed("GITHUB_TOKEN", github)
    slack = [
        f"xoxb-{_pick(string.digits, 12)}-{_pick(string.digits, 13)}-{_mixed(24)}",
        f"xoxp-{_pick(string.digits, 12)}-{_pick(string.digits, 12)}-{_mixed(32)}",
        f"xoxa-2-{_pick(string.digits, 12)}-{_mixed(30)}",
        f"https://hooks.slack.com/services/T{_pick(_UPPER_DIGITS, 10)}/B{_pick(_UPPER_DIGITS, 10)}/"
        + _mixed(24),
        f"https://hooks.slack.com/services/T{_pick(_UPPER_DIGITS, 8)}/B{_pick(_UPPER_DIGITS, 11)}/"
        + _mixed(24),
        f"hooks.slack.com/workflows/T{_pick(_UPPER_DIGITS, 9)}/A{_pick(_UPPER_DIGITS, 10)}/"
        + _pick(string.digits, 18)
        + "/"
        + _mixed(24),
    ]
    items += _placed("SLACK_TOKEN", slack)
    openai = ["sk-" + _mixed(48), "sk-proj-" + _mixed(56), "sk-svcacct-" + _mixed(40)]
    openai += ["sk-proj-" + _mixed(20) + "_" + _mixed(40) + "-" + _mixed(30)]
    items += _placed("OPENAI_KEY", openai)
    anthropic = ["sk-ant-api03-" + _mixed(93) + "-" + _mixed(6) + "AA" for _ in range(3)]
    anthropic += ["sk-ant-admin01-" + _mixed(80)]
    items += _placed("ANTHROPIC_KEY", anthropic)
    keys = [_pem(kind) for kind in ("RSA", "EC", "OPENSSH", "", "ENCRYPTED", "DSA")]
    keys += [
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n" + _pick(_B64, 64) + "\n=abcd\n"
        "-----END PGP PRIVATE KEY BLOCK-----"
    ]
    items += _placed("PRIVATE_KEY", keys)
    jwts = [_jwt({"sub": str(_rng.randint(1, 10**9)), "iat": 1700000000}) for _ in range(4)]
    jwts += [_jwt({"role": "admin", "exp": 1900000000, "scope": "read write"})]
    items += _placed("JWT", jwts)
    items += _build_credentials()
    # Last: a key block cut off before its END line is redacted to the end of the text.
    cut = _pem("RSA")[:120]
    items.append(("PRIVATE_KEY", f"key:\n{cut}", cut))
    return items


def _build_credentials() -> list[tuple[str, str, str]]:
    """PASSWORD_ASSIGNMENT: assignments, vendor tokens, URL and header credentials, Azure;
    and findings hidden by base64 or URL encoding (their own category)."""
    long_key = base64.b64encode(_rng.randbytes(1230)).decode()  # 1,640 characters
    pw = [_mixed(12, _ALNUM + "!#%&*") for _ in range(8)]
    pairs = [
        ("password={}", pw[0]),
        ('"api_key": "{}"', pw[1]),
        ("secret: {}", pw[2]),
        ("DB_PASSWORD='{}'", pw[3]),
        ("auth_token => {}", pw[4]),
        ("client_secret = {}", pw[5]),
        ("private_key={}", long_key),
        ("passphrase: {}", pw[6]),
        ("export GITLAB_TOKEN={}", pw[7]),
    ]
    out = _named("PASSWORD_ASSIGNMENT", pairs)
    tokens = [
        "sk_live_" + _mixed(24),
        "sk_test_" + _mixed(24),
        "rk_live_" + _mixed(99),
        "rk_test_" + _mixed(24),
        "AIza" + _mixed(35, _ALNUM + "_-"),
        "AIza" + _mixed(35),
        "glpat-" + _mixed(20),
        "glpat-" + _mixed(20, _ALNUM + "_-"),
        "hf_" + _mixed(34),
        "hf_" + "".join(_rng.choice(string.ascii_letters) for _ in range(34)),
        "SG." + _mixed(22) + "." + _mixed(43),
        "SG." + _mixed(22, _ALNUM + "_-") + "." + _mixed(43, _ALNUM + "_-"),
    ]
    out += _placed("PASSWORD_ASSIGNMENT", tokens)
    url_pw = [_mixed(14, _ALNUM + "!*~") for _ in range(10)]
    urls = [
        "postgres://app:{}@db.internal:5432/prod",
        "postgresql://admin:{}@10.1.2.3/app",
        "mysql://root:{}@localhost:3306/shop",
        "mongodb://svc:{}@mongo1.example.net,mongo2.example.net/?replicaSet=rs0",
        "mongodb+srv://reader:{}@cluster0.ab1cd.mongodb.net/test",
        "amqp://guest:{}@rabbit.local:5672/vhost",
        "redis://:{}@cache:6379/0",
        "rediss://default:{}@redis.example.com:6380",
        "https://deploy:{}@git.example.com/org/repo.git",
        "DATABASE_URL=postgres://u:{}@127.0.0.1/db",
    ]
    out += _named("PASSWORD_ASSIGNMENT", list(zip(urls, url_pw, strict=True)))
    azure = base64.b64encode(_rng.randbytes(64)).decode()
    out += _named(
        "PASSWORD_ASSIGNMENT",
        [
            (
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={};EndpointSuffix="
                "core.windows.net",
                azure,
            ),
            ("Authorization: Basic {}", base64.b64encode(b"alice:" + pw[0].encode()).decode()),
            (
                "curl -H 'Authorization: Basic {}' https://api.example.com",
                base64.b64encode(b"svc-user:" + pw[1].encode()).decode(),
            ),
        ],
    )
    encoded = [
        ("AWS_ACCESS_KEY", f"aws key AKIA{_pick(_UPPER_DIGITS, 16)}"),
        ("PASSWORD_ASSIGNMENT", f"password={pw[2]}"),
        ("EMAIL", "contact: maria.garcia@example.com"),
        ("GITHUB_TOKEN", "token ghp_" + _mixed(36)),
        ("OPENAI_KEY", "OPENAI_API_KEY=sk-proj-" + _mixed(40)),
    ]
    for category, plain in encoded:
        out.append(
            (
                category,
                f"blob {base64.b64encode(plain.encode()).decode()} end",
                base64.b64encode(plain.encode()).decode(),
            )
        )
        run = base64.urlsafe_b64encode(plain.encode()).decode()
        out.append((category, f"state={run}", run))
    percent = [
        ("EMAIL", "jane.roe@example.com", "https://shop.test/cb?to={}&x=1"),
        ("PASSWORD_ASSIGNMENT", f"password={pw[3]}", "https://shop.test/login?q={}"),
        ("AWS_ACCESS_KEY", "key AKIA" + _pick(_UPPER_DIGITS, 16), "/upload?note={}"),
    ]
    for category, plain, template in percent:
        encoded_value = quote(plain, safe="")
        secret = encoded_value if category != "PASSWORD_ASSIGNMENT" else quote(pw[3], safe="")
        if category == "AWS_ACCESS_KEY":
            secret = plain.split(" ")[1]
        out.append((category, template.format(encoded_value), secret))
    return out


SECRETS: list[tuple[str, str, str]] = _build()

_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAAR0lEQVR42mNkYPhfz0AEYBxVSFchOvn/P3HK"
    "GRhRFTEMGwYhmomhfk0lSFcBZP8PSQaJUZECK2Ai+gVGwmAgihkGm4RhgUcpAE6UEA8Rf4F4AAAAAElFTkSuQmCC"
)

BENIGN: list[str] = [
    "def handler(event, context):\n    items = [x for x in event['items'][1:10] if x > 0]\n",
    "for (let i = 0; i < arr.length; i++) { total += arr[i] * 1.5; }",
    "SELECT id, name FROM users WHERE created_at > '2025-01-01' LIMIT 100;",
    "import os\nkey = os.environ['API_KEY']\npassword = os.environ.get('DB_PASSWORD')",
    "token = get_token()\nsecret = load_secret(path)\napi_key = settings.api_key",
    "x = a[1::2]; y = b[::3]; z = c[::-1]  # slicing",
    "primary key (id), foreign key (user_id) references users(id)",
    "The basic idea is simple: basically, keep it basic.",
    "request id 550e8400-e29b-41d4-a716-446655440000, trace 123e4567-e89b-12d3-a456-426614174000",
    "UUIDs: f47ac10b-58cc-4372-a567-0e02b2c3d479, 9C5B94B1-35AD-49BB-B118-8E8FC24ABF80",
    "commit 3b1e906f2a4c7d9e0b1a2c3d4e5f60718293a4b5 (HEAD -> main)",
    "git SHAs: b020f9b, 4ccd179e3b, 7911eb3c5d2e8f1a0b9c8d7e6f5a4b3c2d1e0f9a",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "md5 d41d8cd98f00b204e9800998ecf8427e and sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "SHA512 CF83E1357EEFB8BDF1542850D66D8007D620E4050B5715DC83F4A921D36CE9CE",
    "Revenue grew 12.5% to $4.2M in Q3 2025, with 1,284 new customers in 17 countries.",
    "The meeting is on 2025-09-14 at 10:30; room 4B; 3 of 12 seats are taken.",
    "Version 2.3.1 shipped; p95 latency fell from 420 ms to 180 ms (-57%).",
    "Population 8,336,817 (2022); area 783.8 km2; founded 1624.",
    "Order #100234 for 3 items totals 149.97 USD; tracking 1Z999AA10123456784.",
    "Call me between 9 and 5, or in 10 minutes; chapter 123 45 pages in.",
    # The one known false positive: three digit groups shaped like an SSN with spaces.
    "He ran 100 20 3000 times? No: 100, 20 and 3000 times.",
    f'<img src="data:image/png;base64,{_PNG}">',
    f"png: {_PNG}",
    "https://example.com/docs/getting-started?lang=en&page=2#install",
    "http://localhost:8080/health and https://localhost:8443/metrics",
    "postgres://db.internal:5432/prod and redis://cache:6379/0 (no credentials)",
    "git clone https://github.com/example/project.git && cd project",
    "mailto links aside, see https://docs.example.org/a/b/c/d/e/f/g?x=1&y=2",
    "Search: https://www.example.com/search?q=hello%20world&sort=new",
    "Path /files/annual%20report%202025.pdf has 25% of the content",
    "sk_test_abcdefghij is a placeholder; hf_download_model_from_hub_now is a function.",
    "glance at the glossary; glibc and GLSL shaders",
    "CSS: .btn-primary-large-rounded-outline-hover { color: #ff00aa; }",
    "Base64 'aGVsbG8gd29ybGQ=' is just hello world.",
    "ISO 8601: 2025-01-14T10:30:00Z; epoch 1736850600; duration PT1H30M",
    "matrix = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]; np.zeros((128, 256))",
    "The ratio 3:4:5 and times 12:30:45 are not addresses.",
    "Use std::vector<int> v; v.push_back(42); std::map<std::string, int> m;",
    "Error 0x8007000E at offset 0x0040A1B2; errno 12 (ENOMEM)",
    "AccountName=devstore;BlobEndpoint=http://localhost:10000/devstore;",
    "Passport photos are 2x2 inches; the office closes at 5 pm.",
    "Long identifier: ThisIsAVeryLongCamelCaseIdentifierNameForTesting123",
    "snake: this_is_a_very_long_snake_case_variable_name_with_words",
    "Kubernetes pod api-server-7d9f8b6c5d-x2k9p restarted 3 times",
    "Docker image sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "npm install lodash@4.17.21 react@18.2.0 @types/node@20.11.5",
    "Contact us via the web form; our office is at 221B Baker Street.",
    "Prices: 4111 units sold, 1111 returned, 1111 exchanged, 1111 lost.",
    "The function returns a 40-char string: AbCdEfGhIjKlMnOpQrStUvWxYz0123456789/+Ab?",
]
