"""The study figure is drawn from the study's JSON."""

import json

from certrb.plots import plot_roundoff_study
from certrb.problems import diffusion1d
from certrb.study import roundoff_study


def test_plot_from_json(tmp_path):
    results = roundoff_study(diffusion1d(40), n_train=40, n_test=8, max_basis=5, max_points=50)
    path = plot_roundoff_study(json.loads(json.dumps(results)), tmp_path / "fig.png", title="t")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000
