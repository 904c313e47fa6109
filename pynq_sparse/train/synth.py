"""Synthetic keyword-spotting clips from text-to-speech (espeak-ng, flite, festival).

Extra training data for the 12-class Speech Commands task (yes no up down left right on
off stop go `_silence_` `_unknown_`) when only a small real set is available. Every clip
is a 1-second, 16 kHz, mono, 16-bit WAV file written to::

    DIR/<word>/<engine>_<voice>_<variant>.wav      e.g. DIR/yes/flite_slt_017-d112-f173-p.wav
    DIR/manifest.csv                               relpath,label,engine,voice

`label` is the word itself for the ten keywords and `_unknown_` for every other word.
No `_silence_` clips are made (take those from background noise).

Usage::

    # Debian packages: espeak-ng, flite, sox, festival and its English voices
    apt-get install -y espeak-ng flite sox festival \\
        festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts

    # default: 300 clips per keyword + 1,500 `_unknown_` clips, 2 processes
    nice -n 10 python -m pynq_sparse.train.synth --out /work/synth_cache/gsc_synth

    # small quick set, other seed, 4 processes, flite only
    python -m pynq_sparse.train.synth --out /tmp/synth --per-word 20 --unknown-total 100 \\
        --seed 1 --jobs 4 --engines flite

    from pynq_sparse.train.synth import build_jobs, discover_voices
    jobs = build_jobs(discover_voices(), per_word=10, unknown_total=50, seed=0)

Runs are deterministic from ``--seed`` (voice, speed, pitch, punctuation, placement and
gain of every clip) and resumable: a clip whose file exists is skipped, and files are
written atomically, so an interrupted run can simply be started again.

Engines and what is varied:

- espeak-ng: every English accent that is a built-in voice (en-us, en-gb, en-gb-scotland,
  en-gb-x-rp, en-gb-x-gbclan, en-gb-x-gbcwmd, en-029, en-us-nyc; the MBROLA voices are
  used only if the `mbrola` program is installed) times the voice variants of
  `ESPEAK_VARIANTS` that exist; speed ``-s`` 120-220 words/min, pitch ``-p`` 20-80.
- flite: every voice of ``flite -lv`` except limited-domain ones (``awb_time`` only says
  the time); ``duration_stretch`` 0.8-1.3 and ``int_f0_target_mean`` (85-150 Hz for the
  male voices, 140-240 Hz for slt).
- festival: every installed English voice; diphone voices get ``Duration_Stretch``
  0.8-1.3 and a target F0 mean of 75-160 Hz, HTS voices (which ignore both) get the HTS
  speed ``-r`` = 1/stretch and a sox pitch shift of -300..+400 cents.
- all: the text ends in ``.``, ``!``, ``?`` or nothing (different intonation).

Post-processing (numpy, soxr, sox): mix to mono, resample to 16 kHz, trim leading and
trailing silence (10 ms frames quieter than 40 dB below the loudest frame, 20 ms kept on
each side, 5 ms fades), time-compress with sox ``tempo`` if longer than 0.95 s, place at
a uniformly random offset inside a 16,000-sample frame and scale to a random peak of
0.3-0.9.

Choice of `_unknown_` words: the 25 non-keyword words of Speech Commands v0.02 (the test
set's `_unknown_` clips are all of these) get 70 % of the unknown clips, and
`EXTRA_UNKNOWN_WORDS`, 24 common English words, the other 30 %. The extra words were
chosen to share neither rhyme nor onset+vowel with a keyword, since a near-homophone
labelled `_unknown_` would teach the model to reject real keywords. Left out on purpose:
know/now/snow/so/low/toe/goat/grow/window (no, go), yet/yell/guess/mess (yes), cup/pup/
hop/jump (up), town/gown/dawn/round/flower (down), lift/loft/theft (left), write/light/
white/night/bright (right), an/in/own/gone/john (on), of/if/cough (off), top/shop/step/
stock/drop (stop), and also "sun" and "orange": flite pronounces "up" and "sun" with the
vowel of "on" (/s ɑ n/ is "s" + "on"), and "or-" begins like "on"/"off".
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
CLIP_SAMPLES = 16_000
MAX_SPEECH_SAMPLES = int(0.95 * SAMPLE_RATE)  # longer utterances are time-compressed to this
UNKNOWN_LABEL = "_unknown_"

KEYWORDS: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
GSC_UNKNOWN_WORDS: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine",
    "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "backward",
    "forward", "follow", "learn", "visual",
)
EXTRA_UNKNOWN_WORDS: tuple[str, ...] = (
    "bag", "tell", "chair", "fish", "milk", "paper", "cheese", "music", "kitchen", "table",
    "purple", "basket", "moon", "tea", "book", "sleep", "smile", "pizza", "water", "ticket",
    "camera", "family", "city", "baby",
)
GSC_UNKNOWN_SHARE = 0.7

ENGINES: tuple[str, ...] = ("espeak", "flite", "festival")
# share of each word's clips per engine (espeak-ng has by far the most voices; festival's
# HTS voice is the most natural one)
ENGINE_WEIGHTS: dict[str, float] = {"espeak": 0.45, "flite": 0.30, "festival": 0.25}

# espeak-ng voice variants (files in espeak-ng-data/voices/!v); those missing are skipped
ESPEAK_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "Andy", "Annie", "anika", "Alicia", "steph",
    "edward", "max", "benjamin", "michel", "Storm", "croak", "whisper",
)
FLITE_SKIP_VOICES = frozenset({"awb_time"})  # limited domain: only says the time
FLITE_FEMALE_VOICES = frozenset({"slt", "clb", "eey", "ljm", "lnh", "axb", "aup", "gka"})
FESTIVAL_ENGLISH = re.compile(
    r"^(kal_diphone|ked_diphone|rab_diphone|don_diphone|cmu_us_\w+|cmu_uk_\w+|nitech_us_\w+)$"
)
PUNCTUATION: dict[str, str] = {"p": ".", "x": "!", "q": "?", "n": ""}

TOOL_TIMEOUT_S = 60


class SynthError(RuntimeError):
    """A text-to-speech engine or sox failed, or produced no audible speech."""


@dataclass(frozen=True)
class Job:
    """One clip to make: which word, engine, voice and parameters, and where it goes."""

    word: str
    engine: str
    voice: str
    variant: str
    text: str
    params: dict[str, float] = field(hash=False, compare=False)
    seed: int = 0

    @property
    def label(self) -> str:
        return self.word if self.word in KEYWORDS else UNKNOWN_LABEL

    @property
    def relpath(self) -> str:
        return f"{self.word}/{self.engine}_{self.voice}_{self.variant}.wav"


@dataclass
class Voices:
    """The usable voices of each engine and the ones that were asked for but failed."""

    espeak: list[str] = field(default_factory=list)  # "accent+variant"
    flite: list[str] = field(default_factory=list)
    festival: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "engine voice: reason"

    def of(self, engine: str) -> list[str]:
        return list(getattr(self, engine))


# --------------------------------------------------------------------------- discovery
def _run(cmd: Sequence[str], input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), input=input_text, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S
    )


def _espeak_accents() -> list[str]:
    out = _run(["espeak-ng", "--voices=en"]).stdout
    have_mbrola = shutil.which("mbrola") is not None
    accents: list[str] = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5:
            continue
        lang, name, path = cols[1], cols[3], cols[4]
        if path.startswith("mb/"):
            if have_mbrola:
                accents.append(name)  # mbrola voices are addressed by name, e.g. us-mbrola-1
            continue
        if lang.startswith("en") and lang not in accents:
            accents.append(lang)
    return accents


def _espeak_variants() -> tuple[list[str], list[str]]:
    out = _run(["espeak-ng", "--voices=variant"]).stdout
    files = {m.group(1) for m in re.finditer(r"!v/(\S+)", out)}
    have = [v for v in ESPEAK_VARIANTS if v in files]
    missing = [v for v in ESPEAK_VARIANTS if v not in files]
    return have, missing


def _probe(engine: str, voice: str) -> str | None:
    """Synthesize "yes" with one voice; None if it works, else the reason."""
    with tempfile.TemporaryDirectory(prefix="synth_probe_") as tmp:
        wav = Path(tmp) / "probe.wav"
        job = Job("yes", engine, voice, "probe", "yes.", _default_params(engine, voice), 0)
        try:
            _synthesize(job, wav)
            y, _ = sf.read(str(wav), dtype="float32", always_2d=True)
        except Exception as err:  # noqa: BLE001 - any failure disqualifies the voice
            return str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__
        if y.size == 0 or float(np.abs(y).max()) < 1e-3:
            return "silent output"
    return None


def discover_voices(engines: Iterable[str] = ENGINES, probe: bool = True) -> Voices:
    """Find each engine's English voices; with `probe`, drop those that cannot speak."""
    engines = list(engines)
    voices = Voices()
    if "espeak" in engines:
        if shutil.which("espeak-ng") is None:
            voices.failed.append("espeak: espeak-ng not installed")
        else:
            accents = _espeak_accents()
            variants, missing = _espeak_variants()
            voices.failed += [f"espeak +{v}: no such variant" for v in missing]
            if probe:
                bad_acc = {a: r for a in accents if (r := _probe("espeak", a))}
                bad_var = {v: r for v in variants if (r := _probe("espeak", f"en-us+{v}"))}
                voices.failed += [f"espeak {a}: {r}" for a, r in bad_acc.items()]
                voices.failed += [f"espeak +{v}: {r}" for v, r in bad_var.items()]
                accents = [a for a in accents if a not in bad_acc]
                variants = [v for v in variants if v not in bad_var]
            voices.espeak = [f"{a}+{v}" for a in accents for v in variants]
    if "flite" in engines:
        if shutil.which("flite") is None:
            voices.failed.append("flite: not installed")
        else:
            out = _run(["flite", "-lv"]).stdout
            names = out.split(":", 1)[1].split() if ":" in out else []
            voices.failed += [f"flite {v}: limited-domain voice, skipped" for v in names
                              if v in FLITE_SKIP_VOICES]
            voices.flite = [v for v in names if v not in FLITE_SKIP_VOICES]
    if "festival" in engines:
        if shutil.which("text2wave") is None or shutil.which("festival") is None:
            voices.failed.append("festival: not installed (apt-get install festival festvox-...)")
        else:
            out = _run(["festival", "--pipe"], "(print (voice.list))\n").stdout
            names = re.findall(r"[\w-]+", out)
            voices.failed += [f"festival {v}: not an English voice, skipped" for v in names
                              if not FESTIVAL_ENGLISH.match(v)]
            voices.festival = sorted(v for v in names if FESTIVAL_ENGLISH.match(v))
    if probe:
        for engine in ("flite", "festival"):
            bad = {v: r for v in voices.of(engine) if (r := _probe(engine, v))}
            voices.failed += [f"{engine} {v}: {r}" for v, r in bad.items()]
            setattr(voices, engine, [v for v in voices.of(engine) if v not in bad])
    return voices


