"""Sound and device models behind the embedded mini dataset.

A scene is a mixture of procedural sources (engine drones, rumble, babble, footsteps, birds, wind,
pass-bys, rail squeal, chimes) with scene-specific weights and parameters; some scenes share sources
(bus / tram / metro, airport / shopping mall, street pedestrian / public square), so the task is not
trivial. Cities and recording locations perturb the weights and parameters and add a location
signature; each 10 s recording is a fresh realisation. A device colours the spectrum with its own
smooth frequency response and band limits and adds its own noise; simulated devices s1-s6 come from a
harsher family than the real devices a, b, c, so unseen devices are a real generalisation problem.

Everything is deterministic given the seed: each random draw comes from :func:`rng_for` keyed by what
it is for, so results do not depend on generation order.
"""
from __future__ import annotations

import hashlib

import numpy as np

SOURCES = ("drone", "rumble", "babble", "steps", "birds", "wind", "passby", "squeal", "chimes")

# Scene recipes: mean source weights (linear amplitude), drone fundamental range (Hz), reverb time (s).
SCENE_RECIPES = {
    "airport":           dict(w=dict(babble=.6, chimes=.25, rumble=.45, steps=.3, drone=.15), f0=(90, 140), rt60=.9),
    "bus":               dict(w=dict(drone=.8, rumble=.55, babble=.25, chimes=.06), f0=(45, 75), rt60=.15),
    "metro":             dict(w=dict(drone=.55, rumble=.8, squeal=.25, babble=.2), f0=(95, 135), rt60=.2),
    "metro_station":     dict(w=dict(babble=.45, squeal=.3, rumble=.5, chimes=.2, steps=.2), f0=(95, 135), rt60=1.2),
    "park":              dict(w=dict(birds=.6, wind=.55, babble=.1, passby=.1), f0=(60, 90), rt60=0.0),
    "public_square":     dict(w=dict(babble=.45, passby=.3, birds=.2, steps=.35, wind=.2), f0=(60, 90), rt60=0.0),
    "shopping_mall":     dict(w=dict(babble=.7, chimes=.15, steps=.4, rumble=.1), f0=(90, 140), rt60=.7),
    "street_pedestrian": dict(w=dict(steps=.6, babble=.5, passby=.25, wind=.1), f0=(60, 90), rt60=0.0),
    "street_traffic":    dict(w=dict(passby=.9, rumble=.5, drone=.3, wind=.1), f0=(35, 60), rt60=0.0),
    "tram":              dict(w=dict(drone=.4, rumble=.6, squeal=.45, babble=.2), f0=(70, 105), rt60=.15),
}

# Out-of-domain sound kinds of the mini AudioSet pool.
OOD_KINDS = ("speech", "music", "dog", "bird", "siren", "rain", "guitar")


def _stable_int(key) -> int:
    return int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little")


def rng_for(seed: int, *keys) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``keys`` (order-independent determinism)."""
    return np.random.default_rng([seed, *(_stable_int(k) for k in keys)])


# --- spectral helpers -------------------------------------------------------------------------

def shaped_noise(rng, n: int, sr: int, gain_db) -> np.ndarray:
    """White noise filtered by ``gain_db(freqs)`` in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spec *= 10 ** (gain_db(freqs) / 20)
    out = np.fft.irfft(spec, n)
    return out / (np.std(out) + 1e-9)


def band(lo: float, hi: float, slope_db: float = 24.0):
    """Gain curve of a smooth band-pass between ``lo`` and ``hi`` Hz."""
    def gain(f):
        f = np.maximum(f, 1.0)
        below = np.minimum(0, np.log2(f / lo)) * slope_db
        above = np.minimum(0, np.log2(hi / f)) * slope_db
        return below + above
    return gain


