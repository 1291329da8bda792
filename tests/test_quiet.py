"""fairnoise._quiet: fairnoise's expected warnings silenced without swapping the filters."""

from __future__ import annotations

import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning

from fairnoise._quiet import SKLEARN_CONVERGENCE, ignoring

EXPECTED = (UserWarning, "expected", "")


def messages(seen) -> list[str]:
    return [str(w.message) for w in seen]


def test_only_the_named_warnings_are_dropped_and_the_filters_are_left_as_they_were():
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        inner_before = list(warnings.filters)
        with ignoring(EXPECTED):
            warnings.warn("expected notice", UserWarning, stacklevel=1)
            warnings.warn("a user's notice", UserWarning, stacklevel=1)
            warnings.warn("expected, but another category", RuntimeWarning, stacklevel=1)
        assert warnings.filters == inner_before
        warnings.warn("expected notice, after the scope", UserWarning, stacklevel=1)
    assert messages(seen) == ["a user's notice", "expected, but another category",
                              "expected notice, after the scope"]
    assert warnings.filters == before


def test_convergence_warnings_are_dropped_only_from_sklearns_modules():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with ignoring(SKLEARN_CONVERGENCE):
            warnings.warn_explicit("sklearn's", ConvergenceWarning, "x.py", 1,
                                   module="sklearn.linear_model._logistic")
            warnings.warn_explicit("a user's", ConvergenceWarning, "x.py", 1,
                                   module="my_encoder")
    assert messages(seen) == ["a user's"]


def test_a_nested_scope_leaves_the_filter_to_the_enclosing_one():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with ignoring(EXPECTED):
            with ignoring(EXPECTED):
                pass
            warnings.warn("expected, after the inner scope", UserWarning, stacklevel=1)
        warnings.warn("expected, after both", UserWarning, stacklevel=1)
    assert messages(seen) == ["expected, after both"]


def test_an_equal_filter_of_the_users_is_not_taken_out():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "expected", UserWarning)
        users = list(warnings.filters)
        with ignoring(EXPECTED):
            pass
        assert warnings.filters == users


@pytest.mark.parametrize("order", ["ours theirs -theirs -ours", "ours theirs -ours -theirs",
                                   "theirs ours -theirs -ours", "theirs ours -ours -theirs"])
def test_another_threads_catch_warnings_in_between_keeps_nothing_of_the_scope(order):
    # what a query thread running the user's encoder may do meanwhile: enter and leave a
    # catch_warnings of its own (which puts back the list it found), in any interleaving
    before = list(warnings.filters)
    scopes = {"ours": ignoring(EXPECTED), "theirs": warnings.catch_warnings()}
    for event in order.split():
        if event.startswith("-"):
            scopes[event[1:]].__exit__(None, None, None)
        else:
            scopes[event].__enter__()
    assert warnings.filters == before


def test_a_default_warning_already_shown_is_not_shown_again_after_the_scope():
    # filterwarnings (and catch_warnings) would clear the record of what was shown
    def notice():
        warnings.warn("a user's notice", UserWarning, stacklevel=1)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        notice()
        with ignoring(EXPECTED):
            notice()
        notice()
    assert messages(seen) == ["a user's notice"]