# --------------------------------------------------------------------------- job plan
def _stable_int(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _is_hts(voice: str) -> bool:
    return voice.endswith("_hts") or "_hts_" in voice


def _default_params(engine: str, voice: str) -> dict[str, float]:
    if engine == "espeak":
        return {"speed": 170, "pitch": 50}
    if engine == "flite":
        return {"stretch": 1.0, "f0": 170.0 if voice in FLITE_FEMALE_VOICES else 110.0}
    return {"stretch": 1.0, "f0": 0.0, "cents": 0.0}


def _sample_params(engine: str, voice: str, rng: np.random.Generator) -> tuple[dict[str, float], str]:
    """Random engine parameters and the variant tag that names them in the file name."""
    if engine == "espeak":
        speed, pitch = int(rng.integers(120, 221)), int(rng.integers(20, 81))
        return {"speed": speed, "pitch": pitch}, f"s{speed}-p{pitch}"
    stretch = round(float(rng.uniform(0.8, 1.3)), 2)
    if engine == "flite":
        lo, hi = (140, 240) if voice in FLITE_FEMALE_VOICES else (85, 150)
        f0 = int(rng.integers(lo, hi + 1))
        return {"stretch": stretch, "f0": f0}, f"d{round(stretch * 100)}-f{f0}"
    if _is_hts(voice):
        cents = int(rng.integers(-300, 401))
        return {"stretch": stretch, "f0": 0.0, "cents": cents}, f"d{round(stretch * 100)}-c{cents:+d}"
    if voice.endswith("_diphone"):
        f0 = int(rng.integers(75, 161))
        return {"stretch": stretch, "f0": f0, "cents": 0.0}, f"d{round(stretch * 100)}-f{f0}"
    cents = int(rng.integers(-200, 301))  # other festival voice types: sox pitch shift
    return {"stretch": stretch, "f0": 0.0, "cents": cents}, f"d{round(stretch * 100)}-c{cents:+d}"


def _split(total: int, weights: dict[str, float], key: object = "") -> dict[str, int]:
    """Split `total` by `weights` (systematic sampling with a phase drawn from `key`).

    Each share is within one of ``total * weight``, and over many keys the rounding
    favours no part, so small totals (1-2 clips of a word) still reach every engine.
    """
    if not weights:
        return {}
    norm = sum(weights.values())
    phase = (_stable_int(key, "phase") % 1_000_000) / 1_000_000
    counts, cum, prev = {}, 0.0, 0
    for k, w in weights.items():
        cum += total * w / norm
        upto = min(total, int(np.floor(cum + phase))) if k != list(weights)[-1] else total
        counts[k], prev = upto - prev, upto
    return counts


def words_and_counts(per_word: int, unknown_total: int) -> dict[str, int]:
    """How many clips each word gets: `per_word` per keyword, `unknown_total` over the rest."""
    counts = {w: per_word for w in KEYWORDS}
    n_gsc = round(unknown_total * GSC_UNKNOWN_SHARE)
    counts.update(_split(n_gsc, {w: 1.0 for w in GSC_UNKNOWN_WORDS}, "gsc"))
    counts.update(_split(unknown_total - n_gsc, {w: 1.0 for w in EXTRA_UNKNOWN_WORDS}, "extra"))
    return counts


def build_jobs(voices: Voices, per_word: int = 300, unknown_total: int = 1500, seed: int = 0,
               engine_weights: dict[str, float] | None = None) -> list[Job]:
    """The deterministic list of clips for these voices, counts and seed."""
    weights = {e: w for e, w in (engine_weights or ENGINE_WEIGHTS).items() if voices.of(e)}
    jobs: list[Job] = []
    for word, n_word in words_and_counts(per_word, unknown_total).items():
        for engine, n in _split(n_word, weights, (seed, word)).items():
            pool = voices.of(engine)
            order = np.random.default_rng(_stable_int(seed, word, engine, "voices")).permutation(len(pool))
            for k in range(n):
                voice = pool[int(order[k % len(pool)])]  # round-robin: every voice used evenly
                rng = np.random.default_rng(_stable_int(seed, word, engine, k))
                params, tag = _sample_params(engine, voice, rng)
                punct = str(rng.choice(list(PUNCTUATION)))
                jobs.append(Job(word, engine, voice, f"{k:03d}-{tag}-{punct}", word + PUNCTUATION[punct],
                                params, int(rng.integers(0, 2**63 - 1))))
    return jobs


# --------------------------------------------------------------------------- synthesis
def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        raise SynthError(f"{what} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")


def _synthesize(job: Job, wav: Path) -> None:
    """Run the job's engine to write its raw output (engine sample rate) to `wav`."""
    p = job.params
    if job.engine == "espeak":
        cmd = ["espeak-ng", "-v", job.voice, "-s", str(int(p["speed"])), "-p", str(int(p["pitch"])),
               "-w", str(wav), job.text]
        _check(_run(cmd), "espeak-ng")
    elif job.engine == "flite":
        cmd = ["flite", "-voice", job.voice, "--setf", f"duration_stretch={p['stretch']}",
               "--setf", f"int_f0_target_mean={p['f0']}", "-t", job.text, "-o", str(wav)]
        _check(_run(cmd), "flite")
    elif job.engine == "festival":
        evals = [f"(voice_{job.voice})"]
        if _is_hts(job.voice):
            evals.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {1.0 / p["stretch"]:.4f}))))')
        else:
            evals.append(f"(Parameter.set 'Duration_Stretch {p['stretch']})")
        if p.get("f0"):
            evals.append(f"(set! int_lr_params '((target_f0_mean {p['f0']}) (target_f0_std {p['f0'] * 0.15:.1f})"
                         " (model_f0_mean 170) (model_f0_std 34)))")
        cmd = ["text2wave"]
        for e in evals:
            cmd += ["-eval", e]
        _check(_run(cmd + ["-o", str(wav)], job.text + "\n"), "text2wave")
        if p.get("cents"):
            shifted = wav.with_name("pitched.wav")
            _check(_run(["sox", str(wav), str(shifted), "pitch", str(int(p["cents"]))]), "sox pitch")
            shifted.replace(wav)
    else:
        raise SynthError(f"unknown engine {job.engine!r}")
    if not wav.is_file() or wav.stat().st_size <= 44:
        raise SynthError(f"{job.engine} wrote no audio for {job.voice!r}")


