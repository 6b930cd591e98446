"""Festival with festvox voices built from recorded speakers, through one long-running process.

One ``festival --pipe`` process per Python process, fed one Scheme form per utterance and
started on first use. Its start-up (~0.2-0.5 s) is paid once; voices are reselected per call,
which is cheap after the first load and resets every knob. Errors are caught in Scheme
(unwind-protect); a process found dead (killed; it segfaults on a text without words, which
speak() refuses first) is started again once for that call. ``close_session`` ends it (at exit,
and where a worker pool finishes).

The diphone voices' audio ends where the last phone ends: the utterance's final pause is cut
off. Festival 2.5's UniSyn fills the second half of that pause from memory past the end of the
last diphone (its pitchmark mapping, ``make_segment_single_mapping``, reads beyond the last
frame), so those samples depend on what the process said before: mostly a near-silent repeat,
sometimes zeros or a full-scale click. A word said after another history came out different (so
did a corpus, with the speakers dealt to the workers in another order). What is cut is
near-silence: 32 to 67 dB under the word's peak (kal_diphone, ked_diphone, 46 words measured).
"""

from __future__ import annotations

import atexit
import os
import re
import select
import shutil
import subprocess
import threading
import uuid
from functools import lru_cache
from typing import ClassVar

import numpy as np

from components.data.speech import SpeechEngine, missing_exe, parse_wav_stream
from components.errors import EdgelearnError

_SCHEME = r"""
(define (el_rate r) (Parameter.set 'Duration_Stretch
  (/ (if (Parameter.get 'Duration_Stretch) (Parameter.get 'Duration_Stretch) 1.0) r)))
(define (el_hts_rate r) (set! hts_engine_params (cons (list "-r" r) hts_engine_params)))
(define (el_pitch f) (set! int_lr_params (mapcar (lambda (p)
  (if (member (car p) '(target_f0_mean target_f0_std)) (list (car p) (* f (cadr p))) p))
  int_lr_params)))
(define (el_last_segment u) (let ((s (utt.relation.last u 'Segment)))
  (format t "%s %f\n" (item.name s) (item.feat s "segment_start"))))
"""
FINAL_PAUSE = "pau"  # the silence phone of the diphone voices' phone set (radio)


class _FestivalDied(ValueError):
    """The festival process ended while it was asked something."""


