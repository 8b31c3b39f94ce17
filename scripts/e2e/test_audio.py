"""Speech to text through the real binaries: the official `openai` package's
`audio.transcriptions.create` to the client, sealed through the proxy to the worker and the fake
upstream (whose simulated transcript is made from the WAV header), in every response format;
the charge is the audio's duration at 10 units a second, and bad forms are refused by name."""

import io
import json
import urllib.error
import urllib.request
import wave

import openai
import pytest

from conftest import MODEL, WHISPER_DIR
from test_sealed import wait_for_sealing_key


def wav(seconds, rate=16000, channels=1):
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * channels * int(seconds * rate))
    return out.getvalue()


def wav_claiming_blocks_of(frames, seconds=2.0):
    """A WAV whose header claims blocks of `frames` frames: measured by block it would be
    billed a fraction of the audio a decoder plays (the attack the measure refuses)."""
    data = bytearray(wav(seconds))
    data[32:34] = (2 * frames).to_bytes(2, "little")
    return bytes(data)


def api(network):
    return openai.OpenAI(base_url=network.base_url, api_key="unused", max_retries=0, timeout=30)


def transcribe_raw(network, seconds, response_format="json", **kwargs):
    return api(network).audio.transcriptions.with_raw_response.create(
        file=("speech.wav", wav(seconds, **kwargs), "audio/wav"),
        model=MODEL,
        response_format=response_format,
    )


def post_form(network, parts):
    """A hand-written form: `parts` are (name, filename or None, bytes)."""
    boundary = "e2e-boundary-7"
    body = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        network.base_url + "/audio/transcriptions", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


TRANSCRIPT = "simulated transcript of 1.500 seconds of 1-channel 16000 Hz audio"


