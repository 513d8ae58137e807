"""Every audio and subtitle stream of the input is kept (``--audio all|first|none``): copied
byte for byte with its language and title, or re-encoded/dropped with one warning each, in a
single conversion, a batch and the Ray transfer mode. Real files, read back with PyAV."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import pytest
from support.cli_helpers import assert_one_line_error, run_cli
from support.clips import SUBTITLES, corner_pattern, decoded_pts, make_film, make_oriented_clip

from livedepth.core.errors import LivedepthError
from livedepth.io.passthrough import can_carry
from livedepth.settings import load_settings

#: (codec, language, title) of the films' tracks: two audio codecs per container, and subtitles
#: each container carries as they are.
MP4_AUDIO = [("aac", "eng", "Main"), ("libmp3lame", "fra", "Commentaire")]
MKV_AUDIO = [("aac", "eng", "Main"), ("libopus", "fra", "Commentaire")]
MP4_SUBTITLES = [("mov_text", "eng", "English")]
MKV_SUBTITLES = [("subrip", "eng", "English"), ("ass", "fra", "Français")]


def _streams(path: Path) -> list[dict]:
    """Each non-video stream: type, codec, language, title, default flag, and its packets' bytes and times."""
    with av.open(str(path)) as container:
        found = [{"type": s.type, "codec": s.codec_context.codec.canonical_name, "language": s.metadata.get("language"),
                  "title": s.metadata.get("title") or s.metadata.get("name"),
                  "default": bool(s.disposition & av.stream.Disposition.default), "packets": [], "times": [],
                  "index": s.index} for s in container.streams if s.type != "video"]
        by_index = {s["index"]: s for s in found}
        for packet in container.demux():
            if packet.size and packet.stream_index in by_index:
                by_index[packet.stream_index]["packets"].append(bytes(packet))
                by_index[packet.stream_index]["times"].append(Fraction(packet.pts) * packet.time_base)
    return found


def _texts(stream: dict) -> list[tuple[Fraction, str]]:
    """(time, text) of a subtitle stream's non-empty cues (mov_text: a 16-bit length, then the text)."""
    cues = []
    for data, time in zip(stream["packets"], stream["times"], strict=True):
        text = data[2: 2 + int.from_bytes(data[:2], "big")] if stream["codec"] == "mov_text" else data
        if text:
            words = text.decode().split(",", 8)[-1] if stream["codec"] == "ass" else text.decode()  # ASS: 9 fields
            cues.append((time, words))
    return cues


def _same_tracks(got: list[dict], want: list[dict], shift: Fraction = Fraction(0), flags: bool = True) -> None:
    """Same tracks in the same order (with the same default flags when ``flags``), byte-identical
    packets at the same times, plus ``shift`` (Matroska: to 1 ms)."""
    keys = ("type", "codec", "language", "title") + (("default",) if flags else ())
    assert [[s[k] for k in keys] for s in got] == [[s[k] for k in keys] for s in want]
    for out, src in zip(got, want, strict=True):
        assert out["packets"] == src["packets"] and len(src["packets"]) >= 2
        assert max(abs(a - b - shift) for a, b in zip(out["times"], src["times"], strict=True)) <= Fraction(1, 1000)


def _shift(out: Path, src: Path) -> Fraction:
    """How much later the output's video starts: Matroska moves every stream so that AAC's
    priming (a negative start, which an mp4 keeps in its edit list) starts at 0."""
    return decoded_pts(out)[0][0] - decoded_pts(src)[0][0]


