"""The guard also judges each learned mask rounded to its bounds (replace, don't dim)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import make_encoder, make_marker_images

from fairnoise import DebiasedNoiseTransformer, GeZONoiseTransformer
from fairnoise._guard import ROUNDING_THRESHOLD

ROUNDED = "masked edit, rounded"


class CountingEncoder(torch.nn.Module):
    """The test encoder, counting the images it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.inner, self.images = make_encoder(), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        return self.inner(x)


def fit(strategy="gauss_newton", encoder=None, **params):
    X, y, a = make_marker_images(n=240)
    t = GeZONoiseTransformer(make_encoder() if encoder is None else encoder,
                             strategy=strategy, noise_resolution=4, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return t.fit(X, y, sensitive_features=a)


def test_a_dimmed_mask_is_replaced_by_its_rounded_mask_when_a_fresh_probe_backs_it():
    # the search leaves faint values over cells it only dims; rounded, the marker's cell is
    # replaced outright and the rest kept, and the fresh probe reads the group less
    t = fit(max_queries=20_000, erase=False, standardize=False)
    table = t.validation_.set_index("candidate")
    assert list(table.index) == ["identity", "masked edit", ROUNDED]
    assert table.loc[ROUNDED, "cond_leakage"] < table.loc["masked edit", "cond_leakage"]
    assert bool(table.loc[ROUNDED, "selected"])
    searched = t._search_param
    assert not np.isin(searched, (0.0, 1.0)).all()  # the search itself dimmed some cells
    np.testing.assert_array_equal(t.edit_.param, (searched >= ROUNDING_THRESHOLD))
    assert set(np.unique(t.mask_)) <= {0.0, 1.0}  # every pixel kept or replaced
    # a warm start continues the search from where it stood, not from the rounded mask
    assert not np.array_equal(t._search_param, t.edit_.param)


def test_the_rounded_mask_costs_one_pass_and_leaves_the_search_unchanged(monkeypatch):
    counting = CountingEncoder()
    t = fit(encoder=counting, max_epochs=2, erase=False, standardize=False)
    assert ROUNDED in set(t.validation_["candidate"])
    monkeypatch.setattr(GeZONoiseTransformer, "_rounds", lambda self: False)
    plain = CountingEncoder()
    u = fit(encoder=plain, max_epochs=2, erase=False, standardize=False)
    assert ROUNDED not in set(u.validation_["candidate"])
    assert counting.images - plain.images == 240  # one pass of the inputs
    assert t.n_queries_ - u.n_queries_ == 240
    assert t.loss_curve_ == u.loss_curve_
    np.testing.assert_array_equal(t._search_param, u._search_param)


def test_a_budget_holds_back_the_rounded_pass():
    t = fit(max_queries=8_000, erase=False, standardize=False)
    assert t.n_queries_ <= 8_000
    assert ROUNDED in set(t.validation_["candidate"])


@pytest.mark.parametrize("param, judged", [
    (np.zeros((1, 4, 4)), False),                        # the identity: nothing to round
    (np.full((1, 4, 4), 0.4), False),                    # rounds to the identity
    (np.eye(4)[None], False),                            # already at its bounds
    (np.where(np.eye(4) > 0, 0.7, 0.2)[None], True),
])
def test_rounding_is_judged_only_where_it_gives_another_edit(param, judged):
    t = fit(max_epochs=1, erase=False, standardize=False)
    edit = t._space.fitted(torch.from_numpy(param.astype(np.float32)), t._fill)
    variants = t._variants(edit, 240)
    assert len(variants) == judged
    if judged:
        name, rounded = variants[0]
        assert name == ROUNDED
        np.testing.assert_array_equal(rounded.param, param >= ROUNDING_THRESHOLD)


def test_no_rounding_for_an_additive_edit():
    t = fit(max_epochs=1, edit="additive", erase=False, standardize=False)
    assert ROUNDED not in set(t.validation_["candidate"])
    X, y, a = make_marker_images(n=240)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = DebiasedNoiseTransformer(make_encoder(), edit="additive", max_epochs=1,
                                     random_state=0).fit(X, y, sensitive_features=a)
    assert not d.validation_["candidate"].str.contains("rounded").any()


def test_the_white_box_class_judges_each_distinct_rounded_mask_of_its_path_once(monkeypatch):
    X, y, a = make_marker_images(n=240)
    offered, embedded = [], []
    variants = DebiasedNoiseTransformer._variants
    embed_again = DebiasedNoiseTransformer._embed_again

    def spy_variants(self, edit, n):
        out = variants(self, edit, n)
        offered.extend(v.param.copy() for _, v in out)
        return out

    def spy_embed(self, X_, edit):
        embedded.append(edit.param.copy())
        return embed_again(self, X_, edit)

    monkeypatch.setattr(DebiasedNoiseTransformer, "_variants", spy_variants)
    monkeypatch.setattr(DebiasedNoiseTransformer, "_embed_again", spy_embed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = DebiasedNoiseTransformer(make_encoder(), max_epochs=4, noise_resolution=4,
                                     erase=False, standardize=False,
                                     random_state=0).fit(X, y, sensitive_features=a)
    distinct = [p for i, p in enumerate(offered)
                if not any(np.array_equal(p, q) for q in offered[:i])]
    assert len(offered) > len(distinct) >= 1  # the λ path's masks rounded alike here
    rows = d.validation_[d.validation_["candidate"] == ROUNDED]
    assert len(rows) == len(distinct)  # each judged once, by one pass of the inputs
    assert sum(any(np.array_equal(e, p) for p in distinct) for e in embedded) == len(distinct)
    for p in distinct:  # binary: every cell kept or replaced outright
        assert set(np.unique(p)) <= {0.0, 1.0}
