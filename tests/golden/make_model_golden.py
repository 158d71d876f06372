#!/usr/bin/python3
"""Golden files for the C++ Mamba language model (tests/test_mamba_model_golden.cpp).

An independent float64 PyTorch implementation of the causal Mamba-1 LM, written from
the equations of Gu & Dao (2023) and DESIGN.md section 3, with a plain sequential scan
loop. Autograd gives the reference gradients. Run with Debian's python (has torch):

    /usr/bin/python3 tests/golden/make_model_golden.py

Writes, next to this script:
  model_golden.weights.safetensors  genomamba weights file (F32, mamba_ssm names,
                                    __metadata__ format/config) that the C++ loads
  model_golden.io.safetensors       inputs (token windows, flags; U8), soft_weight,
                                    and the float64 outputs: logits, loss, and
                                    grad.<param> for every parameter

Conventions shared with the C++ (and only these):
  tokens A=7 C=8 G=9 T=10 N=11, PAD=4; a window of L+1 tokens gives inputs [0, L)
  and targets [1, L]; flags bit 0 = soft-masked, bit 1 = a document starts here;
  a target that starts a document becomes PAD; loss weight 1 for A/C/G/T targets,
  soft_weight when soft-masked, 0 otherwise; loss = sum(w * CE) / sum(w).
"""
import json
import math
import os
import struct

import torch

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))

# A small model with non-default, non-power-of-two sizes so that no shape is confused
# with another: d 24, d_inner 48, dt_rank 2, d_state 16, conv width 4.
D_MODEL, N_LAYER, D_STATE, EXPAND, D_CONV, VOCAB = 24, 2, 16, 2, 4, 16
D_INNER = EXPAND * D_MODEL
DT_RANK = math.ceil(D_MODEL / 16)
EPS = 1e-5
BATCH, LENGTH = 2, 37
SOFT_WEIGHT = 0.5
PAD = 4


def make_weights(gen):
    """Random weights at scales where every path matters, rounded to float32."""

    def u(shape, bound):
        return (torch.rand(shape, generator=gen) * 2 - 1) * bound

    w = {}
    w["backbone.embedding.weight"] = torch.randn(VOCAB, D_MODEL, generator=gen) * 0.2
    for i in range(N_LAYER):
        p = f"backbone.layers.{i}."
        w[p + "norm.weight"] = 1 + 0.2 * torch.randn(D_MODEL, generator=gen)
        w[p + "mixer.in_proj.weight"] = u((2 * D_INNER, D_MODEL), 1 / math.sqrt(D_MODEL))
        w[p + "mixer.conv1d.weight"] = u((D_INNER, 1, D_CONV), 1 / math.sqrt(D_CONV))
        w[p + "mixer.conv1d.bias"] = u((D_INNER,), 1 / math.sqrt(D_CONV))
        w[p + "mixer.x_proj.weight"] = u((DT_RANK + 2 * D_STATE, D_INNER), 1 / math.sqrt(D_INNER))
        w[p + "mixer.dt_proj.weight"] = u((D_INNER, DT_RANK), 1 / math.sqrt(DT_RANK))
        # softplus^-1 of dt in [0.01, 0.5]: memories of a few to ~100 steps
        dt = torch.exp(torch.rand(D_INNER, generator=gen) * (math.log(0.5) - math.log(0.01)) + math.log(0.01))
        w[p + "mixer.dt_proj.bias"] = dt + torch.log(-torch.expm1(-dt))
        a = torch.arange(1, D_STATE + 1).repeat(D_INNER, 1)
        w[p + "mixer.A_log"] = torch.log(a) + 0.3 * torch.randn(D_INNER, D_STATE, generator=gen)
        w[p + "mixer.D"] = 1 + 0.3 * torch.randn(D_INNER, generator=gen)
        w[p + "mixer.out_proj.weight"] = u((D_MODEL, D_INNER), 1 / math.sqrt(D_INNER))
    w["backbone.norm_f.weight"] = 1 + 0.2 * torch.randn(D_MODEL, generator=gen)
    return {k: v.float().double() for k, v in w.items()}


def make_inputs(gen):
    windows = 7 + torch.randint(0, 4, (BATCH, LENGTH + 1), generator=gen)
    flags = torch.zeros(BATCH, LENGTH + 1, dtype=torch.long)
    windows[0, 5:8] = 11          # a run of N: excluded targets
    windows[1, 30] = 11
    flags[0, 10:16] |= 1          # soft-masked stretch
    flags[1, 2:5] |= 1
    flags[1, 17] |= 2             # row 1 packs two documents: the second starts at 17
    flags[0, 0] |= 2              # a start at position 0 changes nothing
    return windows, flags


def rms_norm(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + EPS) * weight


def document_starts(reset):
    """start[b, t] = latest position s <= t with reset[b, s], or 0."""
    start = torch.zeros_like(reset, dtype=torch.long)
    for b in range(reset.shape[0]):
        s = 0
        for t in range(reset.shape[1]):
            if reset[b, t]:
                s = t
            start[b, t] = s
    return start


def causal_conv(x, weight, bias, start):
    """x [B, L, D]; out[b,t,c] = bias[c] + sum_j weight[c, K-1-j] * x[b, t-j, c] over t-j >= start[b,t]."""
    bsz, length, _ = x.shape
    rows = []
    for b in range(bsz):
        cols = []
        for t in range(length):
            acc = bias.clone()
            for j in range(D_CONV):
                if t - j >= start[b, t]:
                    acc = acc + weight[:, 0, D_CONV - 1 - j] * x[b, t - j]
            cols.append(acc)
        rows.append(torch.stack(cols))
    return torch.stack(rows)