def trim_silence(y: np.ndarray, sr: int = SAMPLE_RATE, top_db: float = 40.0,
                 frame_ms: float = 10.0, pad_ms: float = 20.0, fade_ms: float = 5.0) -> np.ndarray:
    """Cut leading/trailing frames quieter than `top_db` below the loudest frame."""
    frame = max(1, int(sr * frame_ms / 1000))
    n_frames = -(-len(y) // frame)
    padded = np.zeros(n_frames * frame, dtype=np.float32)
    padded[: len(y)] = y
    rms = np.sqrt(np.mean(padded.reshape(n_frames, frame) ** 2, axis=1))
    if rms.size == 0 or rms.max() < 1e-4:
        raise SynthError("no audible speech in the synthesized audio")
    loud = np.nonzero(rms > rms.max() * 10 ** (-top_db / 20))[0]
    pad = int(sr * pad_ms / 1000)
    out = y[max(0, loud[0] * frame - pad): min(len(y), (loud[-1] + 1) * frame + pad)].astype(np.float32)
    n_fade = min(int(sr * fade_ms / 1000), len(out) // 2)
    if n_fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n_fade, dtype=np.float32))
        out[:n_fade] *= ramp
        out[-n_fade:] *= ramp[::-1]
    return out


def _sox_tempo(y: np.ndarray, factor: float, tmp: Path) -> np.ndarray:
    src, dst = tmp / "long.wav", tmp / "tempo.wav"
    sf.write(str(src), y, SAMPLE_RATE, subtype="FLOAT")
    _check(_run(["sox", str(src), str(dst), "tempo", "-s", f"{factor:.4f}"]), "sox tempo")
    out, _ = sf.read(str(dst), dtype="float32")
    return out


