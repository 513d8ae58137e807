"""The input streams a depth video keeps besides its picture: audio tracks and subtitles.

Each kept stream is copied packet for packet (byte-identical, with its timestamps, language,
title and flags) when the output container can carry its codec. Otherwise audio is re-encoded
to AAC and text subtitles to the container's text format, with one warning each; a subtitle
that cannot be turned into text (a bitmap one in mp4) is dropped with a warning.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import av

log = logging.getLogger(__name__)

#: The text subtitle codec each muxer gets when it cannot carry the input's.
TEXT_SUBTITLES = {"mp4": "mov_text", "mov": "mov_text", "matroska": "subrip"}
#: Stream tags carried over (mp4 reads a track's title back as ``name``).
_TAGS = {"language": ("language",), "title": ("title", "name")}
#: A mov_text sample with no text (a 16-bit length of 0).
_EMPTY_MOV_TEXT = b"\0\0"
#: Named layouts for audio that only says how many channels it has.
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def kept_streams(container: av.container.InputContainer, audio: str = "all") -> list[av.stream.Stream]:
    """The audio streams ``audio`` asks for (all, first or none: ``[convert] audio``) and every
    subtitle stream, in file order."""
    sounds = list(container.streams.audio)
    chosen = {"all": sounds, "first": sounds[:1], "none": []}[audio]
    return sorted(chosen + list(container.streams.subtitles), key=lambda stream: stream.index)


def can_carry(stream: av.stream.Stream, fmt: str = "mp4") -> bool:
    """Whether the ``fmt`` muxer accepts ``stream``'s codec as a stream copy.

    A trial file gets one (blank) packet and its trailer: some muxers take a codec in the header
    and fail only at the end (16-bit PCM in mp4, Opus in mov), which would leave a broken file.
    """
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as probe_out:
            copy = probe_out.add_stream_from_template(stream)
            probe_out.start_encoding()
            packet = av.Packet(bytes(64))
            packet.stream, packet.time_base = copy, stream.time_base
            packet.pts = packet.dts = 0
            packet.duration = 1
            probe_out.mux(packet)
        return True
    except (av.FFmpegError, ValueError):
        return False


def _tags(template: av.stream.Stream) -> dict[str, str]:
    found = {}
    for tag, keys in _TAGS.items():
        value = next((template.metadata[key] for key in keys if template.metadata.get(key)), None)
        if value is not None:
            found[tag] = value
    return found


def _decoder(template: av.stream.Stream) -> av.CodecContext:
    ctx = template.codec_context
    decoder = av.CodecContext.create(ctx.name, "r")
    decoder.extradata = ctx.extradata
    return decoder


class _Copy:
    """A stream copied packet for packet."""

    def __init__(self, output: av.container.OutputContainer, template: av.stream.Stream) -> None:
        self.output = output
        self.stream = output.add_stream_from_template(template)
        # The mp4 muxer writes its own empty text samples between subtitles: copied ones would double them.
        self.skip_empty_text = template.codec_context.name == "mov_text"

    def mux(self, packet: av.Packet) -> None:
        if self.skip_empty_text and packet.size == 2 and bytes(packet) == _EMPTY_MOV_TEXT:
            return
        packet.stream = self.stream
        self.output.mux(packet)

    def flush(self) -> None:
        pass


class _ToAac:
    """An audio stream the container cannot carry, re-encoded to AAC."""

    def __init__(self, output: av.container.OutputContainer, template: av.AudioStream) -> None:
        ctx = template.codec_context
        self.output = output
        self.decoder = _decoder(template)
        self.decoder.sample_rate, self.decoder.layout, self.decoder.format = ctx.sample_rate, ctx.layout, ctx.format
        layout = ctx.layout
        if layout.name.endswith("channels"):  # no channel order: AAC wants a named layout
            layout = _DEFAULT_LAYOUTS.get(layout.nb_channels, "stereo")
        self.stream = output.add_stream("aac", rate=ctx.sample_rate)
        self.stream.layout = layout
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=ctx.sample_rate)

    def _encode(self, frames: list) -> None:
        for frame in frames:
            for resampled in self.resampler.resample(frame):
                resampled.pts = None
                self.output.mux(self.stream.encode(resampled))

    def mux(self, packet: av.Packet) -> None:
        self._encode(self.decoder.decode(packet))

    def flush(self) -> None:
        self._encode([*self.decoder.decode(None), None])
        self.output.mux(self.stream.encode(None))


class _ToText:
    """A text subtitle stream the container cannot carry, re-encoded to ``codec``."""

    def __init__(self, output: av.container.OutputContainer, template: av.SubtitleStream, codec: str) -> None:
        self.output = output
        self.decoder = _decoder(template)
        self.decoder.open()
        self.stream = output.add_stream(codec)
        self.stream.time_base = template.time_base
        self.stream.codec_context.time_base = template.time_base
        self.stream.codec_context.subtitle_header = self.decoder.subtitle_header

    def mux(self, packet: av.Packet) -> None:
        subtitles = self.decoder.decode2(packet)
        if subtitles is None:
            return
        encoded = self.stream.codec_context.encode_subtitle(subtitles)
        encoded.stream, encoded.time_base = self.stream, packet.time_base
        encoded.pts, encoded.dts, encoded.duration = packet.pts, packet.dts, packet.duration
        self.output.mux(encoded)

    def flush(self) -> None:
        pass


class KeptStreams:
    """The output streams for ``templates`` (input streams) in ``output`` (muxer ``fmt``).

    Add them before the output's header is written; then :meth:`mux` each packet of a template
    stream and :meth:`flush` at the end. Packets of streams that were dropped are ignored.
    """

    def __init__(self, output: av.container.OutputContainer, templates: Sequence[av.stream.Stream], fmt: str) -> None:
        self._routes: dict[int, _Copy | _ToAac | _ToText] = {}
        for template in templates:
            route = self._route(output, template, fmt)
            if route is None:
                continue
            route.stream.metadata.update(_tags(template))
            route.stream.disposition = template.disposition
            self._routes[template.index] = route

    @staticmethod
    def _route(output: av.container.OutputContainer, template: av.stream.Stream, fmt: str):
        name = template.codec_context.codec.canonical_name
        if can_carry(template, fmt):
            return _Copy(output, template)
        if template.type == "audio":
            log.warning("%s cannot carry %s audio (stream %d); re-encoding it to AAC", fmt, name, template.index)
            return _ToAac(output, template)
        text = TEXT_SUBTITLES.get(fmt)
        if template.type == "subtitle" and text and template.codec_context.codec.text_sub:
            log.warning("%s cannot carry %s subtitles (stream %d); converting them to %s", fmt, name,
                        template.index, text)
            return _ToText(output, template, text)
        log.warning("%s cannot carry %s subtitles (stream %d), which are not text; dropping them", fmt, name,
                    template.index)
        return None

    def mux(self, packet: av.Packet) -> None:
        """Copy (or re-encode) one packet of a kept input stream."""
        route = self._routes.get(packet.stream_index)  # (its stream may be closed by now)
        if route is not None:
            route.mux(packet)

    def flush(self) -> None:
        """Flush the re-encoders."""
        for route in self._routes.values():
            route.flush()
