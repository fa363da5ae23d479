#!/usr/bin/env python3
"""Score enhancer checkpoints on the validation mixtures a `train enhancer` run validates on
(2 per SNR x noise kind, 3 s, seed 0): mean SI-SDR, PESQ-WB and STOI, to choose between
checkpoints without looking at the test split. Usage: enhancer_val_compare.py shipped RUN/enhancer.pt"""
import sys, numpy as np, torch
from sigstream.models.enhancer.corpus import load_corpus
from sigstream.models.enhancer.noises import test_mixtures
from sigstream.models.enhancer.train_speech import align, si_sdr, perceptual_scores
from sigstream.models.registry import build_model, load_checkpoint
torch.set_num_threads(1)
corpus = load_corpus(None)
mixes = test_mixtures(corpus, per_condition=2, seconds=3.0, seed=0, split="val")
noisy = torch.tensor(np.stack([m.noisy for m in mixes]), dtype=torch.float32)
clean = torch.tensor(np.stack([m.clean for m in mixes]), dtype=torch.float32)
for name in sys.argv[1:]:
    m = build_model("enhancer") if name == "shipped" else load_checkpoint(name)
    m.eval()
    with torch.no_grad():
        est = torch.cat([m(noisy[i:i+16].unsqueeze(-1))[..., 0] for i in range(0, len(noisy), 16)])
    ref = align(m, clean)
    sc = perceptual_scores(ref.numpy(), est.numpy(), 48000, with_stoi=True)
    print(name, "si_sdr", float(si_sdr(est, ref).mean()), sc, "sum", sc["val_pesq_wb"] + sc["val_stoi"], flush=True)
