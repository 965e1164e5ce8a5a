"""The model store: entries, availability, checksums, caching, offline errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from brushwork import store
from brushwork.errors import ModelUnavailable


def test_every_entry_names_source_checksum_licence_and_size() -> None:
    for name, e in store.REGISTRY.items():
        assert e.name == name
        assert e.url or e.package_file
        assert e.sha256 or e.sha256_prefix
        assert e.licence and e.size > 0 and e.description


def test_vgg_entries_point_at_the_torchvision_files() -> None:
    vgg = store.entry("vgg19")
    assert vgg.url.endswith("vgg19-dcbb9e9d.pth") and vgg.sha256_prefix == "dcbb9e9d"
    assert store.entry("vgg16").url.endswith("vgg16-397923af.pth")


def test_home_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path))
    assert store.home() == tmp_path
    assert store.cached_path("dumoulin-26").parent == tmp_path


def test_first_use_converts_and_caches_safetensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path))
    assert store.status("dumoulin-26") == "source"
    net = store.load_net("dumoulin-26")
    assert store.status("dumoulin-26") == "cached"
    config = json.loads((tmp_path / "dumoulin-26.json").read_text())
    assert config["arch"] == "brushwork.nets.dumoulin:MultiStyleTransformer"
    assert config["source"]["sha256"] == store.entry("dumoulin-26").sha256
    again = store.load_net("dumoulin-26")  # from the cache
    for (k, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert not any(p.requires_grad for p in again.parameters()) and not again.training


def test_checksum_mismatch_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "multistyle26.onnx"
    bad.write_bytes(b"not the real network")
    monkeypatch.setattr(store, "source_path", lambda e: bad)
    with pytest.raises(ModelUnavailable, match="multistyle26.onnx fails its checksum"):
        store.fetch("dumoulin-26")


def test_offline_download_says_where_to_put_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path))

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ModelUnavailable) as info:
        store.fetch("vgg19")
    message = str(info.value)
    assert "download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert str(tmp_path / "downloads" / "vgg19-dcbb9e9d.pth") in message
    assert "\n" not in message
    assert not list((tmp_path / "downloads").glob("*.part"))  # no partial download left behind
    assert store.status("vgg19") == "missing"


def test_unknown_model_and_missing_local_weights() -> None:
    with pytest.raises(ModelUnavailable, match="unknown model"):
        store.entry("no-such-net")
    with pytest.raises(ModelUnavailable, match="weights file not found"):
        store.load_state("dumoulin-26", weights="/no/such/file.safetensors")


def test_local_safetensors_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: torch.full_like(v, 0.5) for k, v in store.load_net("dumoulin-26").state_dict().items()}
    path = tmp_path / "mine.safetensors"
    save_file(state, str(path))
    net = store.load_net("dumoulin-26", weights=path)
    assert all(torch.all(p == 0.5) for p in net.parameters())


def test_damaged_cache_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path))
    store.load_state("dumoulin-26")
    store.cached_path("dumoulin-26").write_bytes(b"garbage")
    with pytest.raises(ModelUnavailable, match="damaged"):
        store.load_state("dumoulin-26")


def test_package_source_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path))
    monkeypatch.setattr(store, "source_path", lambda e: tmp_path / "gone.onnx")
    with pytest.raises(ModelUnavailable, match="reinstall"):
        store.load_state("ghiasi-predictor")


def test_cache_from_another_source_version_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path))
    store.load_state("dumoulin-26")
    config = tmp_path / "dumoulin-26.json"
    data = json.loads(config.read_text())
    data["source"]["sha256"] = "0" * 64  # as if converted from an older release of the source
    config.write_text(json.dumps(data))
    before = store.cached_path("dumoulin-26").stat().st_mtime_ns
    store.load_state("dumoulin-26")
    assert store.cached_path("dumoulin-26").stat().st_mtime_ns != before
    assert json.loads(config.read_text())["source"]["sha256"] == store.entry("dumoulin-26").sha256


def test_unreadable_local_weights_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage, not safetensors")
    with pytest.raises(ModelUnavailable, match="cannot read weights"):
        store.load_state("dumoulin-26", weights=bad)
    other = tmp_path / "bad.onnx"
    other.write_bytes(b"garbage")
    with pytest.raises(ModelUnavailable, match="cannot read weights"):
        store.load_state("dumoulin-26", weights=other)