def envelope_bursts(rng, n: int, sr: int, rate: float, dur: tuple, shape: str = "hann") -> np.ndarray:
    """A sum of bursts at Poisson times (``rate`` per second) of random duration in ``dur`` seconds."""
    env = np.zeros(n)
    count = rng.poisson(rate * n / sr)
    for t in rng.integers(0, n, size=count):
        length = max(8, int(rng.uniform(*dur) * sr))
        seg = np.hanning(length) if shape == "hann" else np.exp(-np.linspace(0, 6, length))
        end = min(n, t + length)
        env[t:end] += seg[: end - t] * rng.uniform(0.4, 1.0)
    return env


# --- sources ------------------------------------------------------------------------------------

def src_drone(rng, n, sr, f0):
    t = np.arange(n) / sr
    f = f0 * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6.3)))
    phase = 2 * np.pi * np.cumsum(f) / sr
    harmonics = sum(np.sin(k * phase + rng.uniform(0, 6.3)) / k ** 0.8 for k in range(1, 12))
    am = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0) * t)
    return harmonics * am


def src_rumble(rng, n, sr, cutoff):
    return shaped_noise(rng, n, sr, band(20, cutoff, 18))


def src_babble(rng, n, sr, voices=4):
    out = np.zeros(n)
    for _ in range(voices):
        formants = [rng.uniform(400, 800), rng.uniform(1000, 1800), rng.uniform(2200, 3000)]
        spec = lambda f, fm=formants: 10 * np.log10(sum(1 / (1 + ((f - x) / 150) ** 2) for x in fm) + 1e-3)
        voice = shaped_noise(rng, n, sr, spec)
        syllables = envelope_bursts(rng, n, sr, rate=4.0, dur=(0.08, 0.25))
        out += voice * syllables
    return out


def src_steps(rng, n, sr):
    clicks = envelope_bursts(rng, n, sr, rate=rng.uniform(1.5, 3.0), dur=(0.02, 0.06), shape="exp")
    return clicks * shaped_noise(rng, n, sr, band(150, 3000, 12))


def src_birds(rng, n, sr):
    out = np.zeros(n)
    for _ in range(rng.poisson(6 * n / sr)):
        length = int(rng.uniform(0.05, 0.2) * sr)
        start = rng.integers(0, max(1, n - length))
        f = np.linspace(rng.uniform(2500, 4500), rng.uniform(3000, 7000), length)
        chirp = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(length)
        out[start:start + length] += chirp * rng.uniform(0.3, 1.0)
    return out


def src_wind(rng, n, sr):
    t = np.arange(n) / sr
    gust = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6.3)) ** 2
    return shaped_noise(rng, n, sr, band(30, 600, 12)) * gust


def src_passby(rng, n, sr):
    env = envelope_bursts(rng, n, sr, rate=rng.uniform(0.3, 0.8), dur=(1.5, 4.0))
    return shaped_noise(rng, n, sr, band(60, 2500, 12)) * (0.2 + env)


def src_squeal(rng, n, sr):
    t = np.arange(n) / sr
    f = rng.uniform(2500, 5000) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(3, 8) * t))
    env = envelope_bursts(rng, n, sr, rate=0.4, dur=(0.8, 3.0))
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * env


def src_chimes(rng, n, sr):
    out = np.zeros(n)
    base = rng.choice([523.3, 587.3, 659.3, 784.0])
    for _ in range(rng.poisson(0.5 * n / sr)):
        length = int(0.6 * sr)
        start = rng.integers(0, max(1, n - length))
        t = np.arange(length) / sr
        tone = sum(np.sin(2 * np.pi * base * r * t) for r in (1, 1.25, 1.5)) * np.exp(-4 * t)
        out[start:start + length] += tone[: n - start]
    return out


def reverb(rng, x, sr, rt60):
    """Convolve with an exponentially decaying noise tail (indoor scenes)."""
    if rt60 <= 0.05:
        return x
    length = int(rt60 * sr)
    ir = rng.standard_normal(length) * np.exp(-6.9 * np.arange(length) / length)
    ir[0] = 1.0 / 0.3
    n = 1 << (len(x) + length - 1).bit_length()  # power of two: fast FFT
    y = np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(ir, n), n)[: len(x)]
    return y / (np.std(y) + 1e-9) * np.std(x)