class _FestivalSession:
    """A running ``festival --pipe``: ``run`` sends one Scheme form, returns what it printed."""

    def __init__(self, exe: str, timeout_s: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [exe, "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.token, self.timeout_s, self.buf = uuid.uuid4().hex, timeout_s, b""
        self.run(_SCHEME)

    def run(self, form: str) -> bytes:
        """Evaluate ``form``; its stdout bytes, or ``ValueError`` with what Festival said."""
        ok, err = f"@@{self.token}:ok@@\n".encode(), f"@@{self.token}:err@@\n".encode()
        msg = (f'(unwind-protect (begin {form} (format t "{ok.decode()[:-1]}\\n")) '
               f'(format t "{err.decode()[:-1]}\\n"))(fflush nil)\n')  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(msg.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # reported below from its exit status
        fd = self.proc.stdout.fileno()
        while ok not in self.buf and err not in self.buf:
            if not select.select([fd], [], [], self.timeout_s)[0]:
                self.close()
                raise ValueError(f"festival did not answer in {self.timeout_s:.0f} s")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                status = self.proc.wait()
                raise _FestivalDied(f"festival exited (status {status}): {self.buf[-300:]!r}")
            self.buf += chunk
        marker = ok if ok in self.buf else err
        out, self.buf = self.buf.split(marker, 1)
        if marker == err:
            raise ValueError(out.decode(errors="replace").strip() or "Scheme error")
        return out

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive():
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # festival --pipe exits at end of input
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_SESSIONS: dict[int, _FestivalSession] = {}  # by process id: a forked child starts its own
_LOCK = threading.RLock()  # one utterance at a time through the process (threads may ask)


def _festival_session() -> _FestivalSession:
    session = _SESSIONS.get(os.getpid())
    if session is None or not session.alive():
        session = _SESSIONS[os.getpid()] = _FestivalSession(shutil.which("festival") or "festival")
    return session


def session_pid() -> int | None:
    """The process id of this process's festival, None when none is running."""
    session = _SESSIONS.get(os.getpid())
    return session.proc.pid if session is not None and session.alive() else None


@atexit.register
def close_session() -> None:
    """End this process's festival, if it started one (the next call starts a fresh one)."""
    with _LOCK:
        if (session := _SESSIONS.pop(os.getpid(), None)) is not None:
            session.close()


class FestivalEngine(SpeechEngine):
    """Festival 2.5 with festvox voices: kal_diphone (Kevin Lenzo) and ked_diphone (US males,
    diphones), cmu_us_slt_arctic_hts (US female, HTS trained on CMU ARCTIC slt). rate: diphone
    voices' ``Duration_Stretch`` (their own, e.g. 1.1, divided by rate) or HTS ``-r``; pitch:
    diphone voices' ``int_lr_params`` F0 mean and spread scaled; HTS voices: fallback."""

    name = "festival"
    packages = ("festival",)
    # The English voices Debian 12 main has (rab_diphone, don_diphone... are not in it), and their
    # packages; festival's other voices (Italian, Czech, ...) are not offered.
    VOICE_PACKAGES: ClassVar[dict[str, str]] = {
        "kal_diphone": "festvox-kallpc16k",
        "ked_diphone": "festvox-kdlpc16k",
        "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
    }

    def missing(self) -> str | None:
        if msg := missing_exe("festival", self.name, self.packages):
            return msg
        if not self.voices():
            return ("festival has no English voice: install one of the Debian packages "
                    f"{' '.join(sorted(set(self.VOICE_PACKAGES.values())))}")  # fmt: skip
        return None

    def voices(self) -> tuple[str, ...]:
        if shutil.which("festival") is None:
            return ()
        return _festival_voices(tuple(self.VOICE_PACKAGES))

    def native_pitch(self, voice: str) -> bool:
        return not voice.endswith("_hts")

    def _check_voice(self, voice: str) -> None:
        if voice in self.VOICE_PACKAGES and voice not in self.voices():
            raise EdgelearnError(f"festival voice {voice} is not installed: install the Debian "
                                 f"package {self.VOICE_PACKAGES[voice]}")  # fmt: skip
        super()._check_voice(voice)

    def _synthesize(
        self, text: str, voice: str, rate: float, pitch: float
    ) -> tuple[np.ndarray, int]:
        if not re.search(r"[A-Za-z0-9]", text) or not text.isascii():
            raise ValueError("festival speaks ASCII text with at least one letter or digit")
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        knobs = f"(el_hts_rate {rate:.4f})" if voice.endswith("_hts") else f"(el_rate {rate:.4f})"
        if pitch:
            knobs += f" (el_pitch {2 ** (pitch / 12):.5f})"
        form = f'(voice_{voice}) {knobs} (set! el_utt (utt.synth (Utterance Text "{quoted}")))'
        for attempt in (1, 2):  # a process found dead (killed, crashed) gets one fresh start
            with _LOCK:
                session = _festival_session()
                last, start = f"@@{session.token}:last@@", f"@@{session.token}:wav@@"
                try:
                    out = session.run(
                        f'{form} (format t "{last}") (el_last_segment el_utt) (format t "{start}") '
                        '(utt.save.wave el_utt "-" (quote riff))'
                    )
                except _FestivalDied:
                    if attempt == 2:
                        raise
                    continue
            head, _, wav = out.partition(start.encode())
            audio, sr = parse_wav_stream(wav)
            if voice.endswith("_hts"):  # statistical voices: no diphones, nothing read past them
                return audio, sr
            return _without_final_pause(audio, sr, head.rpartition(last.encode())[2])
        raise AssertionError("unreachable")


def _without_final_pause(audio: np.ndarray, sr: int, last_segment: bytes) -> tuple[np.ndarray, int]:
    """A diphone voice's audio up to the start of the utterance's final pause (``last_segment``:
    ``b"pau 0.290304"``, its name and start in seconds); see the module docstring for why."""
    name, _, start = last_segment.decode(errors="replace").strip().partition(" ")
    if name != FINAL_PAUSE:
        raise ValueError(f"the utterance does not end in a pause ({name!r}): cannot cut it off")
    return audio[: round(float(start) * sr)], sr


@lru_cache(maxsize=1)
def _festival_voices(known: tuple[str, ...]) -> tuple[str, ...]:
    """The known voices that festival lists: a one-off process (~0.3 s), so that a process that
    only asks does not keep a ~300 MB Festival running."""
    exe = shutil.which("festival") or "festival"
    proc = subprocess.run(
        [exe, "--pipe"], input=b"(print (voice.list))\n", capture_output=True, check=False
    )
    found = set(re.findall(r"[A-Za-z0-9_]+", proc.stdout.decode(errors="replace")))
    return tuple(v for v in known if v in found)
