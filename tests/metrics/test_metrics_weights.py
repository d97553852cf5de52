"""Inception weights: resolution order, hash-checked download, and one-line errors when absent or bad."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from metrics_utils import calibrated_inception_state, save_state
from sagan.errors import UserError
from sagan.metrics import weights as W


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    return save_state(calibrated_inception_state(seed=1, num_images=2), tmp_path_factory.mktemp("w") / "inc.pth")


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(W.ENV_VAR, raising=False)
    return tmp_path / "hub"


@pytest.fixture
def offline(monkeypatch):
    calls = []

    def fail(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    return calls


def test_explicit_weights_beat_the_environment_which_beats_the_hub_cache(hub_dir, weights_file, tmp_path, monkeypatch, offline):
    cached = hub_dir / "checkpoints" / W.WEIGHTS_FILENAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    env_file = tmp_path / "env.pth"
    env_file.write_bytes(b"env")
    assert W.resolve_weights() == cached  # hub cache when nothing else is given
    monkeypatch.setenv(W.ENV_VAR, str(env_file))
    assert W.resolve_weights() == env_file  # env beats the cache
    assert W.resolve_weights(weights_file) == weights_file  # the explicit path beats both
    assert offline == []  # nothing was downloaded


def test_download_into_hub_cache_with_hash_check(hub_dir, monkeypatch):
    seen = {}

    def fake_download(url, dst, hash_prefix=None, progress=True):
        seen.update(url=url, hash_prefix=hash_prefix)
        open(dst, "wb").write(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = W.resolve_weights()
    assert path == hub_dir / "checkpoints" / W.WEIGHTS_FILENAME and path.read_bytes() == b"weights"
    assert seen == {"url": W.WEIGHTS_URL, "hash_prefix": "6726825d"}  # torch hub's check_hash convention


def test_offline_and_absent_is_one_clear_line(hub_dir, offline):
    with pytest.raises(UserError) as e:
        W.load_inception()
    msg = str(e.value)
    assert "\n" not in msg and "--inception-weights" in msg and W.ENV_VAR in msg and W.WEIGHTS_URL in msg
    assert offline and offline[0][1] == "6726825d"


def test_hash_mismatch_is_user_error(hub_dir, monkeypatch):
    def bad_hash(url, dst, hash_prefix=None, progress=True):
        raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "deadbeef")')

    monkeypatch.setattr(torch.hub, "download_url_to_file", bad_hash)
    with pytest.raises(UserError, match="sha256"):
        W.resolve_weights()


def test_missing_corrupt_and_wrong_files(tmp_path, hub_dir):
    with pytest.raises(UserError, match="do not exist"):
        W.load_inception(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot read Inception weights"):
        W.load_inception(tmp_path / "junk.pth")
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="do not fit"):
        W.load_inception(tmp_path / "other.pth")


def test_loads_like_the_official_file_and_warns_when_unofficial(weights_file, capsys):
    net = W.load_inception(weights_file)
    assert not net.training and net.weights_path == str(weights_file.resolve()) and len(net.weights_sha256) == 64
    assert "not the official" in capsys.readouterr().err
    ref = calibrated_inception_state(seed=1, num_images=2)
    torch.testing.assert_close(net.state_dict()["Mixed_7c.branch_pool.bn.running_var"],
                               ref["Mixed_7c.branch_pool.bn.running_var"])
