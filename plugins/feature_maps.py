"""Feature maps applied to images before kernel regression (paper Section 5, Table 3).

A feature map turns float32 (N, H, W, C) images in [0, 1] into feature vectors. To keep
huge feature spaces (e.g. 32,000 random filters) out of memory, features are produced in
blocks of output dimensions: ``blocks(x_train, x_test)`` yields ``(F_train_b, F_test_b)``
pairs whose concatenation along axis 1 is the full feature matrix, and the kernel solver
accumulates Gram matrices block by block. A block holds the features of whole filters,
as many as fit in ``block_dim`` (4,096 by default: 0.8 GB of float32 for 50,000 images).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from harness import hookimpl
from harness.errors import ConfigError

DEFAULT_BLOCK_DIM = 4096
WHITENING_PATCHES = 100_000  # patches whose covariance gives the ZCA whitening of random_conv
WHITENING_EPS = 0.1  # added to the eigenvalues of that covariance
CONTRAST_EPS = 10 / 255**2  # added to a patch's variance before dividing by its std


class PixelFeatures:
    """The flattened pixels (already scaled to [0, 1]), as one block; dimension H * W * C."""

    def dim(self, input_shape: tuple[int, int, int]) -> int:
        return math.prod(input_shape)

    def num_blocks(self, input_shape: tuple[int, int, int]) -> int:
        return 1

    def blocks(self, x_train: np.ndarray, x_test: np.ndarray):
        yield _flatten(x_train), _flatten(x_test)


def _flatten(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)


class _FilterBankFeatures:
    """A bank of filters followed by a nonlinearity and pooling.

    Each block is the output of a chunk of consecutive filters, computed with
    ``torch.nn.functional.conv2d`` on batches of ``batch_size`` images on ``device``.
    Subclasses define the filter bank, the features of one filter, and the transform.
    """

    def __init__(self, block_dim: int, batch_size: int, device: str):
        self.block_dim = block_dim
        self.batch_size = batch_size
        self.device = torch.device(device)

    def _num_filters(self, channels: int) -> int:
        raise NotImplementedError

    def _dim_per_filter(self, input_shape: tuple[int, int, int]) -> int:
        raise NotImplementedError

    def _filter_bank(self, x_train: np.ndarray) -> torch.Tensor:
        """The filters, stacked along dimension 0."""
        raise NotImplementedError

    def _prepare(self, filters: torch.Tensor):
        """What :meth:`_transform` needs of a chunk of filters, computed once per chunk (the filters themselves)."""
        return filters

    def _transform(self, x: torch.Tensor, filters) -> torch.Tensor:
        """Features (B, len(filters) * dim_per_filter) of images x (B, C, H, W), ``filters`` from :meth:`_prepare`."""
        raise NotImplementedError

    def dim(self, input_shape: tuple[int, int, int]) -> int:
        return self._num_filters(input_shape[2]) * self._dim_per_filter(input_shape)

    def num_blocks(self, input_shape: tuple[int, int, int]) -> int:
        return math.ceil(self._num_filters(input_shape[2]) / self._filters_per_block(input_shape))

    def _filters_per_block(self, input_shape: tuple[int, int, int]) -> int:
        return max(1, self.block_dim // self._dim_per_filter(input_shape))

    def blocks(self, x_train: np.ndarray, x_test: np.ndarray):
        filters = self._filter_bank(x_train).to(self.device)
        step = self._filters_per_block(x_train.shape[1:])
        for start in range(0, len(filters), step):
            chunk = filters[start : start + step]
            yield self._apply(x_train, chunk), self._apply(x_test, chunk)

    @torch.no_grad()
    def _apply(self, x: np.ndarray, filters: torch.Tensor) -> np.ndarray:
        out = np.empty((len(x), len(filters) * self._dim_per_filter(x.shape[1:])), np.float32)
        prepared = self._prepare(filters)
        for start in range(0, len(x), self.batch_size):
            batch = torch.from_numpy(np.asarray(x[start : start + self.batch_size], np.float32))
            batch = batch.permute(0, 3, 1, 2).to(self.device)
            out[start : start + len(batch)] = self._transform(batch, prepared).cpu().numpy()
        return out


class GaborFeatures(_FilterBankFeatures):
    """Modulus of a Gabor (Morlet) wavelet transform, average pooled; applied per channel.

    The filter bank is the first-order bank of the scattering transform (Bruna & Mallat
    2013, as in Kymatio): at scales j = 0 .. ``scales`` - 1 and angles
    theta = pi * l / ``orientations``, the complex Morlet wavelet with envelope width
    sigma = 0.8 * 2**j (1 / slant times wider across the wave, slant = 4 / orientations),
    frequency xi = (3 pi / 4) / 2**j (wavelength 8/3 * 2**j pixels), a correction term that
    makes its mean zero, and the envelope normalized to sum 1. Kernels are square, of odd
    side 2 * ceil(3 * sigma_max / slant) + 1 (21 for the defaults), zero padded ("same").

    Each channel of the image is convolved with every wavelet; the modulus of the complex
    response (sqrt(real**2 + imag**2)) is average pooled over non-overlapping
    ``pool`` x ``pool`` windows (a trailing partial window is dropped). The pooled pixels
    themselves (the modulus of the identity filter) come first, as the zeroth-order
    coefficients. Output dimension: C * (1 + scales * orientations) * (H // pool) * (W // pool),
    e.g. 833 for MNIST (28x28x1) and 3,264 for CIFAR-10 (32x32x3) with the defaults. The
    median squared distance between MNIST feature vectors is about 3.8 (about 100 on pixels),
    so a Gaussian kernel wants a larger bandwidth γ than on pixels (about 0.1 to 0.25).
    """

    def __init__(
        self,
        scales: int = 2,
        orientations: int = 8,
        pool: int = 4,
        block_dim: int = DEFAULT_BLOCK_DIM,
        batch_size: int = 256,
        device: str = "cpu",
    ):
        super().__init__(block_dim, batch_size, device)
        self.scales = scales
        self.orientations = orientations
        self.pool = pool

    def _num_filters(self, channels: int) -> int:
        return 1 + self.scales * self.orientations

    def _dim_per_filter(self, input_shape: tuple[int, int, int]) -> int:
        height, width, channels = input_shape
        return channels * (height // self.pool) * (width // self.pool)

    def _filter_bank(self, x_train: np.ndarray) -> torch.Tensor:
        """(1 + scales * orientations, 2, k, k): real and imaginary parts of the identity
        and of the wavelets."""
        slant = 4 / self.orientations
        radius = math.ceil(3 * 0.8 * 2 ** (self.scales - 1) / slant)
        identity = torch.zeros(2, 2 * radius + 1, 2 * radius + 1, dtype=torch.float64)
        identity[0, radius, radius] = 1
        wavelets = [
            _morlet(radius, 0.8 * 2**j, 0.75 * math.pi / 2**j, math.pi * angle / self.orientations, slant)
            for j in range(self.scales)
            for angle in range(self.orientations)
        ]
        return torch.stack([identity, *wavelets]).float()

    def _transform(self, x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        side = filters.shape[-1]
        weight = filters.reshape(-1, 1, side, side)
        response = F.conv2d(x.reshape(batch * channels, 1, height, width), weight, padding=side // 2)
        modulus = response.unflatten(1, (-1, 2)).square().sum(2).sqrt()
        pooled = F.avg_pool2d(modulus, self.pool)
        # (batch, filters, channels, h, w): a block holds whole filters, all channels.
        return pooled.unflatten(0, (batch, channels)).transpose(1, 2).flatten(1)


def _morlet(radius: int, sigma: float, xi: float, theta: float, slant: float) -> torch.Tensor:
    """(2, 2r+1, 2r+1) real and imaginary parts of a zero-mean Morlet wavelet whose
    envelope sums to 1."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    y, x = torch.meshgrid(offsets, offsets, indexing="ij")
    along = x * math.cos(theta) + y * math.sin(theta)
    across = -x * math.sin(theta) + y * math.cos(theta)
    envelope = torch.exp(-(along**2 + (slant * across) ** 2) / (2 * sigma**2))
    envelope = envelope / envelope.sum()
    wave = torch.exp(1j * xi * along)
    wavelet = envelope * (wave - (envelope * wave).sum())
    return torch.stack([wavelet.real, wavelet.imag])


class RandomConvFeatures(_FilterBankFeatures):
    """A one-layer random convolutional network (Coates & Ng 2011, random-patch filters).

    Filters: ``num_filters`` patches of ``patch`` x ``patch`` x C pixels, cut at random
    positions of random training images (drawn with ``seed``; labels are never used),
    normalized for brightness and contrast (minus the patch mean, divided by
    sqrt(patch variance + 10 / 255**2)), ZCA whitened and scaled to unit norm. The
    whitening matrix W = (S + 0.1 I)^(-1/2) comes from the covariance S of 100,000
    normalized training patches drawn the same way.

    Every patch p of an image (stride 1, no padding) is normalized likewise to p~, and
    the response of filter f is z = f . W (p~ - m), m the mean normalized patch. The
    nonlinearity is the soft threshold with both polarities, max(0, z - ``bias``) and
    max(0, -z - ``bias``); each is average pooled over the four quadrants of the response
    map (a 2 x 2 grid; the quadrants share the middle row and column when the side is odd)
    and divided by sqrt(``num_filters``), so that squared distances between feature vectors,
    hence a good Gaussian bandwidth, do not grow with the number of filters (on CIFAR-10 the
    median squared distance is about 0.3). Output dimension: 8 * ``num_filters`` (256,000 by
    default), for any image size. A block holds ``block_dim`` // 8 filters (512 by default).
    """

    def __init__(
        self,
        num_filters: int = 32000,
        patch: int = 6,
        bias: float = 0.25,
        seed: int = 0,
        block_dim: int = DEFAULT_BLOCK_DIM,
        batch_size: int = 8,
        device: str = "cpu",
    ):
        super().__init__(block_dim, batch_size, device)
        if bias < 0:
            raise ConfigError(f"random_conv: bias is a threshold, at least 0, got {bias}")
        self.num_filters = num_filters
        self.patch = patch
        self.bias = bias
        self.seed = seed

    def _num_filters(self, channels: int) -> int:
        return self.num_filters

    def _dim_per_filter(self, input_shape: tuple[int, int, int]) -> int:
        return 8

    def _filter_bank(self, x_train: np.ndarray) -> torch.Tensor:
        """(num_filters, C * patch**2 + 1): each row is W f flattened in (C, patch, patch)
        order, followed by the offset -(W f) . m."""
        rng = np.random.default_rng(self.seed)
        samples = _normalized_patches(x_train, WHITENING_PATCHES, self.patch, rng)
        mean = samples.mean(0)
        eigenvalues, eigenvectors = np.linalg.eigh(np.cov(samples, rowvar=False))
        whitening = eigenvectors @ np.diag((eigenvalues + WHITENING_EPS) ** -0.5) @ eigenvectors.T
        filters = (_normalized_patches(x_train, self.num_filters, self.patch, rng) - mean) @ whitening
        filters /= np.linalg.norm(filters, axis=1, keepdims=True)
        weights = filters @ whitening
        return torch.from_numpy(np.column_stack([weights, -weights @ mean])).float()

    def _prepare(self, filters: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The chunk's convolution weights (C, patch, patch) and offsets (1, filters, 1, 1)."""
        weight = filters[:, :-1].reshape(len(filters), -1, self.patch, self.patch)
        # f . (p - mean(p)) = (f - mean(f)) . p: the patches' means drop out of the convolution.
        weight = weight - weight.mean((1, 2, 3), keepdim=True)
        return weight, filters[:, -1].reshape(1, -1, 1, 1).contiguous()  # a strided offset halves its pass's speed

    def _transform(self, x: torch.Tensor, filters: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        weight, offset = filters
        mean = F.avg_pool2d(x.mean(1, keepdim=True), self.patch, stride=1)
        variance = F.avg_pool2d(x.square().mean(1, keepdim=True), self.patch, stride=1) - mean**2
        scale = (variance.clamp_min(0) + CONTRAST_EPS).sqrt()
        # Every pass below writes into the convolution's output: no response map is allocated twice.
        response = F.conv2d(x, weight)
        torch.addcdiv(offset, response, scale, out=response)
        # With bias >= 0 at most one polarity is non-zero: s = sign(z) max(|z| - bias, 0) holds both,
        # max(0, z - bias) = (|s| + s) / 2 and max(0, -z - bias) = (|s| - s) / 2, pooled from two passes.
        shrunk = torch.ops.aten.softshrink.out(response, self.bias, out=response)
        signed = _quadrant_means(shrunk)
        magnitude = _quadrant_means(shrunk.abs_())
        pooled = torch.stack([magnitude + signed, magnitude - signed], 2)  # (batch, filters, 2 polarities, 2, 2)
        return pooled.flatten(1) / (2 * math.sqrt(self.num_filters))


def _quadrant_means(maps: torch.Tensor) -> torch.Tensor:
    """Means of (B, F, H, W) maps over their four quadrants, (B, F, 2, 2): ``adaptive_avg_pool2d(maps, 2)``,
    whose windows have the same size, ceil(side / 2), and overlap in the middle row or column when the
    side is odd; the fixed-window pooling is faster on channels-last maps (a side of 1 has no such window)."""
    height, width = maps.shape[-2:]
    if min(height, width) < 2:
        return F.adaptive_avg_pool2d(maps, 2)
    return F.avg_pool2d(maps, (-(-height // 2), -(-width // 2)), stride=(height // 2, width // 2))


def _normalized_patches(x: np.ndarray, count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(count, C * size**2) float64 patches at random positions of random images of x
    (N, H, W, C), in (C, size, size) order, each minus its mean and divided by
    sqrt(its variance + CONTRAST_EPS)."""
    n, height, width, _ = x.shape
    image = rng.integers(0, n, count)[:, None, None]
    row = rng.integers(0, height - size + 1, count)[:, None, None] + np.arange(size)[:, None]
    col = rng.integers(0, width - size + 1, count)[:, None, None] + np.arange(size)
    patches = x[image, row, col].transpose(0, 3, 1, 2).reshape(count, -1).astype(np.float64)
    patches -= patches.mean(1, keepdims=True)
    return patches / np.sqrt(patches.var(1, keepdims=True) + CONTRAST_EPS)


@hookimpl
def register_feature_maps(register):
    register("none", PixelFeatures)
    register("gabor", GaborFeatures)
    register("random_conv", RandomConvFeatures)
