"""PyTorch twins of scenetok's sparse-conv networks (src/sparse/nets.rs): MinkUNet and the
SECOND-style SparseResNet21D.

Its own gather-scatter sparse conv with the same kernel-map semantics as the Rust engine
(src/backend/kmap.rs, src/backend/cpu/kmap.rs; docs/sparse-conv.md#kernel-maps): spconv output rule, kernel
offsets x-fastest for odd kernels and z-fastest otherwise, transposed convs reuse the
transposed map of the matching downsampling conv. Parameter names match what Rust reads.
"""
import torch
from torch import nn


def kernel_indices(kernel):
    kx, ky, kz = kernel
    if all(k % 2 == 1 for k in kernel):
        return [(x, y, z) for z in range(kz) for y in range(ky) for x in range(kx)]
    return [(x, y, z) for x in range(kx) for y in range(ky) for z in range(kz)]


def ravel(coords, sizes):
    """(b,x,y,z) int64 -> key with b most significant; sizes = 4 per-axis sizes."""
    k = coords[:, 0]
    for a in range(1, 4):
        k = k * sizes[a] + coords[:, a]
    return k


def lookup(keys_sorted, order, query, valid):
    """Row of each query key in the set (keys_sorted = sorted keys, order = argsort), or -1."""
    pos = torch.searchsorted(keys_sorted, query).clamp(max=max(len(keys_sorted) - 1, 0))
    hit = valid & (keys_sorted[pos] == query) if len(keys_sorted) else torch.zeros_like(valid)
    return torch.where(hit, order[pos], torch.full_like(pos, -1))


