"""feeders/transforms.py and feeders/modality.py against the upstream feeders' rules, typed as numbers."""
import math

import numpy as np
import pytest

from feeders import modality, transforms
from graph import ntu_rgb_d, ucla
from torchlight.errors import UserError


def ctvm(T=30, valid=20, seed=0):
    data = np.zeros((3, T, 25, 2), dtype=np.float32)
    data[:, :valid] = np.random.default_rng(seed).normal(size=(3, valid, 25, 2))
    return data


# ------------------------------------------------------------------ crop and resize

def test_valid_frame_count_counts_nonzero_frames():
    assert transforms.valid_frame_count(ctvm(T=30, valid=17)) == 17
    assert transforms.valid_frame_count(np.zeros((3, 8, 25, 2), np.float32)) == 0


def test_centre_crop_drops_int_of_half_the_rest_at_each_end():
    for valid in (10, 64, 101, 300):
        for p in (0.95, 0.9, 1.0):
            bias = int((1 - p) * valid / 2)
            assert transforms.crop_bounds(valid, [p]) == (bias, valid - 2 * bias)
    assert transforms.crop_bounds(100, 1) == (0, 100)  # upstream's default p_interval=1


def test_random_crop_lengths_stay_in_bounds():
    rng = np.random.default_rng(0)
    for valid in (5, 63, 64, 100, 300):
        for _ in range(200):
            start, length = transforms.crop_bounds(valid, [0.5, 1], rng)
            floor_lo = min(max(math.floor(valid * 0.5), 64), valid)
            assert floor_lo <= length <= valid
            assert 0 <= start and start + length <= valid
    # short samples are kept whole (lower bound 64 frames, capped at the valid count)
    assert transforms.crop_bounds(40, [0.5, 1], rng) == (0, 40)


def test_random_crop_length_follows_p():
    rng = np.random.default_rng(1)
    lengths = {transforms.crop_bounds(300, [0.5, 1], rng)[1] for _ in range(300)}
    assert min(lengths) >= 150 and max(lengths) <= 300 and len(lengths) > 50


def reference_linear_resize(x, window):
    """Independent 1-D bilinear resampling with align_corners=False along the last axis."""
    length = x.shape[-1]
    src = np.maximum((np.arange(window) + 0.5) * length / window - 0.5, 0)
    i0 = np.minimum(np.floor(src).astype(int), length - 1)
    i1 = np.minimum(i0 + 1, length - 1)
    w = src - i0
    return x[..., i0] * (1 - w) + x[..., i1] * w


@pytest.mark.parametrize('length,window', [(20, 64), (100, 64), (64, 64), (1, 64), (7, 3)])
def test_resize_time_is_bilinear_without_corner_alignment(length, window):
    data = np.random.default_rng(2).normal(size=(3, length, 25, 2)).astype(np.float32)
    out = transforms.resize_time(data, window)
    assert out.shape == (3, window, 25, 2) and out.dtype == np.float32
    expected = reference_linear_resize(data.transpose(0, 2, 3, 1).astype(np.float64), window)
    np.testing.assert_allclose(out, expected.transpose(0, 3, 1, 2), atol=1e-5)


def test_crop_resize_uses_only_valid_frames_and_handles_empty():
    data = ctvm(T=50, valid=30)
    out = transforms.crop_resize(data, 30, [1.0], 30)
    np.testing.assert_array_equal(out, data[:, :30])
    empty = transforms.crop_resize(np.zeros((3, 10, 25, 2), np.float32), 0, [0.95], 64)
    assert empty.shape == (3, 64, 25, 2) and not empty.any()


# ------------------------------------------------------------------ rotation

def test_rotation_matrix_is_rz_ry_rx_with_upstream_signs():
    a, b, c = 0.1, -0.2, 0.25
    rx = np.array([[1, 0, 0], [0, math.cos(a), math.sin(a)], [0, -math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, -math.sin(b)], [0, 1, 0], [math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), math.sin(c), 0], [-math.sin(c), math.cos(c), 0], [0, 0, 1]])
    np.testing.assert_allclose(transforms.rotation_matrix(a, 0, 0), rx, atol=1e-12)
    np.testing.assert_allclose(transforms.rotation_matrix(0, b, 0), ry, atol=1e-12)
    np.testing.assert_allclose(transforms.rotation_matrix(0, 0, c), rz, atol=1e-12)
    R = transforms.rotation_matrix(a, b, c)
    np.testing.assert_allclose(R, rz @ ry @ rx, atol=1e-12)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)


def test_rotate_left_multiplies_each_frame():
    data = ctvm(T=6, valid=6)
    R = transforms.rotation_matrix(0.2, 0.1, -0.3)
    out = transforms.rotate(data, R)
    for t in range(6):
        frame = data[:, t].reshape(3, -1)
        np.testing.assert_allclose(out[:, t].reshape(3, -1), R @ frame, atol=1e-5)


