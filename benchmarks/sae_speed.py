"""Training speed of the SAE: our numpy sae_step against the same model in PyTorch.

    python benchmarks/sae_speed.py [--steps 20] [--repeats 15] [--instances 1 5]

n_features = n_latents = 512, neurons 128, batch 1024, float32, one thread (numpy's
BLAS through threadpoolctl, torch.set_num_threads(1)). H: synthetic, 5 % of 512
features active with uniform magnitudes in [0, 1), through a random W (128, 512) of
unit-norm columns; a fixed pool of batches that both sides cycle through. For each
architecture (relu; topk, batchtopk, matryoshka with k=5, matryoshka's 3 nested
prefixes; jumprelu), ``sae.sae_step`` and, if
PyTorch is installed (`pip install torch`; not a dependency), a plain PyTorch version
of the same model and step (forward, loss, autograd backward, the same projection of
W_dec's gradient and renormalisation of its columns, torch.optim.Adam) start from the
same params and are timed alternately, ``repeats`` runs of ``steps`` steps each.
Prints the median training samples per second of each (with several instances: every
instance's samples) and numpy / torch (goal >= 1), then one JSON line. Before the
timing, both compute the gradients of one batch from the same params; the largest
difference, relative to the gradient's largest entry, checks that they are the same
model.
"""

import argparse
import json
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from sweep.models import AdamW, keep_freed_memory
from sweep.sae import JUMP, THETA_INIT, Setup, init_sae, sae_step, trained_names

N_FEATURES, N_NEURONS, BATCH, K, ACTIVE = 512, 128, 1024, 5, 0.05
ARCHS = ("relu", "topk", "batchtopk", "jumprelu", "matryoshka")
POOL = 8  # batches in the pool both sides cycle through


