"""A black-box embedding API: query budget, concurrent requests, and resuming after a failure.

GeZONoiseTransformer learns the edit from the encoder's outputs alone, so the encoder can
be a web service you pay per image. This example simulates one: every request has a
latency, some fail transiently (retried), and the service goes down partway through the
search (a persistent failure). The search

* never sends more images than ``max_queries`` (the budget covers the embedding of the
  training images for the probe, too);
* sends independent requests on ``n_jobs`` threads, which hides the latency;
* keeps its progress when a request fails for good: the error says how to resume, and
  ``warm_start=True`` continues exactly where the search stopped, without paying again
  for what it already got.

It ends with the effect next to the baseline: the same head on the encoder's embeddings
as they are (ERM) and on the edited ones, scored on an unconfounded test set (task AUC,
equalized-odds gap, conditional leakage of the group).

    python examples/blackbox_api.py          # about a minute
    python examples/blackbox_api.py --quick  # seconds (CI)

To use a real service, replace ``SimulatedEmbeddingAPI`` by a function that sends a batch
(a float32 array N×C×H×W in [0, 1]) and returns the N×E embeddings; raise
``ConnectionError`` (or list your HTTP client's exceptions in ``transient_errors``) for
failures worth retrying.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fairnoise import CallableEncoder, GeZONoiseTransformer, QueryError
from fairnoise.datasets import make_spurious_images
from fairnoise.encoders import make_standin_encoder
from fairnoise.metrics import fairness_report, leakage_auc


class ServiceDown(RuntimeError):
    """A failure that retrying does not fix (an exhausted quota, an outage)."""


class SimulatedEmbeddingAPI:
    """A pretend embedding service in front of a frozen model.

    Parameters
    ----------
    latency : float
        Seconds each request takes.
    flaky_every : int
        Every ``flaky_every``-th request fails with a ``ConnectionError`` (transient).
    down_after : int or None
        Requests after this many fail with ``ServiceDown`` until ``restore()``.
    """

    def __init__(self, latency: float, flaky_every: int = 7, down_after: int | None = None):
        self.model = make_standin_encoder(random_state=0)
        self.latency, self.flaky_every, self.down_after = latency, flaky_every, down_after
        self.requests = 0
        self._lock = threading.Lock()

    def restore(self) -> None:
        self.down_after = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            self.requests += 1
            request = self.requests
        time.sleep(self.latency)
        if self.down_after is not None and request > self.down_after:
            raise ServiceDown("503 Service Unavailable: daily quota exhausted")
        if request % self.flaky_every == 0:
            raise ConnectionError("connection reset by peer")
        with torch.no_grad():
            return self.model(torch.from_numpy(batch)).numpy()


def main(quick: bool = False) -> GeZONoiseTransformer:
    n = 300 if quick else 1500
    train = make_spurious_images(n, correlation=0.8, random_state=0)
    test = make_spurious_images(n, correlation=0.0, random_state=1)
    budget = 12_000 if quick else 120_000
    latency = 0.002 if quick else 0.01

    api = SimulatedEmbeddingAPI(latency=latency, down_after=40 if quick else 200)
    # The query engine: calls of at most 128 images, retries of ConnectionError after
    # 0.01 s, 0.02 s, ... (failed calls are not counted as queries).
    encoder = CallableEncoder(api, batch_size=128, retry_delay=0.01)
    gezo = GeZONoiseTransformer(encoder, max_queries=budget, n_jobs=4, random_state=0)

    start = time.perf_counter()
    try:
        gezo.fit(train.images, train.y, sensitive_features=train.sensitive_features)
    except QueryError as error:
        print(f"fit stopped: {error}\n")
        print(f"kept: {gezo.n_iter_} iterations, {gezo.n_queries_:,} images paid for")

    # The service is back: continue the same search where it stopped.
    api.restore()
    gezo.set_params(warm_start=True)
    gezo.fit(train.images, train.y, sensitive_features=train.sensitive_features)
    seconds = time.perf_counter() - start
    print(f"done: {gezo.n_iter_} iterations, {gezo.n_queries_:,} of {budget:,} images in "
          f"{seconds:.1f} s with 4 concurrent requests ({api.requests} requests in all, "
          "retries included)")

    def leakage(Z_train: np.ndarray, Z_test: np.ndarray) -> float:
        return leakage_auc(Z_train, train.sensitive_features, y=train.y, Z_test=Z_test,
                           sensitive_features_test=test.sensitive_features, y_test=test.y)

    def classifier(Z_train: np.ndarray, Z_test: np.ndarray) -> dict:
        """The same head on either embeddings, scored on the unconfounded test set."""
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        proba = head.fit(Z_train, train.y).predict_proba(Z_test)[:, 1]
        return fairness_report(test.y, proba, sensitive_features=test.sensitive_features).summary

    with torch.no_grad():  # the clean embeddings, computed locally (no API cost here)
        clean = [api.model(torch.from_numpy(d.images)).numpy() for d in (train, test)]
    edited = [gezo.transform(d.images) for d in (train, test)]  # queries the API again
    # the baseline (ERM: the encoder's embeddings as they are) next to the edit's effect
    for name, Z in (("ERM (no edit)", clean), ("GeZO edit", edited)):
        s = classifier(*Z)
        print(f"{name:>13}: task AUC {s['overall_auc']:.3f}, equalized-odds gap "
              f"{s['equalized_odds_difference']:.3f}, conditional leakage of the group "
              f"{leakage(*Z):.3f} (0.5 = hidden)")
    return gezo


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds, for CI")
    main(parser.parse_args().quick)