@pytest.fixture(scope="module")
def films(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("films")
    films = {"mp4": folder / "film.mp4", "mkv": folder / "film.mkv", "odd": folder / "odd.mkv",
             "sound": folder / "sound.mkv"}
    make_film(films["mp4"], MP4_AUDIO, MP4_SUBTITLES)
    make_film(films["mkv"], MKV_AUDIO, MKV_SUBTITLES)
    make_film(films["odd"], [("aac", "eng", "Main"), ("pcm_s16le", "fra", "PCM")],
              [("dvb_subtitle", "eng", "Bitmap"), ("subrip", "fra", "Texte")])
    make_film(films["sound"], [*MKV_AUDIO, ("libmp3lame", "deu", "Kommentar")], [], frames=50)
    return films


def _convert(src: Path, out: Path, weights: Path, *extra: str):
    proc = run_cli("convert", str(src), str(out), "--threads", "1", "--weights", str(weights), *extra)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_every_track_is_copied_byte_for_byte_with_its_tags(films, tmp_path, weights_pt, kind):
    src, out = films[kind], tmp_path / f"depth.{kind}"
    proc = _convert(src, out, weights_pt)
    assert "cannot carry" not in proc.stderr
    assert ("written unfragmented because it carries subtitles" in proc.stderr) == (kind == "mp4")
    source = _streams(src)
    assert [s["type"] for s in source] == ["audio", "audio"] + ["subtitle"] * (1 if kind == "mp4" else 2)
    assert {s["language"] for s in source} == {"eng", "fra"} and source[0]["codec"] != source[1]["codec"]
    _same_tracks(_streams(out), source)
    assert decoded_pts(out) == decoded_pts(src)  # the video keeps its timing


def test_three_audio_tracks_into_a_fragmented_mp4(films, tmp_path, weights_pt):
    """Without subtitles the mp4 stays fragmented (a killed run leaves a playable file)."""
    out = tmp_path / "depth.mp4"
    proc = _convert(films["sound"], out, weights_pt)
    assert "cannot carry" not in proc.stderr and "unfragmented" not in proc.stderr
    assert out.read_bytes().count(b"moof") >= 2
    _same_tracks(_streams(out), _streams(films["sound"]), flags=False)
    assert decoded_pts(out) == decoded_pts(films["sound"])


def test_across_containers_text_subtitles_are_converted_once_and_audio_is_copied(films, tmp_path, weights_pt):
    proc = _convert(films["mp4"], tmp_path / "depth.mkv", weights_pt)
    assert proc.stderr.count("cannot carry") == 1
    assert "matroska cannot carry mov_text subtitles (stream 3); converting them to subrip" in proc.stderr
    got, want = _streams(tmp_path / "depth.mkv"), _streams(films["mp4"])
    shift = _shift(tmp_path / "depth.mkv", films["mp4"])
    assert 0 <= shift <= Fraction(1, 40)
    _same_tracks(got[:2], want[:2], shift, flags=False)
    assert (got[2]["codec"], got[2]["language"], got[2]["title"]) == ("subrip", "eng", "English")
    cues = [(Fraction(start, 1000), text) for start, _, text in SUBTITLES]
    assert _texts(want[2]) == cues
    assert [(time - shift, text) for time, text in _texts(got[2])] == cues

    proc = _convert(films["mkv"], tmp_path / "depth.mp4", weights_pt)
    assert proc.stderr.count("cannot carry") == 2
    assert "mp4 cannot carry subrip subtitles (stream 3); converting them to mov_text" in proc.stderr
    assert "mp4 cannot carry ass subtitles (stream 4); converting them to mov_text" in proc.stderr
    got, want = _streams(tmp_path / "depth.mp4"), _streams(films["mkv"])
    _same_tracks(got[:2], want[:2], flags=False)  # AAC and Opus both fit in mp4 (which sets its own default flags)
    assert [(s["codec"], s["language"], s["title"]) for s in got[2:]] == \
        [("mov_text", "eng", "English"), ("mov_text", "fra", "Français")]
    assert _texts(got[2]) == _texts(got[3]) == _texts(want[2]) == cues


def test_what_mp4_cannot_carry_is_reencoded_or_dropped_with_one_warning_each(films, tmp_path, weights_pt):
    proc = _convert(films["odd"], tmp_path / "depth.mp4", weights_pt)
    assert proc.stderr.count("cannot carry") == 3
    assert "mp4 cannot carry pcm_s16le audio (stream 2); re-encoding it to AAC" in proc.stderr
    assert "mp4 cannot carry dvb_subtitle subtitles (stream 3), which are not text; dropping them" in proc.stderr
    assert "mp4 cannot carry subrip subtitles (stream 4); converting them to mov_text" in proc.stderr
    got, want = _streams(tmp_path / "depth.mp4"), _streams(films["odd"])
    assert [(s["codec"], s["language"], s["title"]) for s in got] == \
        [("aac", "eng", "Main"), ("aac", "fra", "PCM"), ("mov_text", "fra", "Texte")]
    assert got[0]["packets"] == want[0]["packets"]
    assert len(got[1]["packets"]) >= 40  # one second of re-encoded audio


def test_can_carry_tries_a_whole_file(films):
    """mp4 takes 16-bit PCM and mov takes Opus in the header, then fail writing the file."""
    with av.open(str(films["odd"])) as odd, av.open(str(films["mkv"])) as mkv:
        pcm, opus = odd.streams.audio[1], mkv.streams.audio[1]
        assert (pcm.codec_context.name, opus.codec_context.name) == ("pcm_s16le", "opus")
        assert [can_carry(pcm, fmt) for fmt in ("mp4", "mov", "matroska")] == [False, True, True]
        assert [can_carry(opus, fmt) for fmt in ("mp4", "mov", "matroska")] == [True, False, True]


def test_audio_first_none_and_the_old_boolean_setting(films, tmp_path, weights_pt):
    src = films["mkv"]
    _convert(src, tmp_path / "first.mp4", weights_pt, "--audio", "first")
    first = _streams(tmp_path / "first.mp4")
    assert [(s["type"], s["language"]) for s in first] == [("audio", "eng"), ("subtitle", "eng"), ("subtitle", "fra")]
    assert first[0]["packets"] == _streams(src)[0]["packets"]

    _convert(src, tmp_path / "none.mkv", weights_pt, "--no-audio")
    config = tmp_path / "old.toml"
    config.write_text("[convert]\naudio = false\n")  # from when audio was a bool
    _convert(src, tmp_path / "old.mkv", weights_pt, "--config", str(config))
    for name in ("none.mkv", "old.mkv"):
        assert [s["type"] for s in _streams(tmp_path / name)] == ["subtitle", "subtitle"]
        assert decoded_pts(tmp_path / name) == decoded_pts(src)


def test_audio_setting_values(tmp_path):
    assert load_settings().convert.audio == load_settings("convert").convert.audio == "all"
    for value, meaning in (("true", "all"), ("false", "none"), ('"first"', "first")):
        config = tmp_path / "c.toml"
        config.write_text(f"[convert]\naudio = {value}\n")
        assert load_settings(config).convert.audio == meaning
    assert load_settings(flags={("convert", "audio"): "none"}).convert.audio == "none"
    config.write_text('[convert]\naudio = "some"\n')
    with pytest.raises(LivedepthError, match=r'\[convert\] audio = "some": must be one of all, first, none'):
        load_settings(config)


def test_a_bad_audio_flag_is_one_line(films, tmp_path, weights_pt):
    proc = run_cli("convert", str(films["mkv"]), str(tmp_path / "x.mp4"), "--audio", "some",
                   "--weights", str(weights_pt))
    assert_one_line_error(proc, "--audio some: must be one of all, first, none")


def test_batch_and_the_ray_transfer_mode_keep_every_track_and_turn_clips_upright(films, tmp_path, weights_pt):
    """The batch path and the Ray actor's transfer mode (bytes in, files out, as the driver ships
    them) convert through the same code, so they keep the same tracks and orientation."""
    from livedepth.app.batch import Job, raw_output
    from livedepth.app.ray_pool import ConvertActor

    inputs = tmp_path / "in"
    inputs.mkdir()
    film = inputs / "film.mkv"
    film.write_bytes(films["mkv"].read_bytes())
    make_oriented_clip(inputs / "phone.mp4", [corner_pattern(270, 480, i) for i in range(2)], 90)
    proc = run_cli("convert", str(inputs), str(tmp_path / "batch"), "--jobs", "1", "--threads", "1",
                   "--weights", str(weights_pt))
    assert proc.returncode == 0, proc.stderr

    settings = load_settings("convert", {("model", "threads"): 1}, {("render", "normalize"): "stable"})
    weights = weights_pt.read_bytes()
    actor = ConvertActor(settings, weights, hashlib.sha256(weights).hexdigest())
    shipped = tmp_path / "ray"
    for source in (film, inputs / "phone.mp4"):
        output = shipped / source.with_suffix(".mp4").name
        result, files = actor.convert(Job(source, output, raw_output(output, None)), source.read_bytes())
        assert result.status == "done", result.reason
        for name, data in files.items():
            (shipped / name).parent.mkdir(parents=True, exist_ok=True)
            (shipped / name).write_bytes(data)

    want = _streams(films["mkv"])
    for folder in (tmp_path / "batch", shipped):
        got = _streams(folder / "film.mp4")
        _same_tracks(got[:2], want[:2], flags=False)
        assert [s["codec"] for s in got[2:]] == ["mov_text", "mov_text"]
        with av.open(str(folder / "phone.mp4")) as container:
            stream = container.streams.video[0]
            assert (stream.width, stream.height) == (270, 480)
