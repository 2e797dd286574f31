"""PyTorch twin of SparseRefine's refiner and gated ensembler (src/models/seg/refiner.rs).

The refiner is a sparse 2-D U-Net on the selected full-resolution pixels, on scenetok's own
sparse conv (tools/train/sparse_twin.py: the Rust engine's kernel-map semantics), coordinates
(b, u, v, 0) over a range (W, H, 1), kernels (3, 3, 1):

    stem   1×1 conv-BN-ReLU, in → c0
    level 0: a residual block (c0)
    level i = 1..L−1: down conv (2,2,1) stride (2,2,1) -BN-ReLU, c(i−1) → c(i−1); a residual block → c(i)
    decoder i = L−1..1: transposed conv (2,2,1) -BN-ReLU, c(i) → c(i−1) (the down conv's map
            transposed); concat the level's skip; a residual block 2·c(i−1) → c(i−1)
    head   Linear c0 → 29: the refiner's logits l2

Differences from the paper's U-Net (reference/algorithms.md §B.3), chosen for a 2-core CPU:
post-activation residual blocks (conv-BN-ReLU, conv-BN, add, ReLU: every BN folds into its
conv; the pre-activation BN-ReLU before each conv would be one more pass over the features),
k2 s2 down-sampling (the engine's fastest strided conv), widths c = [16, 32, 64, 128] instead
of 32 … 1024, one block per level. Input features per pixel: RGB, (x − 127) / 128, and the
low-resolution softmax p1 (the official code's optional "p" feature): the refiner corrects a
prior instead of classifying from colour alone.

Gated ensembler (§B.4, the code's form): per pixel x = [p1, H(p1), p2, H(p2)],
w = softmax(Linear(2(C+1) → h) → ReLU → Linear(h → 2)), y = w0·l1 + w1·l2,
out = Linear(C → h) → ReLU → Linear(h → C); h = 16 here (64 in the paper).
"""
import torch
from torch import nn

import sparse_twin as st

CLASSES = 29


def entropy(logits):
    """−Σ p log p of softmax(logits) along dim 1, in nats."""
    logp = torch.log_softmax(logits, 1)
    return -(logp.exp() * logp).sum(1, keepdim=True)


class Refiner(nn.Module):
    def __init__(self, channels=(16, 32, 64, 128), in_channels=3 + CLASSES, hidden=16):
        super().__init__()
        c = list(channels)
        self.channels = c
        self.stem = st.ConvBN(in_channels, c[0], 1)
        self.enc = nn.ModuleList()
        self.enc.append(nn.ModuleDict({"res": st.ResBlock(c[0], c[0], (3, 3, 1))}))
        for i in range(1, len(c)):
            self.enc.append(nn.ModuleDict({
                "down": st.ConvBN(c[i - 1], c[i - 1], (2, 2, 1)),
                "res": st.ResBlock(c[i - 1], c[i], (3, 3, 1)),
            }))
        self.dec = nn.ModuleList()
        for i in range(len(c) - 1, 0, -1):
            self.dec.append(nn.ModuleDict({
                "up": st.ConvBN(c[i], c[i - 1], (2, 2, 1), transposed=True),
                "res": st.ResBlock(2 * c[i - 1], c[i - 1], (3, 3, 1)),
            }))
        self.head = nn.Linear(c[0], CLASSES)
        self.gate = nn.Sequential(nn.Linear(2 * (CLASSES + 1), hidden), nn.ReLU(), nn.Linear(hidden, 2))
        self.post = nn.Sequential(nn.Linear(CLASSES, hidden), nn.ReLU(), nn.Linear(hidden, CLASSES))

    def maps(self, coords, rng):
        """Kernel maps of every level as Pairs: submanifold (3,3,1), identity, down, up."""
        levels = len(self.channels)
        m3s = [st.submanifold_map(coords, rng, kernel=(3, 3, 1))]
        sizes, downs = [len(coords)], []
        c, r = coords, list(rng)
        for _ in range(1, levels):
            c, r, m = st.strided_map(c, r, kernel=(2, 2, 1), stride=(2, 2, 1))
            downs.append(m)
            sizes.append(len(c))
            m3s.append(st.submanifold_map(c, r, kernel=(3, 3, 1)))
        ups = [st.transpose_map(downs[i], sizes[i]) for i in range(levels - 1)]
        m1s = [st.Pairs(torch.arange(n).unsqueeze(1), n) for n in sizes]
        return ([st.Pairs(m, len(m)) for m in m3s], m1s,
                [st.Pairs(downs[i], sizes[i]) for i in range(levels - 1)],
                [st.Pairs(ups[i], sizes[i + 1]) for i in range(levels - 1)])

    def features(self, rgb, l1):
        """Input features: RGB (x − 127)/128 and softmax(l1)."""
        return torch.cat([(rgb.float() - 127.0) / 128.0, torch.softmax(l1, 1)], 1)

    def refine(self, coords, feats, rng, maps=None):
        """The refiner's logits l2 [N, 29]."""
        m3s, m1s, downs, ups = maps if maps is not None else self.maps(coords, rng)
        h = torch.relu(self.stem(feats, m1s[0]))
        h = self.enc[0]["res"](h, m3s[0], m1s[0])
        skips = [h]
        for i in range(1, len(self.channels)):
            h = torch.relu(self.enc[i]["down"](h, downs[i - 1]))
            h = self.enc[i]["res"](h, m3s[i], m1s[i])
            skips.append(h)
        skips.pop()
        for j, blk in enumerate(self.dec):
            lvl = len(self.channels) - 2 - j
            h = torch.relu(blk["up"](h, ups[lvl]))
            h = torch.cat([h, skips.pop()], 1)
            h = blk["res"](h, m3s[lvl], m1s[lvl])
        return self.head(h)

    def ensemble(self, l1, l2):
        """The gated ensembler's logits [N, 29]."""
        x = torch.cat([torch.softmax(l1, 1), entropy(l1), torch.softmax(l2, 1), entropy(l2)], 1)
        w = torch.softmax(self.gate(x), 1)
        return self.post(w[:, :1] * l1 + w[:, 1:] * l2)

    def forward(self, coords, rgb, l1, rng, maps=None):
        """(l2, ensemble logits) at the selected pixels."""
        l2 = self.refine(coords, self.features(rgb, l1), rng, maps)
        return l2, self.ensemble(l1, l2)
