"""How cubes are cut into channel blocks and runs of blocks."""

import numpy as np
import pytest

from deconfetti.stream import (RUN_TILES, choose_block_channels, choose_workers, plan_blocks,
                               plan_runs)


def test_blocks_cover_every_channel_once_with_a_one_channel_halo():
    blocks = plan_blocks(10, 4)
    assert [(b.start, b.stop) for b in blocks] == [(0, 4), (4, 8), (8, 10)]
    assert [(b.read_start, b.read_stop) for b in blocks] == [(0, 5), (3, 9), (7, 10)]
    core = np.arange(10)[blocks[1].read_start:blocks[1].read_stop][blocks[1].core]
    np.testing.assert_array_equal(core, [4, 5, 6, 7])


@pytest.mark.parametrize("memory_mb, depth, expected", [(1024, 4, 2), (1024, 1, 3), (600, 4, 1),
                                                        (600, 8, 1), (2048, 16, 8), (4096, 16, 16)])
def test_block_size_follows_memory_and_tile_depth(memory_mb, depth, expected):
    # 2048 x 2048 planes: 16 MiB each
    size = choose_block_channels((4000, 2048, 2048), memory_mb=memory_mb, tile_depth=depth)
    assert size == expected
    assert size % depth == 0 or depth % size == 0


def test_runs_are_consecutive_capped_and_give_every_worker_one():
    blocks = plan_blocks(1000, 4)
    runs = plan_runs(blocks, workers=2, tile_depth=4)
    assert [b for run in runs for b in run] == blocks
    assert all(a.stop == b.start for run in runs for a, b in zip(run, run[1:]))
    assert max(run[-1].stop - run[0].start for run in runs) == RUN_TILES * 4
    short = plan_runs(plan_blocks(128, 4), workers=2, tile_depth=4)
    assert [(run[0].start, run[-1].stop) for run in short] == [(0, 64), (64, 128)]
    assert len(plan_runs(plan_blocks(8, 1), workers=16)) == 8


def test_runs_break_where_blocks_are_missing():
    blocks = plan_blocks(12, 2)
    todo = blocks[:2] + blocks[3:]  # block 4-6 already done
    runs = plan_runs(todo, workers=1)
    assert [[(b.start, b.stop) for b in run] for run in runs] == [[(0, 2), (2, 4)],
                                                                  [(6, 8), (8, 10), (10, 12)]]
    assert plan_runs([], workers=2) == []


@pytest.mark.parametrize("shape, memory_mb, cores, expected", [
    ((64, 2048, 2048), 512, 2, 1),   # a one-channel block is ~656 MB: one thread
    ((64, 2048, 2048), 1400, 2, 2),
    ((64, 1024, 1024), 512, 2, 2),
    ((64, 1024, 1024), 512, 8, 3),
    ((64, 4096, 4096), 512, 2, 1),   # never fewer than one
])
def test_worker_threads_follow_cores_and_memory(shape, memory_mb, cores, expected):
    assert choose_workers(shape, memory_mb=memory_mb, cores=cores) == expected


def test_checkpoint_keeps_the_data_test_maps(sim_fits, tmp_path):
    from deconfetti.checkpoint import BlockStore
    from deconfetti.io.products import open_products
    from deconfetti.stream import BlockResult

    block = plan_blocks(10, 4)[1]
    maps = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((4, 5), np.float32)]
    result = BlockResult(rms=np.ones(4), unsupported=np.ones(4), columns={"x": np.arange(2)},
                         negatives={"x": np.zeros(0)}, peak=None, maps=maps)
    store = BlockStore(tmp_path / "c", open_products(sim_fits), {}, resume=False)
    store.save(block, result)
    back = store.load(block)
    assert [m.shape for m in back.maps] == [(2, 3), (4, 5)]
    for a, b in zip(back.maps, maps):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ahead", [True, False])
