"""Channel blocks: the only place that decides how a cube is cut for streaming.

A block is a run of core channels plus a halo of one adjacent channel on each side,
so that channel-to-neighbour features are exact at block edges. Blocks follow the
products' tile depth where they can, so that each read touches whole tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Block", "plan_blocks", "choose_block_channels", "return_freed_memory",
           "PLANES_PER_CHANNEL", "PLANES_FIXED"]

#: float32 planes held per core channel of a block: image, model, residual, pb, psf and
#: the validity mask (bool), rounded up
PLANES_PER_CHANNEL = 6
#: float32-plane equivalents held whatever the block size: the halo channels of the five
#: products, the planes each product keeps for the next block's halo, the per-channel
#: feature maps and temporaries
PLANES_FIXED = 30


@dataclass(frozen=True)
class Block:
    """Core channels ``start:stop`` and the channels read for them, ``read_start:read_stop``."""

    start: int
    stop: int
    read_start: int
    read_stop: int

    @property
    def core(self) -> slice:
        """Core channels as a slice into the read block."""
        return slice(self.start - self.read_start, self.stop - self.read_start)


def plan_blocks(nchan: int, block_channels: int, *, halo: int = 1) -> list[Block]:
    """Cut ``nchan`` channels into blocks of ``block_channels`` core channels plus halo."""
    size = max(1, int(block_channels))
    return [Block(start, min(start + size, nchan), max(0, start - halo),
                  min(nchan, start + size + halo))
            for start in range(0, nchan, size)]


def choose_block_channels(shape: tuple[int, int, int], *, memory_mb: float,
                          tile_depth: int = 1) -> int:
    """Core channels per block so that one block stays within ``memory_mb``.

    Peak memory of a block is about ``(PLANES_PER_CHANNEL * n + PLANES_FIXED)`` float32
    planes of ``ny * nx`` pixels. The result is a multiple or divisor of ``tile_depth``.
    """
    nchan, ny, nx = shape
    plane_mb = ny * nx * 4 / 2 ** 20
    fit = int((memory_mb / plane_mb - PLANES_FIXED) // PLANES_PER_CHANNEL)
    fit = max(1, min(fit, nchan))
    if tile_depth > 1:
        if fit >= tile_depth:
            fit -= fit % tile_depth
        else:
            fit = max(d for d in range(1, fit + 1) if tile_depth % d == 0)
    return fit


def return_freed_memory() -> None:
    """Make glibc give freed channel planes back to the system at once.

    glibc raises its mmap threshold after large frees, so later plane-sized arrays come
    from the heap and freed ones stay in the process (here ~115 MB more peak memory on a
    2048 x 2048 scan). Fixing the threshold (M_MMAP_THRESHOLD) keeps peak memory at what
    the blocks hold. Process-wide: the command calls it; a library user may. No-op where
    glibc is absent.
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD, 128 kB
    except (OSError, AttributeError):
        pass
