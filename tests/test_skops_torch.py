"""skops and torch: an image-mode transformer is refused by skops with a message pointing to
export_noise, while pickle and copy keep working (issue 14 §9)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from conftest import make_encoder, make_marker_images

from fairnoise import DebiasedNoiseTransformer

ENC = make_encoder()
X, Y, A = make_marker_images(n=160)
N, B = len(X), 64

WHITE = dict(max_epochs=1, batch_size=B, random_state=0)

def dne(**kw) -> DebiasedNoiseTransformer:
    return DebiasedNoiseTransformer(**{"encoder": ENC, **WHITE, **kw})


def test_skops_dump_of_an_image_mode_pipeline_points_to_export_noise(tmp_path):
    sio = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(dne(), LogisticRegression())
    pipe.fit(X, Y, debiasednoisetransformer__sensitive_features=A)
    with pytest.raises(TypeError, match=r"skops cannot store this DebiasedNoiseTransformer: "
                                        r"encoder holds torch.*export_noise\(path\)"):
        sio.dump(pipe, tmp_path / "pipe.skops")


def test_image_mode_transformers_still_pickle_and_copy():
    t = dne().fit(X, Y, sensitive_features=A)
    for other in (pickle.loads(pickle.dumps(t)), copy.deepcopy(t), copy.copy(t)):
        np.testing.assert_array_equal(other.transform(X[:8]), t.transform(X[:8]))
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        pickle.loads(pickle.dumps(t, protocol=protocol))