def test_random_rot_is_one_small_rotation_per_sequence():
    data = ctvm(T=10, valid=10)
    out = transforms.random_rot(data, np.random.default_rng(3))
    # the same R for every frame: solve it from all points at once, it must fit exactly
    pts, rot = data.reshape(3, -1), out.reshape(3, -1)
    R = np.linalg.lstsq(pts.T, rot.T, rcond=None)[0].T
    np.testing.assert_allclose(R @ pts, rot, atol=1e-4)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-5)
    # each angle within +-0.3 rad: the angle of the whole rotation is at most sqrt(3) * 0.3
    angle = math.acos(np.clip((np.trace(R) - 1) / 2, -1, 1))
    assert 0 < angle <= math.sqrt(3) * 0.3 + 1e-6
    again = transforms.random_rot(data, np.random.default_rng(3))
    np.testing.assert_array_equal(out, again)


def test_rotate_of_a_3d_layout_is_upstreams_bit_for_bit():
    R = transforms.rotation_matrix(0.2, 0.1, -0.3)
    for data in (ctvm(T=6, valid=6), ctvm(T=6, valid=6).astype(np.float64)):
        upstream = np.einsum('ij,jtvm->itvm', R.astype(np.float32), data).astype(np.float32)
        out = transforms.rotate(data, R)
        assert out.dtype == np.float32 and out.tobytes() == upstream.tobytes()
        rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
        R_drawn = transforms.rotation_matrix(*rng_b.uniform(-0.3, 0.3, size=3))
        drawn = transforms.random_rot(data, rng_a)
        assert drawn.tobytes() == transforms.rotate(data, R_drawn).tobytes()


def test_rotate_turns_the_coordinates_and_keeps_the_score():
    # channels (score, x, y, z); a quarter turn about z: (x, y, z) -> (y, -x, z)
    data = np.array([0.9, 1.0, 2.0, 3.0], np.float32).reshape(4, 1, 1, 1)
    out = transforms.rotate(data, transforms.rotation_matrix(0, 0, math.pi / 2), score_channel=0)
    np.testing.assert_allclose(out.ravel(), [0.9, 2.0, -1.0, 3.0], atol=1e-6)
    assert out[0].item() == np.float32(0.9)
    drawn = transforms.random_rot(data, np.random.default_rng(0), score_channel=0)
    assert drawn[0].item() == np.float32(0.9)


@pytest.mark.parametrize('channels,score_channel', [(2, None), (3, 2)])
def test_rotating_a_2d_layout_is_a_user_error(channels, score_channel):
    data = np.zeros((channels, 4, 5, 1), np.float32)
    with pytest.raises(UserError, match=r'^rotation needs 3 coordinates \(x, y, z\) per joint, the '
                                        r'layout has 2: turn random_rot off for a 2D layout$'):
        transforms.random_rot(data, np.random.default_rng(0), score_channel=score_channel)


# ------------------------------------------------------------------ bone and motion

@pytest.mark.parametrize('graph', [ntu_rgb_d, ucla])
def test_bone_subtracts_each_joints_parent(graph):
    V = graph.Graph.num_node
    data = np.random.default_rng(4).normal(size=(3, 5, V, 2)).astype(np.float32)
    out = transforms.bone(data, graph.Graph.bone_pairs)
    expected = np.zeros_like(data)
    for v1, v2 in graph.BONE_PAIRS_1BASED:
        expected[:, :, v1 - 1] = data[:, :, v1 - 1] - data[:, :, v2 - 1]
    np.testing.assert_array_equal(out, expected)
    assert len(graph.Graph.bone_pairs) == V  # every joint gets a bone (the root a zero one)


def test_bone_of_a_score_channel_is_the_mean_of_the_two_joints_scores():
    # channels (x, y, score) of 3 joints, one frame, one person; joint 0 is the root
    data = np.array([[1, 4, 9], [0, 1, 3], [0.2, 0.6, 1.0]], np.float32).reshape(3, 1, 3, 1)
    out = transforms.bone(data, [(0, 0), (1, 0), (2, 1)], score_channel=2)
    np.testing.assert_array_equal(out[:2].reshape(2, 3), [[0, 3, 5], [0, 1, 2]])
    np.testing.assert_allclose(out[2].ravel(), [0.2, 0.4, 0.8], rtol=1e-6)


def test_motion_of_a_score_channel_is_the_mean_of_the_two_frames_scores():
    # channels (x, y, score) of 1 joint over 3 frames
    data = np.array([[1, 3, 7], [5, 5, 2], [0.5, 0.7, 0.9]], np.float32).reshape(3, 3, 1, 1)
    out = transforms.motion(data, score_channel=2)
    np.testing.assert_array_equal(out[:2].reshape(2, 3), [[2, 4, 0], [0, -3, 0]])
    np.testing.assert_allclose(out[2].ravel(), [0.6, 0.8, 0.0], rtol=1e-6)


