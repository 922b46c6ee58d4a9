"""Block runners (streambin.block_runner) on their own. The GPU runner's block collection and
feature hand-over are checked with a stand-in for the CUDA pipeline (no GPU here); the CPU
runners are exercised through the Spatializer's own tests."""

import numpy as np
import pytest

from streambin.block_runner import GpuRunner, RecentSamples


class _StandInPipeline:
    """Records what GpuRunner hands the CUDA pipeline; returns the block on both ears."""

    class bundle:
        input_rms, rms_floor = 0.1, 1e-4

    def __init__(self):
        self.features, self.blocks = [], []

    def reset(self):
        self.blocks.clear()

    def set_feature(self, feature):
        self.features.append(np.array(feature))

    def run_block(self, block, input_rms, rms_floor):
        assert (input_rms, rms_floor) == (0.1, 1e-4)
        self.blocks.append(block.copy())
        return np.stack([block, -block])


class _Visual:
    def __init__(self):
        self.runs, self.current = 0, np.zeros(4, np.float32)


@pytest.mark.parametrize("chunks", [[480], [1, 2, 3, 100, 374], [7] * 68 + [4]])
def test_gpu_runner_emits_whole_blocks_whatever_the_chunking(chunks):
    pipeline, visual, emitted = _StandInPipeline(), _Visual(), []
    runner = GpuRunner(pipeline, visual, block_frames=2, hop=80, emit=lambda b: emitted.append(b.copy()))
    runner.reset()
    x = np.arange(sum(chunks), dtype=np.float32)
    pos = 0
    for n in chunks:
        runner.push(x[pos:pos + n])
        pos += n
    assert [len(b) for b in pipeline.blocks] == [160, 160, 160]
    np.testing.assert_array_equal(np.concatenate(pipeline.blocks), x)
    out = np.concatenate(emitted)                                   # (n, 2) frame-major
    np.testing.assert_array_equal(out[:, 0], x)
    np.testing.assert_array_equal(out[:, 1], -x)
    assert runner.timing.blocks == 3 and len(runner.timing.block_ms) == 3
    assert runner.n_pending == 0


def test_gpu_runner_copies_the_feature_only_when_the_visual_net_ran():
    pipeline, visual = _StandInPipeline(), _Visual()
    runner = GpuRunner(pipeline, visual, block_frames=1, hop=10, emit=lambda b: None)
    runner.reset()
    runner.push(np.zeros(30, np.float32))          # three blocks, one feature (the first)
    assert len(pipeline.features) == 1
    visual.runs, visual.current = 1, np.ones(4, np.float32)
    runner.push(np.zeros(25, np.float32))          # two more blocks, one new feature
    assert len(pipeline.features) == 2 and np.all(pipeline.features[1] == 1)
    assert runner.n_pending == 0 and runner._fill == 5


def test_recent_samples_keeps_the_newest_contiguous():
    ring = RecentSamples(5)
    ring.push(np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(ring.last(), [0, 0, 0, 1, 2])
    ring.push(np.arange(3, 10, dtype=np.float32))  # longer than the ring: the newest 5 stay
    np.testing.assert_array_equal(ring.last(), [5, 6, 7, 8, 9])
    ring.reset()
    np.testing.assert_array_equal(ring.last(), np.zeros(5))
