"""The quantised PyTorch model (fake quantisation, as trained) and the golden integer model agree.

The fake-quantised network is rebuilt from the shipped model file (its weights and the
scales stored in the file's `info.quant`), run in float64 on every shared dev clip, and
compared with the golden integer model through the fast bit-exact backend.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pynq_sparse.backends import get_backend
from pynq_sparse.dataset import load_split, read_audio
from pynq_sparse.frontend import FastFrontend
from pynq_sparse.model_file import load_model
from pynq_sparse.train.network import QuantSparseCNN


@pytest.fixture(scope="module")
def dev_words(gsc_dev) -> np.ndarray:
    examples = [e for e in load_split(gsc_dev, "all") if "extra_v001" not in str(e.path)]
    return FastFrontend().words(read_audio(examples))


def test_golden_and_quantised_pytorch_agree_on_top1_for_995_permille_of_dev_clips(dev_words):
    model = load_model()
    golden_top1 = np.argmax(get_backend("cpu", model).scores(dev_words), axis=1)
    qnet = QuantSparseCNN.from_sparse_model(model).double().eval()
    torch.set_num_threads(2)
    with torch.no_grad():
        x = torch.from_numpy(dev_words.astype(np.float64) / 127.0)[:, None]
        torch_top1 = np.concatenate([qnet(x[i:i + 256]).argmax(1).numpy() for i in range(0, len(x), 256)])
    agreement = float(np.mean(torch_top1 == golden_top1))
    print(f"top-1 agreement on {len(dev_words)} dev clips: {agreement:.4f}")
    assert len(dev_words) >= 3000
    assert agreement >= 0.995