def test_motion_is_forward_difference_with_zero_last_frame():
    data = np.random.default_rng(5).normal(size=(3, 7, 25, 2)).astype(np.float32)
    out = transforms.motion(data)
    np.testing.assert_array_equal(out[:, :-1], data[:, 1:] - data[:, :-1])
    assert not out[:, -1].any()


# ------------------------------------------------------------------ NW-UCLA

def ucla_seq(T=30, seed=6):
    return np.random.default_rng(seed).normal(size=(T, 20, 3))


def test_ucla_centre_and_minmax():
    seq = transforms.ucla_centre(ucla_seq())
    np.testing.assert_array_equal(seq[0, 1], 0)
    norm = transforms.ucla_minmax(seq).reshape(-1, 3)
    np.testing.assert_allclose(norm.min(0), -1, atol=1e-12)
    np.testing.assert_allclose(norm.max(0), 1, atol=1e-12)


def test_ucla_view_matrix_is_ry_rx_s():
    np.testing.assert_array_equal(np.abs(transforms.ucla_view_matrix(0, 0, 1.0)), np.eye(3))
    agx, agy, s = 30, -45, 1.3
    x, y = math.radians(agx), math.radians(agy)
    rx = np.array([[1, 0, 0], [0, math.cos(x), math.sin(x)], [0, -math.sin(x), math.cos(x)]])
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    M = transforms.ucla_view_matrix(agx, agy, s)
    np.testing.assert_allclose(M, ry @ rx * s, atol=1e-12)
    seq = ucla_seq(T=4)
    np.testing.assert_allclose(transforms.ucla_view_transform(seq, agx, agy, s),
                               (seq.reshape(-1, 3) @ M).reshape(seq.shape), atol=1e-12)


def test_ucla_val_indices_truncate_linspace():
    for length in (1, 10, 52, 200):
        idx = transforms.ucla_val_indices(length, 52)
        assert len(idx) == 52 and idx[0] == 0 and idx[-1] == length - 1
        np.testing.assert_array_equal(idx, np.floor(np.linspace(0, length - 1, 52)).astype(int))


def test_ucla_train_indices_sorted_draws_without_replacement():
    for length in (3, 40, 150):
        idx = transforms.ucla_train_indices(length, 52, np.random.default_rng(7))
        assert len(idx) == 52 and np.all(np.diff(idx) >= 0)
        assert idx.min() >= 0 and idx.max() < length
        assert np.bincount(idx).max() <= 100  # each index is in the pool 100 times
    # a 1-frame sequence still yields 52 frames (its one frame, 52 of its 100 copies)
    np.testing.assert_array_equal(transforms.ucla_train_indices(1, 52, np.random.default_rng(0)),
                                  np.zeros(52, int))


def test_ucla_train_sampling_is_deterministic_under_a_seed():
    a = transforms.ucla_train_indices(80, 52, np.random.default_rng(11))
    b = transforms.ucla_train_indices(80, 52, np.random.default_rng(11))
    c = transforms.ucla_train_indices(80, 52, np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ------------------------------------------------------------------ modality table

def test_modality_names_and_upstream_aliases():
    assert modality.flags('joint') == (False, False)
    assert modality.flags('bone_motion') == (True, True)
    assert modality.resolve() == 'joint'
    assert modality.resolve(bone=True) == 'bone'
    assert modality.resolve(vel=True) == 'joint_motion'
    assert modality.resolve(bone=True, vel=True) == 'bone_motion'
    assert modality.resolve('joint_vel') == 'joint_motion'
    for name in ('joint', 'bone', 'joint_motion', 'bone_motion'):
        assert modality.resolve(data_path=name) == name
        assert modality.resolve(name, data_path=name) == name


def test_modality_conflicts_and_unknown_names_are_user_errors():
    with pytest.raises(UserError, match='conflicting'):
        modality.resolve('joint', vel=True)
    with pytest.raises(UserError, match='conflicting'):
        modality.resolve('bone', data_path='joint')
    with pytest.raises(UserError, match="unknown modality 'velocity'"):
        modality.resolve('velocity')
    with pytest.raises(UserError, match='NW-UCLA data_path'):
        modality.resolve(data_path='data/joint.npy')


def test_trim_trailing_zeros_keeps_everything_up_to_the_last_nonzero_frame():
    frames = np.zeros((10, 150), np.float32)
    frames[[0, 3, 6], 5] = 1  # frame 6 is the last non-zero one; frames 1-2, 4-5 stay
    np.testing.assert_array_equal(transforms.trim_trailing_zeros(frames), frames[:7])
    for empty in (np.zeros((4, 150), np.float32), np.zeros((0, 150), np.float32)):
        assert transforms.trim_trailing_zeros(empty).shape == (0, 150)
