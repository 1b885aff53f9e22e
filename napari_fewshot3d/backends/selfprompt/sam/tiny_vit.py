"""TinyViT image encoder with the SAM neck, as LiteMedSAM uses it (our own implementation, no timm).

LiteMedSAM distils SAM's ViT into a TinyViT-5M-like network working on 256×256 inputs:

- a stride-1 "patch embedding" of two 1×1 conv+BN layers (so stage 0 runs at full 256×256);
- stage 0: MBConv blocks (1×1 expand, 3×3 depthwise, 1×1 project, residual);
- stages 1–3: windowed self-attention blocks with a learned relative-position bias per head, a
  depthwise 3×3 conv between attention and MLP, and pre-norm MLPs;
- between stages a conv "patch merging" (1×1, depthwise 3×3 strided, 1×1); the last one keeps the
  resolution, so the encoder ends at 64×64 like SAM's ViT;
- SAM's neck (1×1 conv, LayerNorm2d, 3×3 conv, LayerNorm2d) → 256×64×64 embeddings.

Module names follow the published state dict exactly (``patch_embed.seq.0.c``, ``layers.1.blocks.0.attn.qkv``,
``neck.2``...), so the weights load with ``strict=True``. Features stay (B, C, H, W) between blocks; the
attention part permutes to (B, H, W, C), which is a free view under ``channels_last`` memory format.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ConvBN(nn.Sequential):
    """Bias-free conv followed by batch norm; child names ``c`` and ``bn`` as in the checkpoint."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            OrderedDict(
                c=nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                bn=nn.BatchNorm2d(cout),
            )
        )


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) map (SAM's neck norm)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class PatchEmbed(nn.Module):
    """Two 1×1 conv+BN with GELU between (stride 1 in LiteMedSAM)."""

    def __init__(self, cin: int, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(ConvBN(cin, dim // 2), nn.GELU(), ConvBN(dim // 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block (expand, depthwise, project) of stage 0."""

    def __init__(self, dim: int, expand: float) -> None:
        super().__init__()
        hidden = int(dim * expand)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, kernel=3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return F.gelu(x + self.conv3(y))


class PatchMerging(nn.Module):
    """Conv downsampling between stages: 1×1 to the new width, strided depthwise 3×3, 1×1."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, kernel=3, stride=stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention inside one window, with a bias per head and per |dy|, |dx| offset."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(heads, window * window))
        # Offset (|dy|, |dx|) between two tokens of the window, numbered |dy| * window + |dx|.
        yy, xx = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        yy, xx = yy.flatten(), xx.flatten()
        index = (yy[:, None] - yy[None, :]).abs() * window + (xx[:, None] - xx[None, :]).abs()
        self.register_buffer("bias_index", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (windows, tokens, dim)
        n, tokens, dim = x.shape
        qkv = self.qkv(self.norm(x)).view(n, tokens, self.heads, 3 * self.head_dim).transpose(1, 2)
        # The checkpoint lays q, k, v out per head (not q for all heads, then k, then v).
        q, k, v = qkv.split(self.head_dim, dim=-1)
        bias = self.attention_biases[:, self.bias_index].to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(n, tokens, dim))


class Mlp(nn.Module):
    """Pre-norm two-layer MLP."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Window attention (zero-padded to whole windows) + residual, depthwise conv, MLP + residual."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window = window
        self.attn = Attention(dim, heads, window)
        self.local_conv = ConvBN(dim, dim, kernel=3, groups=dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _window_attention(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, W, C)
        b, h, w, c = x.shape
        ws = self.window
        pad_h, pad_w = (-h) % ws, (-w) % ws
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        nh, nw = (h + pad_h) // ws, (w + pad_w) // ws
        windows = x.reshape(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
        out = self.attn(windows).reshape(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, nh * ws, nw * ws, c)
        return out[:, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        t = x.permute(0, 2, 3, 1)
        t = t + self._window_attention(t)
        t = self.local_conv(t.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        t = t + self.mlp(t)
        return t.permute(0, 3, 1, 2)


class Stage(nn.Module):
    """Blocks at one resolution, then the optional downsampling to the next stage's width."""

    def __init__(self, blocks: list[nn.Module], downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """TinyViT encoder + SAM neck; defaults are LiteMedSAM's (256×256 input → 256×64×64 embedding)."""

    def __init__(
        self,
        in_chans: int = 3,
        embed_dims: Sequence[int] = (64, 128, 160, 320),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (2, 4, 5, 10),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        merge_strides: Sequence[int] = (2, 2, 1),
        mlp_ratio: float = 4.0,
        mbconv_expand: float = 4.0,
        out_chans: int = 256,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        self.layers = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(embed_dims, depths, strict=True)):
            if i == 0:
                blocks: list[nn.Module] = [MBConv(dim, mbconv_expand) for _ in range(depth)]
            else:
                blocks = [TinyViTBlock(dim, num_heads[i], window_sizes[i], mlp_ratio) for _ in range(depth)]
            last = i == len(embed_dims) - 1
            merge = None if last else PatchMerging(dim, embed_dims[i + 1], merge_strides[i])
            self.layers.append(Stage(blocks, merge))
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.neck(x)