def mixer(p, h, reset, start):
    xz = h @ p["in_proj.weight"].T
    x, z = xz[..., :D_INNER], xz[..., D_INNER:]
    u = torch.nn.functional.silu(causal_conv(x, p["conv1d.weight"], p["conv1d.bias"], start))
    x_dbl = u @ p["x_proj.weight"].T
    dt_low = x_dbl[..., :DT_RANK]
    b_in = x_dbl[..., DT_RANK:DT_RANK + D_STATE]
    c_out = x_dbl[..., DT_RANK + D_STATE:]
    delta = torch.nn.functional.softplus(dt_low @ p["dt_proj.weight"].T + p["dt_proj.bias"])  # [B, L, D]
    a = -torch.exp(p["A_log"])  # [D, N]
    state = torch.zeros(h.shape[0], D_INNER, D_STATE)
    ys = []
    for t in range(h.shape[1]):
        keep = (1.0 - reset[:, t].double())[:, None, None]
        d_t = delta[:, t, :, None]
        state = torch.exp(d_t * a) * state * keep + d_t * b_in[:, t, None, :] * u[:, t, :, None]
        ys.append((state * c_out[:, t, None, :]).sum(-1) + p["D"] * u[:, t])
    y = torch.stack(ys, dim=1) * torch.nn.functional.silu(z)
    return y @ p["out_proj.weight"].T


def language_model(w, tokens, reset):
    start = document_starts(reset)
    emb = w["backbone.embedding.weight"]
    residual = emb[tokens]
    mix = None
    for i in range(N_LAYER):
        prefix = f"backbone.layers.{i}."
        if mix is not None:
            residual = residual + mix
        h = rms_norm(residual, w[prefix + "norm.weight"])
        layer = {k[len(prefix + "mixer."):]: v for k, v in w.items() if k.startswith(prefix + "mixer.")}
        mix = mixer(layer, h, reset, start)
    residual = residual + mix
    return rms_norm(residual, w["backbone.norm_f.weight"]) @ emb.T  # tied head


def loss_of(logits, targets, target_soft):
    is_base = (targets >= 7) & (targets <= 10)
    weight = torch.where(is_base, torch.where(target_soft, SOFT_WEIGHT, 1.0), 0.0)
    ce = torch.logsumexp(logits, dim=-1) - logits.gather(-1, targets[..., None])[..., 0]
    return (weight * ce).sum() / weight.sum()


def write_safetensors(path, tensors, metadata):
    """tensors: name -> (dtype string, shape, bytes)."""
    header = {"__metadata__": metadata}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, data in tensors.values():
            f.write(data)


def packed(t, fmt):
    flat = t.reshape(-1).tolist()
    return struct.pack("<%d%s" % (len(flat), fmt), *flat)


def main():
    gen = torch.Generator().manual_seed(20240611)
    weights = make_weights(gen)
    windows, flags = make_inputs(gen)

    tokens = windows[:, :LENGTH]
    reset = (flags[:, :LENGTH] & 2) != 0
    target_starts = (flags[:, 1:] & 2) != 0
    targets = torch.where(target_starts, torch.full_like(windows[:, 1:], PAD), windows[:, 1:])
    target_soft = (flags[:, 1:] & 1) != 0

    params = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
    logits = language_model(params, tokens, reset)
    loss = loss_of(logits, targets, target_soft)
    loss.backward()

    config = {
        "d_model": D_MODEL, "d_intermediate": 0, "n_layer": N_LAYER, "vocab_size": VOCAB,
        "ssm_cfg": {"layer": "Mamba1", "d_state": D_STATE, "d_conv": D_CONV, "expand": EXPAND,
                    "dt_rank": DT_RANK, "dt_min": 0.001, "dt_max": 0.1, "dt_init_floor": 1e-4,
                    "conv_bias": True, "bias": False},
        "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True, "tie_embeddings": True,
        "genomamba": {"norm_epsilon": EPS, "bidirectional": False, "rc_equivariant": False,
                      "objective": "causal"},
    }
    weight_file = {k: ("F32", v.shape, packed(v, "f")) for k, v in weights.items()}
    write_safetensors(os.path.join(HERE, "model_golden.weights.safetensors"), weight_file,
                      {"format": "genomamba.weights", "format_version": "1", "config": json.dumps(config),
                       "generator": "tests/golden/make_model_golden.py (float64 PyTorch reference)"})

    io = {
        "windows": ("U8", windows.shape, packed(windows, "B")),
        "flags": ("U8", flags.shape, packed(flags, "B")),
        "soft_weight": ("F64", (1,), packed(torch.tensor([SOFT_WEIGHT]), "d")),
        "logits": ("F64", (BATCH * LENGTH, VOCAB), packed(logits.detach(), "d")),
        "loss": ("F64", (1,), packed(loss.detach().reshape(1), "d")),
    }
    for name, p in params.items():
        io["grad." + name] = ("F64", p.shape, packed(p.grad, "d"))
    write_safetensors(os.path.join(HERE, "model_golden.io.safetensors"), io,
                      {"generator": "tests/golden/make_model_golden.py (float64 PyTorch reference)"})
    print("loss %.10f, logits norm %.6f" % (loss.item(), logits.norm().item()))


if __name__ == "__main__":
    main()
