"""The exported fp32 graph: checker, contract, dynamic batch, parity with PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from components.config import FeatureParams
from components.errors import EdgelearnError
from components.export.frontend import ConvLogMelFrontend, factorization, windowed_dft_basis
from components.export.graph import OUTPUT_NAMES, check_graph
from components.export.stage import Parity, check_parity
from components.export.verify import ort_session
from components.features import LogMelFrontend, num_frames


@pytest.mark.parametrize(
    ("n_fft", "hop", "split"),
    [(480, 160, (30, 16)), (400, 160, (25, 16)), (512, 128, (32, 16)), (480, 150, (32, 15)),
     (479, 160, None)],  # a prime window: one convolution
)  # fmt: skip
@pytest.mark.parametrize("factorize", [True, False])
def test_frontend_matches_training_frontend_in_torch(n_fft, hop, split, factorize):
    cfg = FeatureParams(n_fft=n_fft, hop_length=hop)
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(4, cfg.clip_samples, generator=g)
    audio[1] *= 1e-3  # a quiet clip: log of small powers amplifies rounding
    frontend = ConvLogMelFrontend(cfg, factorize=factorize)
    assert (frontend.n1, frontend.n2) == (split if factorize and split else (0, 0))
    with torch.no_grad():
        ours, training = frontend(audio), LogMelFrontend(cfg)(audio)
    assert ours.shape == training.shape == (4, cfg.n_mels, num_frames(cfg))
    assert float((ours - training).abs().max()) < 2e-3
    assert float((ours - training).abs().mean()) < 1e-5


def test_factorization_picks_the_cheapest_split():
    # 229 bins of a 480-point window at a 160 hop: N2 must divide gcd(480, 160) = 160;
    # multiply-adds per frame 480*N1 + (N1//2 + 1)*8*ceil(229/N1)*N2: (30, 16) needs 30,784,
    # (24, 20) 32,320, (48, 10) 33,040
    assert factorization(480, 160, 229) == (30, 16)
    assert factorization(479, 160, 229) is None  # no common divisor
    assert factorization(480, 7, 229) is None
    # a split that costs more than the one convolution (2 * bins * n_fft) is not taken
    assert factorization(480, 160, 3) is None


def test_dft_basis_is_the_windowed_dft():
    basis = windowed_dft_basis(480, 3, 5, torch.device("cpu")).double()
    frame = torch.randn(480, dtype=torch.float64)
    spectrum = torch.fft.rfft(frame * torch.hann_window(480, dtype=torch.float64))[3:8]
    got = basis @ frame
    assert torch.allclose(got[:5], spectrum.real, atol=1e-5)
    assert torch.allclose(got[5:], spectrum.imag, atol=1e-5)


@pytest.mark.slow  # the export of the espeak corpus' network
def test_graph_passes_full_check_with_pinned_opset_and_dynamic_batch(exported):
    proto = onnx.load(str(exported.result.fp32_path))
    onnx.checker.check_model(proto, full_check=True)
    assert {o.domain: o.version for o in proto.opset_import}[""] == 18
    (audio,) = proto.graph.input
    dims = audio.type.tensor_type.shape.dim
    assert audio.name == "audio" and dims[0].dim_param and dims[1].dim_value == 16000
    assert tuple(o.name for o in proto.graph.output) == OUTPUT_NAMES
    ops = {n.op_type for n in proto.graph.node}
    assert "STFT" not in ops and "DFT" not in ops  # ONNX Runtime's are imprecise (see frontend)
    # The DFT basis is computed in the graph, not stored: the file is mostly network weights.
    assert max(np.prod(t.dims) for t in proto.graph.initializer) < 20000

    sess = ort_session(str(exported.result.fp32_path))
    x = np.random.default_rng(0).uniform(-0.3, 0.3, (5, 16000)).astype(np.float32)
    logits5, probs5 = sess.run(None, {"audio": x})
    logits1, _ = sess.run(None, {"audio": x[2:3]})
    assert logits5.shape == (5, 12) and np.allclose(probs5.sum(1), 1.0, atol=1e-5)
    assert np.allclose(logits1[0], logits5[2], atol=1e-5)


@pytest.mark.slow  # the export of the espeak corpus' network
def test_onnx_runtime_matches_pytorch_on_test_clips(exported):
    m = exported.result.metrics
    assert m["test_clips"] == int((exported.manifest["split"] == "test").sum())
    assert m["parity_max_abs_diff"] <= 1e-4
    assert m["parity_label_agreement_pct"] == 100.0
    assert m["fp32_test_acc"] == m["torch_test_acc"]
    assert m["fp32_test_acc"] > 80.0  # 10 keywords right; unheard unknown words may not be


@pytest.mark.slow  # the export of the espeak corpus' network
def test_check_graph_refuses_a_graph_off_contract(exported):
    proto = onnx.load(str(exported.result.fp32_path))
    with pytest.raises(EdgelearnError, match=r"opset 18, export\.opset pins 19"):
        check_graph(proto, 19, 16000)
    with pytest.raises(EdgelearnError, match=r"expected one 'audio' of shape \(batch, 8000\)"):
        check_graph(onnx.load(str(exported.result.fp32_path)), 18, 8000)


def test_parity_gate_message_names_the_figures():
    with pytest.raises(EdgelearnError, match=r"max \|difference\| of the scores 0.002"):
        check_parity(Parity(2e-3, 2e-3, 1e-4, 100.0, 50), 1e-4, 99.9)
    with pytest.raises(EdgelearnError, match=r"same label on 98.00%"):
        check_parity(Parity(1e-6, 1e-6, 1e-7, 98.0, 50), 1e-4, 99.9)
    check_parity(Parity(1e-5, 1e-5, 1e-6, 100.0, 50), 1e-4, 99.9)