def test_every_response_format_through_the_sdk(network):
    client = api(network)
    audio = ("speech.wav", wav(1.5), "audio/wav")
    result = client.audio.transcriptions.create(file=audio, model=MODEL)
    assert result.text == TRANSCRIPT
    verbose = client.audio.transcriptions.create(
        file=audio, model=MODEL, response_format="verbose_json", language="en", temperature=0.2
    )
    assert verbose.text == TRANSCRIPT and verbose.duration == 1.5 and verbose.language == "en"
    assert verbose.segments[0].end == 1.5
    text = client.audio.transcriptions.create(file=audio, model=MODEL, response_format="text")
    assert text.strip() == TRANSCRIPT
    srt = client.audio.transcriptions.create(file=audio, model=MODEL, response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,500\n" + TRANSCRIPT), srt
    vtt = client.audio.transcriptions.create(file=audio, model=MODEL, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n" + TRANSCRIPT), vtt


def test_sealed_and_charged_by_duration(network):
    wait_for_sealing_key(network)
    before = network.proxy_stats()
    raw = transcribe_raw(network, 1.5)
    assert raw.headers["x-cocoon-sealed"] == "true", dict(raw.headers)
    usage = json.loads(raw.content)["usage"]
    # 1.5 s at 10 units a second, as prompt tokens; a transcript is not billed per token.
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (15, 0), usage
    assert usage["total_cost"] > 0 and usage["completion_total_cost"] == 0
    # Twice the audio, twice the charge; stereo or another rate changes nothing but duration.
    longer = json.loads(transcribe_raw(network, 3.0, rate=8000, channels=2).content)["usage"]
    assert longer["prompt_tokens"] == 30
    assert longer["total_cost"] == 2 * usage["total_cost"]
    after = network.proxy_stats()
    assert after["sealed_requests"] - before["sealed_requests"] == 2, after
    # A non-JSON format is charged the same.
    text = transcribe_raw(network, 1.5, response_format="text")
    assert text.headers["x-cocoon-sealed"] == "true"
    assert text.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "parts, status, param",
    [
        ([("model", None, MODEL.encode())], 400, "file"),
        ([("file", "a.wav", wav(0.1))], 400, "model"),
        ([("file", "a.wav", wav(0.1)), ("model", None, MODEL.encode()),
          ("response_format", None, b"mp3")], 400, "response_format"),
        ([("file", "a.wav", wav(0.1)), ("model", None, MODEL.encode()),
          ("temperature", None, b"7")], 400, "temperature"),
        ([("file", "a.mp3", b"ID3\x04not a wav"), ("model", None, MODEL.encode())], 400, "file"),
        ([("file", "a.wav", wav_claiming_blocks_of(100)), ("model", None, MODEL.encode())], 400, "file"),
        ([("file", "a.wav", wav(0.1)), ("model", None, MODEL.encode()),
          ("stream", None, b"true")], 400, "stream"),
    ],
)
def test_bad_forms_are_refused_naming_the_field(network, parts, status, param):
    code, body = post_form(network, parts)
    assert code == status, body
    assert body["error"]["param"] == param, body
    assert body["error"]["type"] == "invalid_request_error", body


def test_unknown_model_is_404(network):
    code, body = post_form(network, [("file", "a.wav", wav(0.1)), ("model", None, b"no-such-model")])
    assert code == 404 and body["error"]["code"] == "model_not_found", body


def test_audio_above_the_limit_and_a_client_declaring_too_little(make_network, tmp_path):
    config = tmp_path / "client.toml"
    # 50 KB of audio at most, and half the units a second the worker bills.
    config.write_text("max_audio_bytes = 50000\naudio_tokens_per_second = 5\n")
    net = make_network(client_args=["--config", str(config)])
    code, body = post_form(net, [("file", "big.wav", wav(2.0)), ("model", None, MODEL.encode())])
    assert code == 413 and body["error"]["param"] == "file", body
    assert "50000" in body["error"]["message"]
    # 1 s declared as 5 units; the worker measures 10 and refuses rather than be underpaid.
    with pytest.raises(openai.BadRequestError) as refused:
        api(net).audio.transcriptions.create(file=("a.wav", wav(1.0), "audio/wav"), model=MODEL)
    assert "more than the 5 units the request declared" in str(refused.value), refused.value


def test_the_builtin_engine_refuses_naming_its_model(builtin_network):
    code, body = post_form(
        builtin_network, [("file", "a.wav", wav(0.5)), ("model", None, MODEL.encode())]
    )
    assert code == 400, body
    assert "does not transcribe audio" in body["error"]["message"], body
    assert MODEL in body["error"]["message"] or "SmolLM2" in body["error"]["message"], body


def test_the_builtin_speech_model_transcribes_a_recorded_sentence(speech_network):
    """Whisper tiny.en in the worker's built-in engine, on a real recording (11 s), sealed and
    charged by the recording's duration."""
    recording = (WHISPER_DIR / "jfk.wav").read_bytes()
    with wave.open(io.BytesIO(recording)) as w:
        units = -(-w.getnframes() * 10 // w.getframerate())
    wait_for_sealing_key(speech_network)
    client = openai.OpenAI(base_url=speech_network.base_url, api_key="unused", max_retries=0, timeout=300)
    raw = client.audio.transcriptions.with_raw_response.create(
        file=("jfk.wav", recording, "audio/wav"), model=MODEL
    )
    assert raw.headers["x-cocoon-sealed"] == "true", dict(raw.headers)
    body = json.loads(raw.content)
    words = "".join(c for c in body["text"].lower() if c.isalpha() or c == " ")
    assert "ask not what your country can do for you" in words, body["text"]
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (units, 0), body
    srt = client.audio.transcriptions.create(
        file=("jfk.wav", recording, "audio/wav"), model=MODEL, response_format="srt"
    )
    assert srt.startswith("1\n00:00:00,000 --> "), srt
    assert "country" in srt
    # What the model cannot honour is refused by field, and chat is pointed elsewhere.
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(
            file=("jfk.wav", recording, "audio/wav"), model=MODEL, prompt="Kennedy speaking"
        )
    assert "`prompt`" in str(refused.value)
    with pytest.raises(openai.BadRequestError) as chat:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert "speech model" in str(chat.value)