def render_source(name, rng, n, sr, f0):
    if name == "drone":
        return src_drone(rng, n, sr, f0)
    if name == "rumble":
        return src_rumble(rng, n, sr, cutoff=4 * f0)
    return globals()[f"src_{name}"](rng, n, sr)


# --- scenes ---------------------------------------------------------------------------------------

def scene_config(seed: int, scene: str, city: str, location: str) -> dict:
    """Source weights, drone f0, reverb time and location signature of one recording location."""
    recipe = SCENE_RECIPES[scene]
    rc, rl = rng_for(seed, "city", scene, city), rng_for(seed, "location", scene, location)
    weights = {}
    for s in SOURCES:
        base = recipe["w"].get(s, 0.02)
        weights[s] = base * np.exp(rc.normal(0, 0.3) + rl.normal(0, 0.45))
    lo, hi = recipe["f0"]
    f0 = rl.uniform(lo, hi) * np.exp(rc.normal(0, 0.05))
    return dict(
        weights=weights, f0=f0, rt60=recipe["rt60"] * np.exp(rl.normal(0, 0.3)),
        signature=dict(freq=rl.uniform(200, 6000), level=rl.uniform(0.02, 0.15)),
        level_db=rl.uniform(-32, -18),
    )


def render_scene(seed: int, config: dict, key, seconds: float, sr: int) -> np.ndarray:
    """One recording (``seconds`` long) of a location described by :func:`scene_config`."""
    rng = rng_for(seed, "recording", key)
    n = int(round(seconds * sr))
    mix = np.zeros(n)
    for name, w in config["weights"].items():
        w_seg = w * np.exp(rng.normal(0, 0.25))
        if w_seg < 0.03:
            continue
        x = render_source(name, rng, n, sr, config["f0"])
        mix += w_seg * x / (np.std(x) + 1e-9)
    sig = config["signature"]
    mix += sig["level"] * shaped_noise(rng, n, sr, band(sig["freq"] / 1.2, sig["freq"] * 1.2, 40)) * np.std(mix)
    mix = reverb(rng, mix, sr, config["rt60"])
    level = 10 ** ((config["level_db"] + rng.normal(0, 2)) / 20)
    return limit_peak(mix / (np.std(mix) + 1e-9) * level)


def limit_peak(x: np.ndarray, peak: float = 0.7) -> np.ndarray:
    """Scale ``x`` down so that its peak stays below ``peak`` (no clipping at the device stage)."""
    top = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x * min(1.0, peak / (top + 1e-9))).astype(np.float32)


# --- out-of-domain sounds (mini AudioSet) -------------------------------------------------------------

def render_ood(seed: int, kind: str, key, seconds: float, sr: int) -> np.ndarray:
    """An out-of-domain clip: speech, music, dog, bird, siren, rain or guitar."""
    rng = rng_for(seed, "ood", kind, key)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    if kind == "speech":
        f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
        voiced = sum(np.sin(k * 2 * np.pi * np.cumsum(f0) / sr) / k for k in range(1, 20))
        x = voiced * envelope_bursts(rng, n, sr, rate=4.5, dur=(0.1, 0.3)) + 0.2 * src_babble(rng, n, sr, 1)
    elif kind in ("music", "guitar"):
        x = np.zeros(n)
        beat = rng.uniform(0.25, 0.6)
        decay = 3.0 if kind == "guitar" else 1.0
        for start in np.arange(0, seconds, beat):
            i = int(start * sr)
            length = n - i
            tt = np.arange(length) / sr
            root = 110 * 2 ** (rng.integers(0, 24) / 12)
            chord = (1, 1.26, 1.5) if kind == "music" else (1,)
            x[i:] += sum(np.sin(2 * np.pi * root * c * k * tt) / k for c in chord for k in (1, 2, 3)) * np.exp(-decay * tt)
    elif kind == "dog":
        env = envelope_bursts(rng, n, sr, rate=2.0, dur=(0.1, 0.25))
        f0 = rng.uniform(300, 700)
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * env
    elif kind == "bird":
        x = src_birds(rng, n, sr) * 2
    elif kind == "siren":
        f = 700 + 400 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t)
        x = np.sin(2 * np.pi * np.cumsum(f) / sr)
    elif kind == "rain":
        x = shaped_noise(rng, n, sr, band(500, 12000, 6)) * (1 + envelope_bursts(rng, n, sr, 40, (0.002, 0.01), "exp"))
    else:
        raise ValueError(f"unknown out-of-domain kind {kind!r}")
    x = x + 0.05 * shaped_noise(rng, n, sr, band(50, 8000, 6))
    level = 10 ** (rng.uniform(-30, -15) / 20)
    return limit_peak(x / (np.std(x) + 1e-9) * level)


