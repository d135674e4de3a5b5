"""Figures measured in this process or in fresh interpreters, not over HTTP.

- token_cached_us / token_cold_us / token_cold_ratio: what the HTTP function
  does per request to authenticate (``bearer_token`` + ``GoogleAuthVerifier.verify``
  with the dev issuer's keys), for a token it has seen and for a new one, and
  the new-token cost ÷ a bare ``google.auth.jwt.decode`` of the same token.
- import_ratio: ``import main`` ÷ importing functions_framework,
  google.cloud.firestore, google.cloud.pubsub and google.auth, each in a fresh
  interpreter (cold start).
- firestore_*_per_*: the store's own AccessCounter around the service's use
  cases, checked against the RPCs the Firestore client actually sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from google.auth import crypt, jwt
from werkzeug.datastructures import Headers

from bench.measure import median
from bench.stack import BenchStack, running_record
from lib.core import model
from lib.core.config import Settings
from lib.core.service import OperationsService
from lib.core.store import FirestoreOperationStore
from lib.edge.auth import GoogleAuthVerifier, bearer_token
from lib.tools import devtoken
from lib.tools.localstack import DEV_POLICY, REPO


def tokens(dev_dir: Path, cached_samples: int, cold_samples: int) -> dict[str, float]:
    """Per-request auth cost in microseconds, cached and cold, and the cold ratio."""
    settings = Settings.from_env({"AUTH_ISSUERS": devtoken.issuers_env(dev_dir),
                                  "AUTH_TOKENINFO_URL": ""})
    verifier = GoogleAuthVerifier(settings)

    def authenticate(headers: Headers) -> None:
        token = bearer_token(headers, trust_forwarded=settings.trust_forwarded_authorization,
                             max_length=settings.max_token_length)
        verifier.verify(token)

    repeated = Headers({"Authorization": f"Bearer {devtoken.mint(dev_dir=dev_dir)}"})
    for _ in range(1000):
        authenticate(repeated)
    cached = _per_call_ns(lambda: authenticate(repeated), cached_samples)

    # New tokens, minted ahead of time: distinct subjects make distinct JWTs
    # (RS256 signatures are deterministic, so same-second twins would collide).
    warmup = 50
    fresh = _mint_many(dev_dir, warmup + cold_samples)
    kid, pem = _dev_public_key(dev_dir)
    cold_ns, bare_ns = [], []
    for i, token in enumerate(fresh):
        headers = Headers({"Authorization": f"Bearer {token}"})
        if i % 2:
            bare = _once_ns(lambda t=token: jwt.decode(t, certs={kid: pem}))
            cold = _once_ns(lambda h=headers: authenticate(h))
        else:
            cold = _once_ns(lambda h=headers: authenticate(h))
            bare = _once_ns(lambda t=token: jwt.decode(t, certs={kid: pem}))
        if i >= warmup:
            cold_ns.append(cold)
            bare_ns.append(bare)
    return {
        "token_cached_us": median(cached) / 1e3,
        "token_cold_us": median(cold_ns) / 1e3,
        "token_bare_decode_us": median(bare_ns) / 1e3,
        "token_cold_ratio": median(cold_ns) / median(bare_ns),
        "token_cached_share_of_cold": median(cached) / median(cold_ns),
    }


def _once_ns(call: Callable[[], Any]) -> int:
    started = time.perf_counter_ns()
    call()
    return time.perf_counter_ns() - started


def _per_call_ns(call: Callable[[], Any], samples: int) -> list[int]:
    return [_once_ns(call) for _ in range(samples)]


def _mint_many(dev_dir: Path, count: int) -> list[str]:
    """Tokens with the claims ``lib.tools.devtoken.mint`` makes, one signer for all
    (``mint`` reloads the private key on every call: slow for hundreds)."""
    pem = (dev_dir / "dev-issuer.pem").read_bytes()
    kid, _ = _dev_public_key(dev_dir)
    signer = crypt.RSASigner.from_string(pem, key_id=kid)
    now = int(time.time())
    return [
        jwt.encode(signer, {"iss": devtoken.DEV_ISSUER, "aud": devtoken.local_audience(),
                            "sub": f"user{i}@example.com",
                            "email": f"user{i}@example.com", "iat": now, "exp": now + 3600,
                            "scope": devtoken.DEFAULT_SCOPE}).decode("ascii")
        for i in range(count)
    ]


def _dev_public_key(dev_dir: Path) -> tuple[str, bytes]:
    """The dev issuer's kid and public key PEM (what the verifier's key set holds)."""
    jwks = json.loads(Path(devtoken.ensure_dev_key(dev_dir)).read_text())
    private = serialization.load_pem_private_key((dev_dir / "dev-issuer.pem").read_bytes(),
                                                 password=None)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return jwks["keys"][0]["kid"], pem


_IMPORT_MAIN = "import main"
_IMPORT_LIBRARIES = ("import functions_framework, google.cloud.firestore, "
                     "google.cloud.pubsub, google.auth")


def imports(dev_dir: Path, runs: int) -> dict[str, float]:
    """import_ratio: medians of ``runs`` fresh interpreters each, interleaved."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "FIRESTORE_", "PUBSUB_"))}
    env.update({"AUTH_ISSUERS": devtoken.issuers_env(dev_dir), "AUTH_TOKENINFO_URL": "",
                "OPERATIONS_POLICY_FILE": str(DEV_POLICY)})
    main_s, libs_s = [], []
    for i in range(runs + 1):  # the first pair warms the page cache and .pyc files
        pair = [(_IMPORT_MAIN, main_s), (_IMPORT_LIBRARIES, libs_s)]
        for statement, into in (pair if i % 2 else reversed(pair)):
            seconds = _import_seconds(statement, env)
            if i:
                into.append(seconds)
    return {
        "import_main_ms": median(main_s) * 1e3,
        "import_libraries_ms": median(libs_s) * 1e3,
        "import_ratio": median(main_s) / median(libs_s),
    }