def test_a_run_reads_each_block_once_in_order_one_block_ahead_at_most(ahead):
    import threading

    from deconfetti.stream import BlockResult, run_in_order

    blocks = plan_blocks(6, 2)
    events, readers = [], set()

    def read(block, kept):
        events.append(("read", block.start))
        readers.add(threading.get_ident())
        assert kept.get("last") == (block.start - 2 if block.start else None)
        kept["last"] = block.start
        return {"start": block.start}

    def work(block, carry, planes):
        assert planes == {"start": block.start}
        carry.setdefault("seen", []).append(block.start)
        events.append(("work", block.start))
        return BlockResult(rms=np.zeros(2), unsupported=np.zeros(2), columns={},
                           negatives={}, peak=np.full((1, 1), float(block.start)))

    results = run_in_order(work, blocks, read, ahead=ahead)
    assert [e for e in events if e[0] == "read"] == [("read", b.start) for b in blocks]
    for i, block in enumerate(blocks):  # block i+2 is never read before block i is done
        if i + 2 < len(blocks):
            assert events.index(("read", blocks[i + 2].start)) > events.index(("work", block.start))
    assert len(readers) == 1 and (threading.get_ident() in readers) != ahead
    assert results[0].peak[0, 0] == 4.0 and all(r.peak is None for r in results[1:])


@pytest.fixture(scope="module")
def nan_products(tmp_path_factory):
    """CASA products of a 7-channel cube with NaN in the model and image and a pb."""
    from deconfetti.io.products import open_products
    from deconfetti.simulate import simulate_cube, write_products

    sim = simulate_cube(nchan=7, ny=48, nx=48, seed=5, pb_fwhm=40.0,
                        confetti=[(3, 20, 20, 8.0)])
    sim.model[2, 5:9, 5:9] = np.nan
    sim.model[5, 30, 30] = np.nan
    sim.image[4, 40:44, 1:3] = np.nan
    return open_products(write_products(sim, tmp_path_factory.mktemp("nan"), "cube",
                                        fmt="casa"))


def test_a_block_read_takes_over_its_halo_from_the_block_before(nan_products):
    """What `read_block` keeps for the next block (the halo's valid planes, whether its
    model held NaN) gives the planes a read from nothing gives, even where the scan
    changed what it was handed."""
    from deconfetti.config import Config
    from deconfetti.pipeline import read_block

    config, kept = Config(), {}
    for block in plan_blocks(nan_products.nchan, 1):
        carried = read_block(nan_products, block, kept, config=config, fraction=0.5)
        alone = read_block(nan_products, block, config=config, fraction=0.5)
        for name in ("image", "model", "residual", "valid", "pb", "rms"):
            np.testing.assert_array_equal(carried[name], alone[name], err_msg=name)
        assert not np.isnan(carried["model"]).any()
        carried["valid"][:] = False  # a scan may change what it is handed
        carried["model"][:] = np.nan


def test_a_block_array_is_reused_only_once_nothing_holds_it(nan_products):
    image, pool = nan_products.image, []

    def address(array):
        return array.__array_interface__["data"][0]

    image.read(0, 3, pool=pool)
    second = image.read(2, 5, pool=pool)  # a block read after a block: into the pool's
    third = image.read(4, 7, pool=pool)
    assert not np.shares_memory(second, third) and len(pool) == 2
    where, view = address(second), third[1]
    del second, third
    fourth = image.read(1, 4, pool=pool)  # its halo is not the last read's: read anew,
    assert address(fourth) == where  # into the one nothing holds
    fifth = image.read(3, 6, pool=pool)
    sixth = image.read(4, 7, pool=pool)  # as large as the one viewed
    assert not np.shares_memory(sixth, view)  # one still viewed is not given out
    np.testing.assert_array_equal(fifth, image.read(3, 6, (slice(None), slice(None))))
    np.testing.assert_array_equal(view, image.read(5, 6, (slice(None), slice(None)))[0])
    assert not np.shares_memory(image.read(5, 7), image.read(6, 7))  # no pool, no reuse
    del fourth
