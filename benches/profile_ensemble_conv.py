"""How a vmapped ensemble's convolutions could be formulated on this CPU: one 3x3 conv layer
of the CIFAR ResNet (16 -> 16 channels, 32x32, batch 128, E members, forward + backward with
input and weight gradients), and the whole ResNet-20 (width 16) per member-step.

    python benches/profile_ensemble_conv.py            # E = 8
    python benches/profile_ensemble_conv.py --skip-model   # the conv layer only (seconds)

Formulations of the layer: ``vmap`` of ``conv2d`` (what the ensemble runs: torch folds the
members into the channel axis, ``groups=E``), the same grouped convolution written out,
in the default layout and in ``channels_last``, a loop of E plain convolutions (default and
``channels_last``), and im2col (``unfold``) + one batched matmul. The model: the vmapped
ensemble vs a loop over members (stacked parameters sliced per member) in either layout.
Median of ``--repeats`` after a warm-up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch.func import functional_call, stack_module_state

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import median_time  # noqa: E402

from memscore.models import cifar_resnet  # noqa: E402


def conv_layer(E: int, B: int, C: int, H: int, repeats: int) -> None:
    x = torch.randn(E, B, C, H, H, requires_grad=True)
    w = torch.randn(E, C, C, 3, 3, requires_grad=True)
    folded = x.detach().permute(1, 0, 2, 3, 4).reshape(B, E * C, H, H)
    f_cl = folded.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    f_def = folded.clone().requires_grad_(True)
    per_cl = [x[e].detach().contiguous(memory_format=torch.channels_last).requires_grad_(True) for e in range(E)]

    def vm() -> None:
        torch.func.vmap(lambda xi, wi: F.conv2d(xi, wi, padding=1))(x, w).sum().backward()

    def grouped(xf: torch.Tensor) -> None:
        F.conv2d(xf, w.reshape(E * C, C, 3, 3), padding=1, groups=E).sum().backward()

    def loop(xs: list[torch.Tensor]) -> None:
        for e in range(E):
            F.conv2d(xs[e], w[e], padding=1).sum().backward()

    def unfold() -> None:
        cols = F.unfold(x.reshape(E * B, C, H, H), 3, padding=1).view(E, B, C * 9, H * H)
        torch.einsum("eok,ebkp->ebop", w.reshape(E, C, C * 9), cols).sum().backward()

    cases = {
        "vmap conv2d (the ensemble)": vm,
        "explicit groups=E": lambda: grouped(f_def),
        "explicit groups=E, channels_last": lambda: grouped(f_cl),
        "loop of E convs": lambda: loop([x[e] for e in range(E)]),
        "loop of E convs, channels_last": lambda: loop(per_cl),
        "unfold + batched matmul": unfold,
    }
    print(f"one conv layer {C}->{C}, {H}x{H}, batch {B}, E={E}, forward + backward:")
    for name, fn in cases.items():
        print(f"  {name:36s} {median_time(fn, repeats) * 1000:8.1f} ms", flush=True)


def model(E: int, B: int, repeats: int) -> None:
    ms = [cifar_resnet(10, width=16, depth=20) for _ in range(E)]
    params, buffers = stack_module_state(ms)
    names = list(params)
    p = [params[k].detach().clone().requires_grad_(True) for k in names]
    b = {k: v.detach().clone() for k, v in buffers.items()}
    base = cifar_resnet(10, width=16, depth=20).to("meta")

    def f(pp: list[torch.Tensor], bb: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, {**dict(zip(names, pp, strict=True)), **bb}, (x,))

    vm = torch.func.vmap(f, in_dims=(0, 0, 0), randomness="different")
    x = torch.randn(E, B, 3, 32, 32)

    def run_vmap() -> None:
        torch.autograd.grad(vm(p, b, x).sum(), p)

    def run_loop(cl: bool) -> None:
        outs = []
        for e in range(E):
            xe = x[e].contiguous(memory_format=torch.channels_last) if cl else x[e]
            outs.append(f([q[e] for q in p], {k: v[e] for k, v in b.items()}, xe))
        torch.autograd.grad(torch.stack(outs).sum(), p)

    print(f"CIFAR ResNet-20 width 16, batch {B}, E={E}, train-mode forward + backward, per member-step:")
    cases = {"vmap (the ensemble)": run_vmap, "loop over members": lambda: run_loop(False),
             "loop over members, channels_last": lambda: run_loop(True)}  # fmt: skip
    for name, fn in cases.items():
        print(f"  {name:36s} {median_time(fn, repeats) * 1000 / E:8.1f} ms", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-model", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    conv_layer(a.members, a.batch_size, 16, 32, a.repeats)
    if not a.skip_model:
        model(a.members, a.batch_size, max(1, a.repeats - 1))


if __name__ == "__main__":
    main()