def batches(n_inst: int, seed: int = 0) -> np.ndarray:
    """(POOL, I, BATCH, N_NEURONS) float32: sparse features through a random W."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((N_NEURONS, N_FEATURES))
    W /= np.linalg.norm(W, axis=0)
    shape = (POOL, n_inst, BATCH, N_FEATURES)
    X = np.where(rng.random(shape) < ACTIVE, rng.random(shape), 0.0)
    return (X @ W.T).astype(np.float32)


def start(pool: np.ndarray, setup: Setup) -> dict[str, np.ndarray]:
    """float32 params of ``init_sae`` (jumprelu: and its initial thresholds)."""
    n_inst = pool.shape[1]
    rngs = [np.random.default_rng([1, i]) for i in range(n_inst)]
    mean = pool.mean(axis=(0, 2))
    init = init_sae(mean, rngs=rngs, n_latents=N_FEATURES)
    params = {name: p.astype(np.float32) for name, p in init.items()}
    if setup.architecture == "jumprelu":
        params[JUMP] = np.full((n_inst, N_FEATURES), np.log(THETA_INIT), np.float32)
    return params


class Recorder(AdamW):
    """An optimiser that only keeps the gradients it is handed."""

    def step(self, grads) -> None:
        self.grads = [g.copy() for g in grads]


class Numpy:
    """Our step: ``sae_step`` with AdamW(weight_decay=0)."""

    def __init__(self, params: dict[str, np.ndarray], setup: Setup):
        self.params = {name: p.copy() for name, p in params.items()}
        self.setup, self.names = setup, trained_names(setup.architecture)
        trained = [self.params[n] for n in self.names]
        self.adam = AdamW(trained, lr=setup.lr, weight_decay=0.0)

    def step(self, H: np.ndarray) -> None:
        sae_step(self.params, self.adam, H, self.setup)

    def grads(self, H: np.ndarray) -> dict[str, np.ndarray]:
        """The gradients sae_step hands to Adam (W_dec's projected), on a copy."""
        params = {name: p.copy() for name, p in self.params.items()}
        recorder = Recorder([params[n] for n in self.names], lr=0.0, weight_decay=0.0)
        sae_step(params, recorder, H, self.setup)
        return dict(zip(self.names, recorder.grads, strict=True))


def torch_step_class():
    """The PyTorch implementation, or None without torch."""
    try:
        import torch
    except ImportError:
        return None

    class JumpReLU(torch.autograd.Function):
        """z H(z - theta); d/dtheta by the straight-through estimator (rectangle
        kernel of width ``bandwidth``), as Rajamanoharan et al. 2024."""

        @staticmethod
        def forward(ctx, pre, theta, bandwidth):
            ctx.save_for_backward(pre, theta)
            ctx.bandwidth = bandwidth
            return pre * (pre > theta)

        @staticmethod
        def backward(ctx, g):
            pre, theta = ctx.saved_tensors
            eps = ctx.bandwidth
            near = ((pre - theta).abs() < eps / 2).to(pre.dtype) / eps
            d_theta = -(g * theta * near).sum(dim=1, keepdim=True)
            return g * (pre > theta), d_theta, None

    class Step(torch.autograd.Function):
        """H(z - theta); d/dtheta by the straight-through estimator, none to z."""

        @staticmethod
        def forward(ctx, pre, theta, bandwidth):
            ctx.save_for_backward(pre, theta)
            ctx.bandwidth = bandwidth
            return (pre > theta).to(pre.dtype)

        @staticmethod
        def backward(ctx, g):
            pre, theta = ctx.saved_tensors
            eps = ctx.bandwidth
            near = ((pre - theta).abs() < eps / 2).to(pre.dtype) / eps
            return None, -(g * near).sum(dim=1, keepdim=True), None

    class Torch:
        """The same SAE, loss and step written plainly in PyTorch."""

        def __init__(self, params: dict[str, np.ndarray], setup: Setup):
            names = trained_names(setup.architecture)
            self.p = {n: torch.nn.Parameter(torch.tensor(params[n])) for n in names}
            self.setup = setup
            self.opt = torch.optim.Adam(list(self.p.values()), lr=setup.lr)

        def loss(self, H):
            p, s = self.p, self.setup
            C = H - p["b_dec"][:, None, :]
            pre = torch.baddbmm(p["b_enc"][:, None, :], C, p["W_enc"].transpose(1, 2))
            penalty = 0.0
            if s.architecture == "relu":
                F = torch.relu(pre)
                penalty = s.l1 * F.sum(dim=2)
            elif s.architecture == "topk":
                values, idx = pre.topk(s.k, dim=2)
                F = torch.zeros_like(pre).scatter(2, idx, torch.relu(values))
            elif s.architecture in ("batchtopk", "matryoshka"):
                flat = torch.relu(pre).flatten(1)
                values, idx = flat.topk(s.k * pre.shape[1], dim=1)
                F = torch.zeros_like(flat).scatter(1, idx, values).view_as(pre)
            else:  # jumprelu
                theta = p[JUMP].exp()[:, None, :]
                F = JumpReLU.apply(pre, theta, s.bandwidth)
                penalty = s.l1 * Step.apply(pre, theta, s.bandwidth).sum(dim=2)
            squares = 0.0  # matryoshka: every prefix reconstructs on its own
            for width in s.widths:
                h_hat = torch.baddbmm(p["b_dec"][:, None, :], F[:, :, :width],
                                      p["W_dec"][:, :, :width].transpose(1, 2))
                squares = squares + ((h_hat - H) ** 2).sum(dim=2)
            return (squares + penalty).mean(dim=1).sum()

        def backward(self, H) -> None:
            self.opt.zero_grad(set_to_none=True)
            self.loss(H).backward()
            with torch.no_grad():
                W_dec = self.p["W_dec"]
                W_dec.grad -= (W_dec.grad * W_dec).sum(dim=1, keepdim=True) * W_dec

        def step(self, H) -> None:
            self.backward(H)
            self.opt.step()
            with torch.no_grad():
                W_dec = self.p["W_dec"]
                W_dec /= W_dec.norm(dim=1, keepdim=True)

        def grads(self, H) -> dict[str, np.ndarray]:
            self.backward(H)
            return {n: t.grad.numpy().copy() for n, t in self.p.items()}

    torch.set_num_threads(1)
    return Torch, torch.from_numpy


def seconds(impl, pool, steps: int) -> float:
    start = time.perf_counter()
    for i in range(steps):
        impl.step(pool[i % len(pool)])
    return time.perf_counter() - start


def measure(arch: str, n_inst: int, steps: int, repeats: int, torch_impl) -> dict:
    """Median samples/s of numpy (and torch), alternated; the gradients' difference."""
    setup = Setup(n_latents=N_FEATURES, architecture=arch, k=K)
    pool = batches(n_inst)
    params = start(pool, setup)
    sides = {"numpy": (Numpy(params, setup), pool)}
    out = {}
    if torch_impl is not None:
        Torch, as_tensor = torch_impl
        tpool = [as_tensor(H) for H in pool]
        sides["torch"] = (Torch(params, setup), tpool)
        ours = sides["numpy"][0].grads(pool[0])
        theirs = sides["torch"][0].grads(tpool[0])
        out["grad_diff"] = max(
            float(np.abs(ours[n] - theirs[n]).max() / np.abs(ours[n]).max())
            for n in ours
        )
    for impl, data in sides.values():
        seconds(impl, data, 5)  # warm up
    times = {name: [] for name in sides}
    for _ in range(repeats):
        for name, (impl, data) in sides.items():
            times[name].append(seconds(impl, data, steps))
    for name, ts in times.items():
        out[name] = n_inst * BATCH * steps / float(np.median(ts))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--instances", type=int, nargs="+", default=[1])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHS),
                        choices=ARCHS)  # fmt: skip
    args = parser.parse_args()
    keep_freed_memory()  # as train_sae does
    torch_impl = torch_step_class()
    out = sys.stdout
    with threadpool_limits(1):
        rows = {(a, i): measure(a, i, args.steps, args.repeats, torch_impl)
                for i in args.instances for a in args.architectures}  # fmt: skip
    out.write(
        f"n_latents {N_FEATURES}, neurons {N_NEURONS}, batch {BATCH}, float32, one "
        f"thread; median of {args.repeats} x {args.steps} steps\n"
    )
    if torch_impl is None:
        out.write("PyTorch: not installed, not measured (pip install torch)\n")
    head = f"{'architecture':<14}{'I':>3}{'numpy samples/s':>17}"
    if torch_impl is not None:
        head += f"{'torch samples/s':>17}{'numpy/torch':>13}{'grad diff':>11}"
    out.write(head + "\n")
    result = []
    for (arch, n_inst), row in rows.items():
        line = f"{arch:<14}{n_inst:>3}{row['numpy']:>17,.0f}"
        entry = {"architecture": arch, "instances": n_inst}
        entry["numpy"] = round(row["numpy"])
        if torch_impl is not None:
            ratio = row["numpy"] / row["torch"]
            line += f"{row['torch']:>17,.0f}{ratio:>13.2f}{row['grad_diff']:>11.1e}"
            entry |= {"torch": round(row["torch"]), "numpy_over_torch": round(ratio, 3),
                      "grad_diff": float(f"{row['grad_diff']:.2e}")}  # fmt: skip
        out.write(line + "\n")
        result.append(entry)
    if torch_impl is not None:
        out.write("goal: numpy/torch >= 1 (torch's CPU speed)\n")
    out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