def _import_seconds(statement: str, env: dict[str, str]) -> float:
    code = ("import time; _t = time.perf_counter(); " + statement +
            "; print(time.perf_counter() - _t)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True, timeout=120)
    return float(done.stdout.strip().splitlines()[-1])


class WireCount:
    """Counts the Firestore RPCs a client sends: documents asked for in
    BatchGetDocuments, writes in Commit, and transactions begun."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        api = client._firestore_api  # the GAPIC client every Firestore call goes through
        for method, count in (("batch_get_documents", self._documents),
                              ("commit", self._writes),
                              ("begin_transaction", lambda request: 1),
                              ("rollback", lambda request: 1),
                              ("run_query", lambda request: 1)):
            setattr(api, method, self._wrap(method, getattr(api, method), count))

    def _wrap(self, method: str, call: Callable[..., Any],
              count: Callable[[Any], int]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[method] += count(kwargs.get("request", args[0] if args else None))
            return call(*args, **kwargs)

        return counted

    @staticmethod
    def _documents(request: Any) -> int:
        return len(request["documents"] if isinstance(request, dict) else request.documents)

    @staticmethod
    def _writes(request: Any) -> int:
        return len(request["writes"] if isinstance(request, dict) else request.writes)

    def snapshot(self) -> Counter[str]:
        return Counter(self.calls)


class _NoPublisher:
    def publish(self, name: str) -> None:
        raise AssertionError("the bench never creates jobs through the service")


def firestore_counts(stack: BenchStack, operations: int) -> dict[str, float]:
    """Reads and writes per use case, from the store's counter (what the HTTP
    function's store counts for the same call) and from the wire."""
    from google.cloud import firestore

    client = firestore.Client(project=stack.client.project)
    wire = WireCount(client)
    store = FirestoreOperationStore(client, stack.collection)
    service = OperationsService(store, _NoPublisher(),
                                Settings(collection=stack.collection, page_token_secret="bench"))
    names = [f"projects/bench/locations/us/operations/count-{i:03d}" for i in range(operations)]
    stack.seed(running_record(name, model.utcnow()) for name in names)
    service.get_operation(names[0])  # warm the channel; not counted

    def per_call(call: Callable[[str], Any]) -> tuple[float, float, float, float]:
        reads, writes, before = store.counter.reads, store.counter.writes, wire.snapshot()
        for name in names:
            call(name)
        sent = wire.snapshot() - before
        n = len(names)
        return ((store.counter.reads - reads) / n, (store.counter.writes - writes) / n,
                sent["batch_get_documents"] / n, sent["commit"] / n)

    cancel = per_call(lambda name: service.cancel_operation(name, "dev@example.com"))
    repeat = per_call(lambda name: service.cancel_operation(name, "dev@example.com"))
    get = per_call(service.get_operation)
    client.close()
    if any(abs(a - b) > 1e-9 for a, b in ((cancel[0], cancel[2]), (cancel[1], cancel[3]),
                                          (get[0], get[2]), (repeat[1], repeat[3]))):
        raise RuntimeError(f"store counter and wire disagree: cancel {cancel}, get {get}, "
                           f"repeat cancel {repeat}")
    return {
        "firestore_reads_per_cancel": cancel[0],
        "firestore_writes_per_cancel": cancel[1],
        "firestore_writes_per_repeat_cancel": repeat[1],
        "firestore_reads_per_get": get[0],
    }