def submanifold_map(coords, rng, kernel=(3, 3, 3)):
    sizes = [int(coords[:, 0].max()) + 1] + list(rng)
    keys = ravel(coords, sizes)
    ks, order = torch.sort(keys)
    cols = []
    for ix in kernel_indices(kernel):
        off = [(ix[a] - ((kernel[a] - 1) // 2 if kernel[a] % 2 == 1 else 0)) for a in range(3)]
        q = coords.clone()
        q[:, 1:] += torch.tensor(off, dtype=q.dtype)
        valid = ((q[:, 1:] >= 0) & (q[:, 1:] < torch.tensor(rng))).all(1)
        cols.append(lookup(ks, order, ravel(q.clamp(min=0), sizes), valid))
    return torch.stack(cols, 1)


def strided_map(coords, rng, kernel=(2, 2, 2), stride=(2, 2, 2), padding=(0, 0, 0)):
    out_rng = [max(1, (rng[a] + 2 * padding[a] - (kernel[a] - 1) - 1) // stride[a] + 1) for a in range(3)]
    nb = int(coords[:, 0].max()) + 1
    sizes = [nb] + out_rng
    outs, ks_, ins = [], [], []
    for k, ix in enumerate(kernel_indices(kernel)):
        v = coords[:, 1:] + torch.tensor(padding) - torch.tensor(ix)
        s = torch.tensor(stride)
        ok = ((v >= 0) & (v % s == 0) & (v // s < torch.tensor(out_rng))).all(1)
        o = torch.cat([coords[:, :1], v // s], 1)[ok]
        outs.append(ravel(o, sizes))
        ks_.append(torch.full((int(ok.sum()),), k, dtype=torch.long))
        ins.append(torch.nonzero(ok)[:, 0])
    keys = torch.cat(outs)
    uniq, inv = torch.unique(keys, sorted=True, return_inverse=True)
    kv = len(kernel_indices(kernel))
    m = torch.full((len(uniq), kv), -1, dtype=torch.long)
    m[inv, torch.cat(ks_)] = torch.cat(ins)
    # Unravel the output keys.
    c = torch.zeros((len(uniq), 4), dtype=torch.long)
    rem = uniq.clone()
    for a in (3, 2, 1, 0):
        c[:, a] = rem % sizes[a]
        rem = rem // sizes[a]
    return c, out_rng, m


def transpose_map(m, n_fine):
    kv = m.shape[1]
    t = torch.full((n_fine, kv), -1, dtype=torch.long)
    o, k = torch.nonzero(m >= 0, as_tuple=True)
    t[m[o, k], k] = o
    return t


class GatherConv(torch.autograd.Function):
    """Y = gather(X, map) @ W, with the backward through the transposed map (a gather too:
    CPU scatter-adds are slow)."""

    @staticmethod
    def forward(ctx, x, w, m, mt):
        xp = torch.cat([x, x.new_zeros((1, x.shape[1]))])
        g = xp[torch.where(m >= 0, m, len(x))].reshape(len(m), -1)
        ctx.save_for_backward(g, w, mt)
        ctx.n_out = len(m)
        return g @ w.reshape(-1, w.shape[2])

    @staticmethod
    def backward(ctx, gy):
        g, w, mt = ctx.saved_tensors
        gw = (g.T @ gy).reshape(w.shape)
        gyp = torch.cat([gy, gy.new_zeros((1, gy.shape[1]))])
        gg = gyp[torch.where(mt >= 0, mt, ctx.n_out)].reshape(len(mt), -1)
        gx = gg @ w.transpose(1, 2).reshape(-1, w.shape[1])
        return gx, gw, None, None


class Pairs:
    """A kernel map as (input row, output row) pairs grouped by kernel offset: the same sum
    as the dense [N_out, K] map without gathering the empty neighbours (about 3/4 of a
    LiDAR frame's 27-neighbourhoods are empty). `identity`: a 1x1 map of every row to itself."""

    def __init__(self, m, n_in):
        n_out, kv = m.shape
        self.n_out, self.n_in, self.kv = n_out, n_in, kv
        self.identity = kv == 1 and n_out == n_in and bool((m[:, 0] == torch.arange(n_out)).all())
        o, k = torch.nonzero(m >= 0, as_tuple=True)
        order = torch.argsort(k, stable=True)
        self.o, k = o[order].contiguous(), k[order]
        self.i = m[self.o, k].contiguous()
        self.bounds = [0] + torch.bincount(k, minlength=kv).cumsum(0).tolist()


class PairConv(torch.autograd.Function):
    """Y = sum over offsets k of scatter_k(gather_k(X) @ W[k]): gathers and an index_add
    (in pair order: deterministic), backward the same way round."""

    @staticmethod
    def forward(ctx, x, w, p):
        g = x.index_select(0, p.i)
        y = x.new_empty((len(p.i), w.shape[2]))
        b = p.bounds
        for k in range(p.kv):
            if b[k + 1] > b[k]:
                torch.mm(g[b[k]:b[k + 1]], w[k], out=y[b[k]:b[k + 1]])
        ctx.save_for_backward(g, w)
        ctx.p = p
        return x.new_zeros((p.n_out, w.shape[2])).index_add_(0, p.o, y)

    @staticmethod
    def backward(ctx, gy):
        g, w = ctx.saved_tensors
        p = ctx.p
        gyp = gy.index_select(0, p.o)
        gw = torch.zeros_like(w)
        gg = g.new_empty(g.shape)
        b = p.bounds
        for k in range(p.kv):
            if b[k + 1] > b[k]:
                torch.mm(g[b[k]:b[k + 1]].T, gyp[b[k]:b[k + 1]], out=gw[k])
                torch.mm(gyp[b[k]:b[k + 1]], w[k].T, out=gg[b[k]:b[k + 1]])
        gx = g.new_zeros((p.n_in, g.shape[1])).index_add_(0, p.i, gg)
        return gx, gw, None


class SparseConv(nn.Module):
    """Y[o] = sum_k X[map[o,k]] @ kernel[k]; kernel [K, cin, cout]."""

    def __init__(self, cin, cout, k, transposed=False):
        super().__init__()
        kv = k ** 3 if isinstance(k, int) else k[0] * k[1] * k[2]
        fan = (cout if transposed else cin) * kv
        self.kernel = nn.Parameter(torch.empty(kv, cin, cout).uniform_(-fan ** -0.5, fan ** -0.5))

    def forward(self, x, m):
        """m = (map [N_out, K], its transpose [N_in, K]), or the map as `Pairs`."""
        if isinstance(m, Pairs):
            if m.identity:
                return x @ self.kernel[0]
            return PairConv.apply(x, self.kernel, m)
        return GatherConv.apply(x, self.kernel, m[0], m[1])


class ConvBN(nn.Module):
    def __init__(self, cin, cout, k, transposed=False):
        super().__init__()
        self.conv = SparseConv(cin, cout, k, transposed)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x, m):
        return self.bn(self.conv(x, m))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, k=3):
        super().__init__()
        self.c1 = ConvBN(cin, cout, k)
        self.c2 = ConvBN(cout, cout, k)
        self.proj = ConvBN(cin, cout, 1) if cin != cout else None

    def forward(self, x, m3, m1):
        h = self.c2(torch.relu(self.c1(x, m3)), m3)
        s = self.proj(x, m1) if self.proj is not None else x
        return torch.relu(h + s)


def channels(width):
    return [max(1, int(c * width)) for c in (32, 32, 64, 128, 256, 256, 128, 96, 96)]


class MinkUNet(nn.Module):
    def __init__(self, in_channels=4, num_classes=23, width=1.0):
        super().__init__()
        cs = channels(width)
        self.stem = nn.ModuleList([ConvBN(in_channels, cs[0], 3), ConvBN(cs[0], cs[0], 3)])
        self.enc = nn.ModuleList()
        for i in range(4):
            st = nn.Module()
            st.down = ConvBN(cs[i], cs[i], 2)
            st.res = nn.ModuleList([ResBlock(cs[i], cs[i + 1]), ResBlock(cs[i + 1], cs[i + 1])])
            self.enc.append(st)
        self.dec = nn.ModuleList()
        for i in range(4):
            cin = cs[4] if i == 0 else cs[4 + i]
            cout, skip = cs[5 + i], cs[3 - i]
            st = nn.Module()
            st.up = ConvBN(cin, cout, 2, transposed=True)
            st.res = nn.ModuleList([ResBlock(cout + skip, cout), ResBlock(cout, cout)])
            self.dec.append(st)
        self.head = nn.Linear(cs[8], num_classes)

    @staticmethod
    def pair_maps(coords, rng):
        """`maps` as `Pairs` (the same sums; faster, less memory)."""
        levels = [len(coords)]
        m3s, downs = [submanifold_map(coords, rng)], []
        c, r = coords, list(rng)
        for _ in range(4):
            c, r, m = strided_map(c, r)
            downs.append(m)
            levels.append(len(c))
            m3s.append(submanifold_map(c, r))
        ups = [transpose_map(downs[lvl], levels[lvl]) for lvl in range(4)]
        m1s = [Pairs(torch.arange(n).unsqueeze(1), n) for n in levels]
        return ([Pairs(m, len(m)) for m in m3s], m1s, [Pairs(downs[i], levels[i]) for i in range(4)],
                [Pairs(ups[i], levels[i + 1]) for i in range(4)])

    @staticmethod
    def maps(coords, rng):
        """Every kernel map of one input (reusable across epochs)."""
        levels = [(coords, list(rng))]
        m3s, m1s, downs = [submanifold_map(coords, rng)], [torch.arange(len(coords)).unsqueeze(1)], []
        c, r = coords, list(rng)
        for _ in range(4):
            c, r, m = strided_map(c, r)
            downs.append(m)
            levels.append((c, r))
            m3s.append(submanifold_map(c, r))
            m1s.append(torch.arange(len(c)).unsqueeze(1))
        ups = [transpose_map(downs[lvl], len(levels[lvl][0])) for lvl in range(4)]
        # Each map with its transpose (the backward's gather map).
        def pair(m, n_in):
            return (m, transpose_map(m, n_in))
        m3s = [pair(m, len(m)) for m in m3s]
        m1s = [(m, m) for m in m1s]
        downs2 = [(downs[i], ups[i]) for i in range(4)]
        ups2 = [(ups[i], downs[i]) for i in range(4)]
        return m3s, m1s, downs2, ups2

    def forward(self, coords, feats, rng, maps=None):
        """coords [N,4] int64 (b,x,y,z), feats [N,C], rng = spatial range (3 ints)."""
        m3s, m1s, downs, ups = maps if maps is not None else self.pair_maps(coords, rng)
        h = torch.relu(self.stem[0](feats, m3s[0]))
        h = torch.relu(self.stem[1](h, m3s[0]))
        skips = [h]
        for i, st in enumerate(self.enc):
            h = torch.relu(st.down(h, downs[i]))
            for b in st.res:
                h = b(h, m3s[i + 1], m1s[i + 1])
            skips.append(h)
        skips.pop()
        for i, st in enumerate(self.dec):
            lvl = 3 - i
            h = torch.relu(st.up(h, ups[lvl]))
            h = torch.cat([h, skips.pop()], 1)
            for b in st.res:
                h = b(h, m3s[lvl], m1s[lvl])
        return self.head(h)


class SparseResNet21D(nn.Module):
    """Stages (n, C, kernel, stride): (3,16,3,1), (3,32,3,2), (3,64,3,2), (3,128,3,2),
    (1,128,(1,3,1),(1,2,1)); a strided stage starts with conv-BN-ReLU (padding (k-1)/2,
    spconv output rule), then n residual blocks (submanifold, same kernel)."""

    SPEC = [(3, 16, (3, 3, 3), (1, 1, 1)), (3, 32, (3, 3, 3), (2, 2, 2)), (3, 64, (3, 3, 3), (2, 2, 2)),
            (3, 128, (3, 3, 3), (2, 2, 2)), (1, 128, (1, 3, 1), (1, 2, 1))]

    def __init__(self, in_channels=4, width=1.0):
        super().__init__()
        self.stage = nn.ModuleList()
        cin = in_channels
        for n, c, k, s in self.SPEC:
            c = max(1, int(c * width))
            st = nn.Module()
            if s != (1, 1, 1):
                st.down = ConvBN(cin, c, k)
                cin = c
            st.res = nn.ModuleList()
            for _ in range(n):
                st.res.append(ResBlock(cin, c, k))
                cin = c
            self.stage.append(st)

    def forward(self, coords, feats, rng):
        """Returns [(coords, feats)] of every stage."""
        h, c, r = feats, coords, list(rng)
        outs = []
        for (n, _, k, s), st in zip(self.SPEC, self.stage):
            if s != (1, 1, 1):
                pad = tuple((k[a] - 1) // 2 for a in range(3))
                n_in = len(c)
                c, r, m = strided_map(c, r, kernel=k, stride=s, padding=pad)
                h = torch.relu(st.down(h, (m, transpose_map(m, n_in))))
            m3 = submanifold_map(c, r, kernel=k)
            m3 = (m3, transpose_map(m3, len(c)))
            m1 = torch.arange(len(c)).unsqueeze(1)
            for b in st.res:
                h = b(h, m3, (m1, m1))
            outs.append((c, h))
        return outs


def voxelize(xyz, feats, voxel):
    """floor(p/voxel), shifted to start at 0; mean features; returns coords (b=0), feats,
    range (rounded up to a multiple of 16, as Rust), and point->voxel index. Voxels sorted."""
    c = torch.floor(xyz / voxel).long()
    c = c - c.min(0).values
    c = torch.cat([torch.zeros((len(c), 1), dtype=torch.long), c], 1)
    rng = [int(v) + 1 for v in c[:, 1:].max(0).values]
    rng = [(r + 15) // 16 * 16 for r in rng]
    keys = ravel(c, [1] + rng)
    uniq, inv = torch.unique(keys, sorted=True, return_inverse=True)
    n = len(uniq)
    sums = torch.zeros((n, feats.shape[1]), dtype=torch.float64).index_add_(0, inv, feats.double())
    cnt = torch.zeros(n, dtype=torch.float64).index_add_(0, inv, torch.ones(len(inv), dtype=torch.float64))
    vc = torch.zeros((n, 4), dtype=torch.long)
    vc[inv] = c
    return vc, (sums / cnt[:, None]).float(), rng, inv