# --- devices --------------------------------------------------------------------------------------

DEVICE_FAMILIES = {
    # band limits (Hz), ripple (dB) of the smooth response, SNR range (dB), soft-clip drive
    "reference": dict(low=(20, 40), high=(18000, 20000), ripple=1.0, snr=(55, 65), drive=0.0),
    "real": dict(low=(60, 200), high=(9000, 14000), ripple=5.0, snr=(35, 45), drive=0.0),
    "simulated": dict(low=(120, 500), high=(3500, 9000), ripple=9.0, snr=(22, 34), drive=1.5),
    "youtube": dict(low=(30, 400), high=(4000, 16000), ripple=7.0, snr=(25, 50), drive=0.5),
}


def device_family(device: str) -> str:
    if device == "a":
        return "reference"
    if device in ("b", "c"):
        return "real"
    if device.startswith("s"):
        return "simulated"
    return "youtube"


def device_profile(seed: int, device: str) -> dict:
    """The fixed response of one device: band limits, smooth ripple, noise colour and level."""
    fam = DEVICE_FAMILIES[device_family(device)]
    rng = rng_for(seed, "device", device)
    bumps = [(rng.uniform(np.log2(100), np.log2(12000)), rng.uniform(0.3, 1.2), rng.normal(0, fam["ripple"]))
             for _ in range(5)]
    return dict(
        low=rng.uniform(*fam["low"]), high=rng.uniform(*fam["high"]), bumps=bumps,
        snr=rng.uniform(*fam["snr"]), drive=fam["drive"] * rng.uniform(0.5, 1.0),
        noise_tilt=rng.uniform(-6, 3), hum=rng.uniform(0, 0.5) if fam["drive"] else 0.0,
        sensitivity_db=rng.uniform(-4, 4) if device != "a" else 0.0,
    )


def device_gain_db(profile: dict):
    """Gain curve (dB) of a device profile."""
    def gain(f):
        f = np.maximum(f, 1.0)
        g = band(profile["low"], profile["high"], 18)(f)
        lf = np.log2(f)
        for centre, width, height in profile["bumps"]:
            g = g + height * np.exp(-0.5 * ((lf - centre) / width) ** 2)
        return g
    return gain


def apply_device(seed: int, device: str, x: np.ndarray, sr: int, key) -> np.ndarray:
    """Record ``x`` with ``device``: response, band limits, soft clipping and device noise."""
    prof = device_profile(seed, device)
    n = len(x)
    spec = np.fft.rfft(x) * 10 ** (device_gain_db(prof)(np.fft.rfftfreq(n, 1 / sr)) / 20)
    y = np.fft.irfft(spec, n)
    y *= np.std(x) / (np.std(y) + 1e-12) * 10 ** (prof["sensitivity_db"] / 20)
    if prof["drive"] > 0:
        peak = np.max(np.abs(y)) + 1e-9
        y = np.tanh(prof["drive"] * y / peak) * peak / np.tanh(prof["drive"])
    rng = rng_for(seed, "device-noise", device, key)
    tilt = prof["noise_tilt"]
    noise = shaped_noise(rng, n, sr, lambda f: tilt * np.log2(np.maximum(f, 20) / 1000))
    if prof["hum"]:
        t = np.arange(n) / sr
        noise = noise + prof["hum"] * 4 * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3))
    y = y + noise * np.std(y) * 10 ** (-prof["snr"] / 20)
    return np.clip(y, -1.0, 1.0).astype(np.float32)