def fit_to_clip(y: np.ndarray, rng: np.random.Generator, tmp: Path) -> np.ndarray:
    """Compress to <= 0.95 s if needed, place at a random offset in 1 s, random peak 0.3-0.9."""
    if len(y) > MAX_SPEECH_SAMPLES:
        y = _sox_tempo(y, len(y) / (MAX_SPEECH_SAMPLES - 160), tmp)[:MAX_SPEECH_SAMPLES]
    clip = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    offset = int(rng.integers(0, CLIP_SAMPLES - len(y) + 1))
    clip[offset: offset + len(y)] = y
    peak = float(np.abs(clip).max())
    if peak < 1e-4:
        raise SynthError("no audible speech after post-processing")
    return clip * (float(rng.uniform(0.3, 0.9)) / peak)


def render(job: Job, out_dir: Path) -> tuple[str, str, str]:
    """Make one clip; returns (relpath, "made" | "skipped" | "failed", message)."""
    dest = out_dir / job.relpath
    if dest.exists():
        return job.relpath, "skipped", ""
    try:
        with tempfile.TemporaryDirectory(prefix="synth_") as tmp_name:
            tmp = Path(tmp_name)
            raw = tmp / "raw.wav"
            _synthesize(job, raw)
            y, sr = sf.read(str(raw), dtype="float32", always_2d=True)
            y = y.mean(axis=1)
            if sr != SAMPLE_RATE:
                y = soxr.resample(y, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
            clip = fit_to_clip(trim_silence(y), np.random.default_rng(job.seed), tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
            sf.write(str(part), clip, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            part.replace(dest)
        return job.relpath, "made", ""
    except Exception as err:  # noqa: BLE001 - reported per clip, the run goes on
        return job.relpath, "failed", f"{type(err).__name__}: {err}"


def _render_star(args: tuple[Job, Path]) -> tuple[str, str, str]:
    return render(*args)


def write_manifest(out_dir: Path, jobs: Sequence[Job]) -> int:
    """Write DIR/manifest.csv for the jobs whose file exists; returns the row count."""
    rows = sorted((j.relpath, j.label, j.engine, j.voice) for j in jobs if (out_dir / j.relpath).is_file())
    tmp = out_dir / ".manifest.csv.part"
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["relpath", "label", "engine", "voice"])
        writer.writerows(rows)
    tmp.replace(out_dir / "manifest.csv")
    return len(rows)


# --------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pynq_sparse.train.synth",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder DIR")
    ap.add_argument("--per-word", type=int, default=300, help="clips per keyword (default 300)")
    ap.add_argument("--unknown-total", type=int, default=1500,
                    help="clips over all `_unknown_` words (default 1500)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help=f"comma-separated subset of {','.join(ENGINES)}")
    args = ap.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if unknown := set(engines) - set(ENGINES):
        ap.error(f"unknown engine(s) {sorted(unknown)}; choose from {ENGINES}")
    if shutil.which("sox") is None:
        print("error: sox is not installed (apt-get install sox)", file=sys.stderr)
        return 2

    t0 = time.monotonic()
    voices = discover_voices(engines)
    for e in engines:
        print(f"{e}: {len(voices.of(e))} voices", file=sys.stderr)
    for msg in voices.failed:
        print(f"  unavailable: {msg}", file=sys.stderr)
    jobs = build_jobs(voices, args.per_word, args.unknown_total, args.seed)
    if not jobs:
        print("error: no usable voice in any engine", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if not (args.out / j.relpath).exists()]
    print(f"{len(jobs)} clips planned, {len(jobs) - len(todo)} already there, {len(todo)} to make "
          f"with {args.jobs} processes", file=sys.stderr)

    status: Counter[str] = Counter()
    failures: list[tuple[str, str]] = []
    with mp.get_context("fork").Pool(max(1, args.jobs)) as pool:
        for i, (rel, state, msg) in enumerate(
                pool.imap_unordered(_render_star, [(j, args.out) for j in todo], chunksize=4), 1):
            status[state] += 1
            if state == "failed":
                failures.append((rel, msg))
                print(f"  failed {rel}: {msg}", file=sys.stderr)
            if i % 250 == 0 or i == len(todo):
                print(f"  {i}/{len(todo)} done ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    n_rows = write_manifest(args.out, jobs)

    present = [j for j in jobs if (args.out / j.relpath).is_file()]
    per_word = Counter(j.word for j in present)
    per_engine = Counter(j.engine for j in present)
    per_label = Counter(j.label for j in present)
    by_engine_voice: dict[str, set[str]] = defaultdict(set)
    for j in present:
        by_engine_voice[j.engine].add(j.voice)
    print(f"\n{'word':<10} {'label':<10} clips")
    for w in list(KEYWORDS) + list(GSC_UNKNOWN_WORDS) + list(EXTRA_UNKNOWN_WORDS):
        print(f"{w:<10} {('' if w in KEYWORDS else UNKNOWN_LABEL):<10} {per_word.get(w, 0)}")
    print("\nper label: " + ", ".join(f"{k}={v}" for k, v in sorted(per_label.items())))
    print("per engine: " + ", ".join(f"{e}={per_engine.get(e, 0)} ({len(by_engine_voice[e])} voices)"
                                     for e in engines))
    print(f"made {status['made']}, failed {status['failed']}, already there {len(jobs) - len(todo)}; "
          f"manifest {n_rows} rows -> {args.out / 'manifest.csv'}; {time.monotonic() - t0:.0f} s")
    # a few failing clips do not spoil the set; many mean a broken engine
    return 1 if failures and len(failures) > 0.01 * len(jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
