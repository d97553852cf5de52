"""sagan-export: the generator as ONNX (onnxruntime), TorchScript (no sagan needed) and a Hugging Face Hub
folder (``Generator.from_pretrained``), each equal to the checkpoint's generator at another batch size;
standing statistics, StudioGAN's converted weights, an unconditional model, torch.hub entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sagan.sampling.bn_stats import prepare_generator
from sagan.models import load_generator
from sagan.config import load_config
from sagan.export import export_checkpoint
from sagan.export.fold import folded_state, plain_generator
from sagan.models import Generator

from export_utils import NAMES, STEP, assert_labels_matter, reference, run, write_run

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("run"), load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16"]))


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """Each format exported once from the run (the EMA generator, running statistics)."""
    out = tmp_path_factory.mktemp("exported")
    paths = {"onnx": out / "G.onnx", "torchscript": out / "G.torchscript.pt", "hf": out / "G-hf"}
    for fmt, path in paths.items():
        r = run("--checkpoint", tiny_run, "--format", fmt, "--out", path)
        assert r.exit_code == 0, r.output
        assert f"wrote {path}" in r.output and "EMA G at step 5" in r.output and "max |difference|" in r.output
    return paths



# --------------------------------------------------------------------------------------------------
# folding


def test_folded_weights_are_the_eval_mode_weights_bit_for_bit_and_leave_u_v_alone(tiny_run):
    G, cfg, _ = load_generator(tiny_run)
    u_before = {k: v.clone() for k, v in G.state_dict().items() if k.endswith("._u")}
    state = folded_state(G)
    assert not any(".parametrizations." in k for k in state)
    assert torch.equal(state["linear.weight"], G.linear.weight)  # W / sigma as eval mode computes it
    assert torch.equal(state["attn.16.theta.weight"], G.attn["16"].theta.weight)
    sigma = torch.linalg.matrix_norm(state["out_conv.weight"].flatten(1), ord=2)
    assert abs(float(sigma) - 1) < 0.05  # normalised (the stored u, v are converged power-iteration vectors)
    assert all(torch.equal(G.state_dict()[k], u) for k, u in u_before.items())  # no power iteration ran
    plain = plain_generator(G, cfg)
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())
    z, y = torch.randn(4, G.z_dim), torch.arange(4)
    with torch.no_grad():
        assert torch.equal(plain(z, y), G(z, y))


# --------------------------------------------------------------------------------------------------
# the three formats


def test_onnx_runs_in_onnxruntime_within_1e4_at_another_batch_size(tiny_run, exported):
    sess = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in sess.get_inputs()}
    assert list(inputs) == ["z", "y"] and [o.name for o in sess.get_outputs()] == ["images"]
    assert inputs["z"].type == "tensor(float)" and inputs["y"].type == "tensor(int64)"
    assert isinstance(inputs["z"].shape[0], str) and inputs["z"].shape[1] == 64  # dynamic batch axis
    z, y, want = reference(tiny_run, 5)  # traced at batch 2, run at 5
    got = torch.from_numpy(sess.run(["images"], {"z": z.numpy(), "y": y.numpy()})[0])
    assert got.shape == (5, 3, 32, 32)
    assert (got - want).abs().max() <= 1e-4
    run_onnx = lambda zz, yy: torch.from_numpy(sess.run(["images"], {"z": zz.numpy(), "y": yy.numpy()})[0])  # noqa: E731
    assert_labels_matter(run_onnx, z, y, got)
    one = torch.from_numpy(sess.run(["images"], {"z": z[:1].numpy(), "y": y[:1].numpy()})[0])
    assert (one - want[:1]).abs().max() <= 1e-4  # batch 1 too


def test_onnx_graph_has_no_parametrization_and_no_randomness(exported):
    model = onnx.load(str(exported["onnx"]))
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert not {op for op in ops if op.startswith("Random") or op in ("Bernoulli", "Multinomial", "Dropout")}
    assert {"Conv", "MatMul", "Softmax", "BatchNormalization"} <= ops  # attention as plain matmul + softmax
    names = [init.name for init in model.graph.initializer]
    assert not any("parametrizations" in n or n.endswith(("_u", "_v")) for n in names)


def test_torchscript_runs_with_nothing_of_sagan_importable_within_1e5(tiny_run, exported, tmp_path):
    z, y, want = reference(tiny_run, 6)
    np.save(tmp_path / "z.npy", z.numpy())
    np.save(tmp_path / "y.npy", y.numpy())
    script = (
        "import sys\n"
        "sys.modules['sagan'] = None  # any import of sagan now fails\n"
        "import numpy as np, torch\n"
        "try:\n    import sagan\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit('sagan importable')\n"
        f"G = torch.jit.load({str(exported['torchscript'])!r})\n"
        "z, y = torch.from_numpy(np.load('z.npy')), torch.from_numpy(np.load('y.npy'))\n"
        "with torch.no_grad():\n    np.save('out.npy', G(z, y).numpy())\n"
        "print(sorted(m for m in sys.modules if m.startswith('sagan')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "['sagan']"  # only the blocker: nothing of sagan was loaded
    got = torch.from_numpy(np.load(tmp_path / "out.npy"))
    assert got.shape == (6, 3, 32, 32)
    assert (got - want).abs().max() <= 1e-5


def test_onnx_and_torchscript_carry_z_dim_classes_and_output_range_as_sagan_json(tiny_run, exported):
    """The contract an app relies on: ONNX ``metadata_props["sagan"]`` read through onnxruntime, and the
    TorchScript extra file ``sagan.json`` read through ``torch.jit.load(_extra_files=...)``: the same JSON."""
    sess = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    from_onnx = json.loads(sess.get_modelmeta().custom_metadata_map["sagan"])
    files = {"sagan.json": ""}
    torch.jit.load(str(exported["torchscript"]), _extra_files=files)
    from_torchscript = json.loads(files["sagan.json"])
    assert from_onnx == from_torchscript
    assert from_onnx["z_dim"] == 64 and from_onnx["num_classes"] == 10 and from_onnx["class_names"] == NAMES
    assert from_onnx["resolution"] == 32 and from_onnx["output_range"] == [-1.0, 1.0]
    assert from_onnx["inputs"] == ["z", "y"] and from_onnx["step"] == STEP and from_onnx["generator"] == "ema"
    assert sess.get_inputs()[0].shape[1] == from_onnx["z_dim"]


def test_torchscript_images_do_not_require_grad(tiny_run, exported):
    z, y, _ = reference(tiny_run, 2)
    G = torch.jit.load(str(exported["torchscript"]))
    assert not G(z, y).requires_grad  # outside no_grad: nothing of the graph asks for gradients
    assert not any(p.requires_grad for p in G.parameters())


def test_torchscript_ignores_train_mode(tiny_run, exported):
    """The baked-in BN statistics stay: train() on the loaded module does not switch to batch statistics."""
    z, y, want = reference(tiny_run, 4)
    G = torch.jit.load(str(exported["torchscript"])).train()
    with torch.no_grad():
        assert (G(z, y) - want).abs().max() <= 1e-5


def test_hf_folder_loads_with_from_pretrained_exactly(tiny_run, exported, tmp_path):
    folder = exported["hf"]
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "app.py", "config.json", "model.safetensors",
                                                        "requirements.txt"]
    G = Generator.from_pretrained(folder)
    assert isinstance(G, Generator) and not G.training and hasattr(G, "push_to_hub")
    assert not any(hasattr(m, "parametrizations") for m in G.modules())
    z, y, want = reference(tiny_run, 7)
    with torch.no_grad():
        got = G(z, y)
        assert torch.equal(got, want)
        assert_labels_matter(G, z, y, got)
    # save_pretrained (what push_to_hub uploads) writes the same format back
    G.save_pretrained(tmp_path / "again")
    with torch.no_grad():
        assert torch.equal(Generator.from_pretrained(str(tmp_path / "again"))(z, y), want)
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == json.loads((folder / "config.json").read_text())


def test_from_pretrained_of_a_hub_repo_id_reads_huggingface_hubs_cache(tiny_run, exported, tmp_path):
    """A repo id goes through hf_hub_download; offline, from a cache laid out as huggingface_hub keeps it."""
    commit = "0" * 40
    snapshot = tmp_path / "models--someone--sagan-demo" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((exported["hf"] / name).read_bytes())
    (tmp_path / "models--someone--sagan-demo" / "refs").mkdir()
    (tmp_path / "models--someone--sagan-demo" / "refs" / "main").write_text(commit)
    G = Generator.from_pretrained("someone/sagan-demo", cache_dir=tmp_path, local_files_only=True)
    z, y, want = reference(tiny_run, 3)
    with torch.no_grad():
        assert torch.equal(G(z, y), want)


def test_hf_config_and_model_card_describe_the_model_its_training_and_metrics(exported):
    folder = exported["hf"]
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "sagan-generator" and config["step"] == STEP and config["generator"] == "ema"
    assert config["class_names"] == NAMES and config["bn_stats"]["mode"] == "running"
    assert config["sagan_config"]["model"]["g_ch"] == 16 and config["provenance"] == {"images_seen": 160}
    assert config["metrics"]["values"] == {"fid": 123.456, "is": 1.5}
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: sagan\n")
    assert "| FID | 123.46 |" in card and "10 samples of the ema generator, tf1 resize" in card
    assert "reference `demo.npz`" in card and "/home/someone" not in card  # local paths stay private
    assert "EMA generator at step 5" in card and "Generator.from_pretrained(" in card
    assert "batch 32" in card and "160 real images seen" in card


def test_the_raw_generator_with_no_ema(tiny_run, tmp_path):
    r = run("--checkpoint", tiny_run, "--format", "hf", "--out", tmp_path / "raw", "--no-ema")
    assert r.exit_code == 0 and "raw G at step 5" in r.output, r.output
    z, y, want = reference(tiny_run, 3, ema=False)
    with torch.no_grad():
        assert torch.equal(Generator.from_pretrained(tmp_path / "raw")(z, y), want)
    assert (reference(tiny_run, 3, ema=True)[2] - want).abs().max() > 1e-3  # EMA and raw G differ


@pytest.mark.parametrize("overrides", [["model.attn_mode=gaussian"], ["model.attn_mode=dot_product"],
                                       ["model.attn_mode=concatenation"], ["model.hierarchical_z=true", "model.z_dim=80"],
                                       ["model.g_block_type=residual"], ["model.g_sn=false"]])
def test_every_generator_variant_exports_to_onnx_within_1e4(tmp_path, overrides):
    cfg = load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16", *overrides])
    run_dir = write_run(tmp_path / "run", cfg, metrics=False)
    result = export_checkpoint(run_dir, "onnx", tmp_path / "G.onnx")  # checked at batch 8, traced at 2
    assert result.max_diff <= 1e-4
    z, y, want = reference(run_dir, 3)
    sess = ort.InferenceSession(str(tmp_path / "G.onnx"), providers=["CPUExecutionProvider"])
    assert (torch.from_numpy(sess.run(["images"], {"z": z.numpy(), "y": y.numpy()})[0]) - want).abs().max() <= 1e-4


def test_standing_statistics_are_baked_in(tiny_run, tmp_path):
    r = run("--checkpoint", tiny_run, "--format", "onnx", "--out", tmp_path / "G.onnx", "--bn-stats", "standing",
            "--standing-batches", 2)
    assert r.exit_code == 0 and "standing statistics over 2 batches" in r.output, r.output
    G, _, _ = load_generator(tiny_run)
    z, y, running = reference(tiny_run, 4)
    prepare_generator(G, "standing", standing_batches=2, seed=0)
    with torch.no_grad():
        standing = G(z, y)
    sess = ort.InferenceSession(str(tmp_path / "G.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(sess.run(["images"], {"z": z.numpy(), "y": y.numpy()})[0])
    assert (got - standing).abs().max() <= 1e-4
    assert (running - standing).abs().max() > 1e-3  # not vacuous: the statistics change the images


def test_hf_export_replaces_an_earlier_export_and_leaves_no_temp_folder(tiny_run, exported, tmp_path):
    out = tmp_path / "G-hf"
    for _ in range(2):
        r = run("--checkpoint", tiny_run, "--format", "hf", "--out", out, "--bn-stats", "running")
        assert r.exit_code == 0, r.output
    assert [p.name for p in tmp_path.iterdir()] == ["G-hf"]
    assert (out / "model.safetensors").read_bytes() == (exported["hf"] / "model.safetensors").read_bytes()


# --------------------------------------------------------------------------------------------------
# torch.hub


def test_hubconf_generator_and_discriminator_from_a_local_clone(tiny_run, exported):
    G = torch.hub.load(str(REPO), "generator", source="local", checkpoint=str(tiny_run), trust_repo=True)
    D = torch.hub.load(str(REPO), "discriminator", source="local", checkpoint=f"{tiny_run}:last", trust_repo=True)
    z, y, want = reference(tiny_run, 3)
    with torch.no_grad():
        assert torch.equal(G(z, y), want)
        G_hf = torch.hub.load(str(REPO), "generator", source="local", checkpoint=str(exported["hf"]), trust_repo=True)
        assert torch.equal(G_hf(z, y), want)
        logits = D(want, y)
    assert logits.shape == (3,) and not D.training
    stored = torch.load(tiny_run / "checkpoints" / "last.pt", weights_only=True)["D"]
    assert all(torch.equal(D.state_dict()[k], v) for k, v in stored.items())


def test_hubconf_finds_a_relative_checkpoint_in_the_working_directory_then_the_repository(tiny_run, tmp_path,
                                                                                         monkeypatch):
    import shutil

    from sagan.errors import CheckpointError

    clone = tmp_path / "clone"  # a local clone holding its own runs/
    clone.mkdir()
    shutil.copy(REPO / "hubconf.py", clone / "hubconf.py")
    shutil.copytree(tiny_run, clone / "runs" / "demo")
    elsewhere = tmp_path / "notebooks"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    z, y, want = reference(tiny_run, 2)
    G = torch.hub.load(str(clone), "generator", source="local", checkpoint="runs/demo", trust_repo=True)
    with torch.no_grad():
        assert torch.equal(G(z, y), want)
    D = torch.hub.load(str(clone), "discriminator", source="local", checkpoint="runs/demo:last", trust_repo=True)
    assert not D.training
    write_run(elsewhere / "runs" / "demo", unconditional_config(), class_names=None, metrics=False)
    G = torch.hub.load(str(clone), "generator", source="local", checkpoint="runs/demo", trust_repo=True)
    assert G.num_classes == 0  # the working directory's run, not the clone's
    with pytest.raises(CheckpointError) as e:
        torch.hub.load(str(clone), "generator", source="local", checkpoint="runs/missing:best", trust_repo=True)
    line = str(e.value)
    assert "\n" not in line and str(elsewhere / "runs" / "missing") in line and str(clone / "runs" / "missing") in line


# --------------------------------------------------------------------------------------------------
# released weights: StudioGAN's SAGAN through sagan-convert, then exported


def test_converted_studiogan_checkpoint_exports_to_onnx_equal_to_studiogan(tmp_path):
    from sagan.commands.convert import main as convert_main
    from studiogan_reference import RefGenerator, RefDiscriminator, make_trained_like, save_run

    torch.manual_seed(0)
    G_ref, D_ref = RefGenerator(32, 10, 64, 8, (2,)), RefDiscriminator(32, 10, 8, (1,))
    make_trained_like(G_ref, D_ref, 10, 64, 0)
    folder = save_run(tmp_path / "studiogan" / "checkpoints", G_ref, D_ref, 1234)
    converted = tmp_path / "sagan_studiogan.pt"
    r = CliRunner().invoke(convert_main, ["studiogan", "--ckpt-dir", str(folder), "--out", str(converted),
                                          "--config", "demo", "--set", "model.g_ch=8", "--set", "model.d_ch=8"])
    assert r.exit_code == 0, r.output
    r = run("--checkpoint", converted, "--format", "onnx", "--out", tmp_path / "sagan_studiogan.onnx")
    assert r.exit_code == 0 and "raw G at step 1234" in r.output, r.output  # StudioGAN's run had no EMA
    sess = ort.InferenceSession(str(tmp_path / "sagan_studiogan.onnx"), providers=["CPUExecutionProvider"])
    z, y = torch.randn(4, 64), torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        want = G_ref.eval()(z, y)
    got = torch.from_numpy(sess.run(["images"], {"z": z.numpy(), "y": y.numpy()})[0])
    assert (got - want).abs().max() <= 1e-4
    r = run("--checkpoint", converted, "--format", "hf", "--out", tmp_path / "hf")
    assert r.exit_code == 0, r.output
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "Converted from studiogan's release" in card and "at its step 1234" in card


# --------------------------------------------------------------------------------------------------
# an unconditional generator (model.num_classes: 0)


def unconditional_config():
    return load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16", "model.num_classes=0"])


def test_unconditional_export_takes_only_z(tmp_path):
    cfg = unconditional_config()
    run_dir = write_run(tmp_path / "run", cfg, class_names=None, metrics=False)
    for fmt, out in (("onnx", tmp_path / "G.onnx"), ("torchscript", tmp_path / "G.pt"), ("hf", tmp_path / "hf")):
        r = run("--checkpoint", run_dir, "--format", fmt, "--out", out)
        assert r.exit_code == 0, r.output
    z, y, want = reference(run_dir, 5)
    assert y is None
    sess = ort.InferenceSession(str(tmp_path / "G.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["z"]
    assert (torch.from_numpy(sess.run(["images"], {"z": z.numpy()})[0]) - want).abs().max() <= 1e-4
    with torch.no_grad():
        assert (torch.jit.load(str(tmp_path / "G.pt"))(z) - want).abs().max() <= 1e-5
        assert torch.equal(Generator.from_pretrained(tmp_path / "hf")(z, None), want)
    assert "unconditional" in (tmp_path / "hf" / "README.md").read_text()
    meta = json.loads(sess.get_modelmeta().custom_metadata_map["sagan"])
    assert meta["num_classes"] == 0 and meta["class_names"] == [] and meta["inputs"] == ["z"]




def _doc_blocks(name: str) -> list[str]:
    import re

    return re.findall(r"```python\n(.*?)```", (REPO / "docs" / name).read_text(), flags=re.S)


def test_the_documented_onnxruntime_and_torchscript_snippets_run_on_a_demo_export(tmp_path):
    """docs/export-metadata.md as written, on an export of the demo preset, in a process where neither sagan
    (both) nor torch (onnxruntime) can be imported: z_dim and classes come from the file."""
    run_dir = write_run(tmp_path / "run", load_config("demo"))
    for fmt, out in (("onnx", "G.onnx"), ("torchscript", "G.torchscript.pt")):
        r = run("--checkpoint", run_dir, "--format", fmt, "--out", tmp_path / out)
        assert r.exit_code == 0, r.output
    onnx_snippet, torchscript_snippet = _doc_blocks("export-metadata.md")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    printed = []
    for snippet, blocked in ((onnx_snippet, "'sagan', 'torch'"), (torchscript_snippet, "'sagan'")):
        script = f"import sys\nfor m in ({blocked},):\n    sys.modules[m] = None\n" + snippet
        if snippet is torchscript_snippet:
            script += "assert images.shape == (8, 3, meta['resolution'], meta['resolution']) and not images.requires_grad\n"
        r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        printed.append(r.stdout)
    assert printed[0].startswith("64 32 (8, 32, 32, 3) ['class_0', 'class_1'")  # the demo: z 64, 32 px, 10 classes
