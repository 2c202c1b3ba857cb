"""Video I/O with PyAV on real files: round trips keep frames, timing, audio and rotation."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from support.videos import decode_all, write_video

from obscura.errors import InvalidInput
from obscura.types import ImageArray
from obscura_client.video import MaskVideoWriter, VideoTranscoder, probe, read_mask_video


def audio_summary(path: Path) -> list[tuple[str, int, int]]:
    """(codec, packets, payload bytes) per audio stream."""
    out = []
    with av.open(str(path)) as c:
        for stream in c.streams.audio:
            packets = [p for p in c.demux(stream) if p.size]
            out.append((stream.codec_context.name, len(packets), sum(p.size for p in packets)))
            c.seek(0)
    return out


def psnr(a: ImageArray, b: ImageArray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def transcode(src: Path, dst: Path, process=lambda img: img) -> int:  # type: ignore[no-untyped-def]
    n = 0
    with VideoTranscoder(src, dst) as tx:
        for frame in tx.frames():
            assert frame.index == n
            tx.write(process(frame.image))
            n += 1
    return n


@pytest.mark.parametrize(
    ("name", "frames", "size", "fps", "audio"),
    [
        ("kpa_movie_face.avi", 68, (160, 120), Fraction(500000, 33333), True),
        ("opencv_vtest_first100.mp4", 100, (768, 576), Fraction(10), False),
    ],
)
def test_round_trip_keeps_frames_timing_and_audio(
    data_dir: Path,
    tmp_path: Path,
    name: str,
    frames: int,
    size: tuple[int, int],
    fps: Fraction,
    audio: bool,
) -> None:
    src, dst = data_dir / name, tmp_path / name
    info = probe(src)
    assert (info.width, info.height, info.fps, info.has_audio) == (*size, fps, audio)
    assert transcode(src, dst) == frames
    out = probe(dst)
    assert (out.width, out.height) == size
    assert out.fps == fps
    assert out.rotation == 0
    assert out.has_audio is audio
    before, after = decode_all(src), decode_all(dst)
    assert len(after) == frames
    for i in (0, frames // 2, frames - 1):
        assert psnr(before[i], after[i]) > 30
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        pts_in = [f.time for f in a.decode(video=0)]
        pts_out = [f.time for f in b.decode(video=0)]
    assert pts_out == pytest.approx(pts_in, abs=1e-3)
    assert audio_summary(dst) == audio_summary(src)  # packets copied, not re-encoded


def test_processed_pixels_reach_the_output(data_dir: Path, tmp_path: Path) -> None:
    def black_box(image: ImageArray) -> ImageArray:
        image = image.copy()
        image[100:300, 200:400] = 0
        return image

    dst = tmp_path / "boxed.mp4"
    transcode(data_dir / "opencv_vtest_first100.mp4", dst, black_box)
    frames = decode_all(dst)
    assert len(frames) == 100
    for frame in frames[::25]:
        assert frame[110:290, 210:390].mean() < 8
        assert frame[400:, :].mean() > 40


def make_rotated(path: Path, rotation: int, frames: int = 12) -> None:
    """A 64x48 (stored) video whose top-left stored corner is bright, with a display matrix."""
    image = np.full((48, 64, 3), 30, dtype=np.uint8)
    image[:16, :16] = 230
    write_video(path, [image], frames, rate=12, rotation=rotation)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_applied_for_processing_and_kept(tmp_path: Path, rotation: int) -> None:
    src, dst = tmp_path / "rot.mp4", tmp_path / "out.mp4"
    make_rotated(src, rotation)
    info = probe(src)
    assert info.rotation == rotation
    display = (48, 64) if rotation in (90, 270) else (64, 48)
    assert (info.width, info.height) == display
    seen: list[ImageArray] = []

    def keep(image: ImageArray) -> ImageArray:
        seen.append(image)
        return image

    assert transcode(src, dst, keep) == 12
    assert seen[0].shape == (display[1], display[0], 3)
    # The bright stored corner, turned counter-clockwise for display.
    expected = np.rot90(np.pad(np.ones((16, 16)), ((0, 32), (0, 48))), rotation // 90)
    bright = seen[0].mean(axis=2) > 128
    assert (bright == expected.astype(bool)).mean() > 0.97
    out = probe(dst)
    assert out.rotation == rotation
    assert (out.width, out.height) == display
    stored = decode_all(dst)
    assert len(stored) == 12
    assert stored[0][:16, :16].mean() > 128  # stored the same way round as the input


def test_mask_videos_are_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gray = [rng.choice(np.array([0, 255], dtype=np.uint8), size=(50, 70)) for _ in range(5)]
    rgb = [rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8) for _ in range(5)]
    for masks, channels in ((gray, 1), (rgb, 3)):
        path = tmp_path / f"m{channels}.mkv"
        with MaskVideoWriter(path, 70, 50, Fraction(15), channels) as writer:
            for m in masks:
                writer.write(m)
        back = list(read_mask_video(path))
        assert len(back) == 5
        for a, b in zip(masks, back, strict=True):
            assert b.shape == a.shape
            assert (a == b).all()
    with (
        MaskVideoWriter(tmp_path / "x.mkv", 70, 50, Fraction(15), 1) as writer,
        pytest.raises(ValueError, match="mask must be uint8"),
    ):
        writer.write(np.zeros((50, 71), dtype=np.uint8))


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video")
    with pytest.raises(InvalidInput, match=r"notes\.mp4: not a readable video"):
        probe(fake)
    with pytest.raises(InvalidInput, match="no such file"):
        VideoTranscoder(tmp_path / "missing.mp4", tmp_path / "out.mp4")


def test_partial_output_is_removed_on_error(data_dir: Path, tmp_path: Path) -> None:
    dst = tmp_path / "partial.mp4"

    calls: list[int] = []

    def stop_at_ten(image: ImageArray) -> ImageArray:
        calls.append(1)
        if len(calls) > 10:
            raise RuntimeError("stop")
        return image

    with pytest.raises(RuntimeError, match="stop"):
        transcode(data_dir / "opencv_vtest_first100.mp4", dst, stop_at_ten)
    assert not dst.exists()


def test_a_frame_of_the_wrong_shape_is_refused(data_dir: Path, tmp_path: Path) -> None:
    with VideoTranscoder(data_dir / "kpa_movie_face.avi", tmp_path / "x.avi") as tx:
        frame = next(iter(tx.frames()))
        with pytest.raises(ValueError, match="processed frame must be"):
            tx.write(frame.image[:10])
        tx.write(frame.image)


def test_bt709_colours_survive(tmp_path: Path) -> None:
    """HD video is BT.709: the output is converted and tagged the same way, so saturated
    colours decode as they did in the input (a BT.601 re-encode shifts them visibly)."""
    src, dst = tmp_path / "hd.mp4", tmp_path / "out.mp4"
    image = np.zeros((240, 320, 3), dtype=np.uint8)
    for i, colour in enumerate([(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 200, 255)]):
        image[:, i * 80 : (i + 1) * 80] = colour
    with av.open(str(src), "w") as c:
        stream = c.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        cc = stream.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(
                format="yuv420p", dst_colorspace=1, dst_color_range=1
            )
            frame.colorspace, frame.color_range, frame.pts = 1, 1, i
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    transcode(src, dst)
    with av.open(str(dst)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_range) == (1, 1)
    before, after = decode_all(src)[2], decode_all(dst)[2]
    for i in range(4):
        patch = (slice(100, 140), slice(i * 80 + 20, i * 80 + 60))
        diff = np.abs(before[patch].astype(int) - after[patch].astype(int)).mean()
        assert diff < 3, (i, before[patch].mean(axis=(0, 1)), after[patch].mean(axis=(0, 1)))
