"""Generator of the embedded default: a mini TAU22 / DCASE2024 corpus and a mini AudioSet pool.

It writes exactly the real layouts, so the loaders of :mod:`asc_lib.data.dcase` and :mod:`asc_lib.data.audioset`
read it unchanged::

    <out>/tau22/meta.csv, <out>/tau22/audio/<scene>-<city>-<loc>-<segment>-<index>-<device>.wav
                                       (1 s, 44.1 kHz, 24-bit PCM, mono)
    <out>/dcase2024_task1/split{5,10,25,50,100}.csv, test.csv     (nested; s4-s6 only in test)
    <out>/audioset/ontology.json, class_labels_indices.csv        (a real subset of the AudioSet classes)
    <out>/audioset/{balanced_train,eval,unbalanced_train}_segments.csv   (official format)
    <out>/audioset/audio/<list>/Y<YTID>.wav                      (32 kHz, 16-bit PCM)
    <out>/audioset/mini_truth.csv      which pool clips are in-domain (scene-like) - known only here
    <out>/MANIFEST.json                settings and counts; written last, marks a complete dataset

Like TAU22, each 10 s recording is made with device a and, for some recordings, in parallel with
b, c and s1-s3, then cut into ten 1 s clips. Test recordings are made at unseen locations, several at each,
each by one device in turn (all nine devices equally often; TAU22's test split: about 1.4 devices per
recording), so that a bootstrap over test recordings has many units per scene. The generation is
deterministic from the seed, and the dataset is built in a temporary folder renamed into place at the
end, so an interrupted run leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import string
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from asc_lib.config.progress import bar as progress_bar

from asc_lib.config import SPLITS, data_paths, load_profile, paths, table1_labels
from asc_lib.config.atomic import write_json
from asc_lib.data import synth
from asc_lib.data.audioset import SEGMENT_LISTS, multi_hot, read_class_index, write_segments
from asc_lib.data.audioset_clips import HDF5_SUFFIX, encode_mp3, write_hdf5
from asc_lib.data.dcase import DEVICES, SCENES

GENERATOR_VERSION = 3  # 2: short and absent AudioSet clips, the HDF5 layout; 3: test recordings as TAU22's (many, few devices each)
TAU_SR = 44100
TRAIN_DEVICES = ("a", "b", "c", "s1", "s2", "s3")
PARALLEL_DEVICES = TRAIN_DEVICES[1:]

# AudioSet labels of in-domain clips: the "easy" sets carry at least one of Surkov's Table 1 labels;
# the "hard" sets carry none, so a label filter misses those clips while a domain classifier may not.
TABLE1_LABELS = table1_labels()  # Surkov's Table 1 (params/surkov.yaml)
SCENE_LABELS = {
    "airport": [["/t/dd00127", "/m/0cmf2"], ["/m/014yck", "/m/09x0r"], ["/t/dd00127"]],
    "bus": [["/m/01bjv", "/m/07yv9"], ["/m/012f08", "/m/01bjv"]],
    "metro": [["/m/0195fx", "/m/06d_3"], ["/m/0195fx"]],
    "metro_station": [["/m/0195fx", "/t/dd00127"], ["/t/dd00048", "/m/06d_3"]],
    "park": [["/t/dd00092", "/m/015p6"], ["/m/09ddx", "/m/020bb7"]],
    "public_square": [["/t/dd00128", "/m/03qtwd"], ["/t/dd00128"]],
    "shopping_mall": [["/t/dd00127", "/m/07rkbfh"], ["/t/dd00127"]],
    "street_pedestrian": [["/t/dd00128", "/m/07pbtc8"], ["/t/dd00128", "/m/09x0r"]],
    "street_traffic": [["/m/0btp2", "/m/0k4j"], ["/m/012f08", "/m/07r04"], ["/m/0btp2"]],
    "tram": [["/m/07jdr", "/m/01g50p"], ["/m/06d_3", "/t/dd00048"]],
}
HARD_LABELS = [["/m/03qtwd"], ["/m/07rkbfh", "/m/09x0r"], ["/m/07qfr4h"], ["/m/07pbtc8"], ["/m/02mk9"],
               ["/m/06_y0by"], ["/m/096m7z"]]
OOD_LABELS = {
    "speech": [["/m/09x0r"], ["/m/09x0r", "/m/015lz1"]],
    "music": [["/m/04rlf"], ["/m/04rlf", "/m/05r5c"]],
    "guitar": [["/m/04rlf", "/m/0342h"]],
    "dog": [["/m/0bt9lr", "/m/068hy"], ["/m/0jbk", "/m/0bt9lr"]],
    "bird": [["/m/015p6", "/m/020bb7"]],
    "siren": [["/m/03kmc9", "/m/03j1ly"], ["/m/03kmc9", "/m/07yv9"]],  # the second carries a Table 1 label
    "rain": [["/m/06mb1"], ["/m/06mb1", "/m/0838f"]],
}
HARD_FRACTION = 0.25      # in-domain clips labelled without any Table 1 label
OOD_OUTSIDE_FRACTION = 0.1  # out-of-domain clips that also carry "Outside, urban or manmade"


def default_settings(profile: str = "mini") -> dict:
    """The ``generator`` section of ``params/<profile>.yaml``."""
    return dict(load_profile(profile)["generator"])


# Real AudioSet lists name segments shorter than 10 s: (345 + 361) of (22,160 + 20,371) in the balanced and
# eval lists (counted on ../shared/data/audioset to the millisecond), 1.66 %, from 1 s up, median 7 s. A real copy also misses
# clips YouTube no longer serves; how many depends on when it was downloaded, so 3 % is an assumed order of
# magnitude, not a measured figure. The pool is written in one of the two layouts of asc_lib.data.audioset_clips.
REAL_SHORT_FRACTION = 706 / 42531
POOL_DEFAULTS = dict(clip_seconds=2.0, sample_rate=32000, n_unbalanced=1500, n_balanced=400, n_eval=400,
                     in_domain_fraction=0.3, short_fraction=round(REAL_SHORT_FRACTION, 4), absent_fraction=0.03,
                     layout="files")


def pool_settings(audioset: dict | None) -> dict:
    """The AudioSet-pool settings with defaults filled in; unknown keys are an error."""
    unknown = set(audioset or {}) - set(POOL_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown generator.audioset setting(s) {sorted(unknown)}; known: {sorted(POOL_DEFAULTS)}")
    return {**POOL_DEFAULTS, **(audioset or {})}


def default_root(profile: str = "mini") -> Path:
    """Where a generated profile's dataset lives: the folder holding its ``tau22_dir`` (``<data dir>/mini``
    for the mini profile, ``<data dir>/smoke`` for the smoke profile)."""
    return data_paths(profile).tau22_dir.parent


# --- planning ------------------------------------------------------------------------------------

def plan_recordings(seed: int, cities, train_locations_per_scene: int, train_segments_per_scene: int,
                    parallel_segments_per_device: int, test_locations_per_scene: int,
                    test_segments_per_location: int = 1, test_devices_per_segment: int = len(DEVICES)) -> list[dict]:
    """Every 10 s recording: scene, city, location id, segment id, devices and whether it is a test one.

    Each scene's test recordings are made at ``test_locations_per_scene`` unseen locations, ``test_segments_per_location``
    recordings at each, every recording by ``test_devices_per_segment`` devices taken in turn, so that each
    device records equally often (real TAU22 test split: 2,064 recordings at 146 locations, about 1.4 devices
    per recording). A location and its first recording are drawn in the scene's turn, the further recordings
    after every scene's training recordings."""
    rng = synth.rng_for(seed, "plan")
    next_location = {c: int(rng.integers(0, 50)) for c in cities}
    used_segments: set[int] = set()
    recordings, test_places = [], []

    def new_location(city):
        next_location[city] += int(rng.integers(1, 30))
        return next_location[city]

    def new_segment():
        while True:
            s = int(rng.integers(100, 60000))
            if s not in used_segments:
                used_segments.add(s)
                return s

    for scene in SCENES:
        cities_train = rng.choice(cities, size=train_locations_per_scene, replace=True)
        locations = [(c, new_location(c)) for c in cities_train]
        scene_recs = []
        for k in range(train_segments_per_scene):
            city, loc = locations[k % len(locations)]
            scene_recs.append(dict(scene=scene, city=str(city), location=loc, segment=new_segment(),
                                   devices=["a"], test=False))
        for dev in PARALLEL_DEVICES:
            for j in rng.choice(len(scene_recs), size=parallel_segments_per_device, replace=False):
                scene_recs[j]["devices"].append(dev)
        for _ in range(test_locations_per_scene):
            city = str(rng.choice(cities))
            test_places.append(dict(scene=scene, city=city, location=new_location(city), segments=[new_segment()]))
        recordings.extend(scene_recs)
    turn = 0  # devices taken in turn over all test recordings
    for place in test_places:
        place["segments"] += [new_segment() for _ in range(test_segments_per_location - 1)]
        for segment in place["segments"]:
            devices = [DEVICES[(turn * test_devices_per_segment + j) % len(DEVICES)] for j in range(test_devices_per_segment)]
            turn += 1
            recordings.append(dict(scene=place["scene"], city=place["city"], location=place["location"],
                                   segment=segment, devices=devices, test=True))
    return recordings


def clip_name(rec: dict, index: int, device: str) -> str:
    return f"audio/{rec['scene']}-{rec['city']}-{rec['location']}-{rec['segment']}-{index}-{device}.wav"


def nested_splits(train: pd.DataFrame, seed: int) -> dict[int, pd.DataFrame]:
    """Nested splits 5 ⊂ 10 ⊂ 25 ⊂ 50 ⊂ 100, stratified by scene and device (as the real ones)."""
    rng = synth.rng_for(seed, "splits")
    order = []
    for _, group in train.groupby(["scene_label", "device"], sort=True):
        perm = group.index.to_numpy()[rng.permutation(len(group))]
        order.append(perm)
    out = {}
    for s in SPLITS:
        keep = np.concatenate([perm[: max(1, int(round(len(perm) * s / 100)))] for perm in order])
        out[s] = train.loc[np.sort(keep)]
    return out


# --- rendering (runs in worker processes) -----------------------------------------------------------

def _write_wav(path: Path, wave: np.ndarray, sr: int, subtype: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, sr, subtype=subtype)


def _render_recording(args) -> list[tuple]:
    seed, rec, root, clips_per_segment = args
    identifier = f"{rec['city']}-{rec['location']}"
    cfg = synth.scene_config(seed, rec["scene"], rec["city"], identifier)
    latent = synth.render_scene(seed, cfg, (rec["scene"], identifier, rec["segment"]), clips_per_segment, TAU_SR)
    rows = []
    for dev in rec["devices"]:
        wave = synth.apply_device(seed, dev, latent, TAU_SR, (identifier, rec["segment"]))
        for i in range(clips_per_segment):
            name = clip_name(rec, i, dev)
            _write_wav(Path(root) / name, wave[i * TAU_SR:(i + 1) * TAU_SR], TAU_SR, "PCM_24")
            rows.append((name, rec["scene"], identifier, dev, rec["test"]))
    return rows


def _render_pool_clip(args) -> bytes | None:
    """Render one pool clip at its segment's length: written as a WAV at ``path``, or returned as mp3 bytes
    when ``path`` is None (the HDF5 layout)."""
    seed, item, path, _nominal, sr = args
    seconds = item["end_seconds"] - item["start_seconds"]
    if item["in_domain"]:
        city = f"yt{item['index'] % 17}"
        cfg = synth.scene_config(seed, item["kind"], city, f"{city}-{item['YTID']}")
        x = synth.render_scene(seed, cfg, ("pool", item["YTID"]), seconds, sr)
    else:
        x = synth.render_ood(seed, item["kind"], item["YTID"], seconds, sr)
    x = synth.apply_device(seed, f"yt-{item['YTID']}", x, sr, item["YTID"])
    if path is None:
        return encode_mp3(x, sr)
    _write_wav(Path(path), x, sr, "PCM_16")
    return None


def _run_parallel(fn, jobs, desc, workers):
    if workers <= 1:
        return [fn(j) for j in progress_bar(jobs, desc=desc)]
    with ProcessPoolExecutor(workers) as ex:
        return list(progress_bar(ex.map(fn, jobs, chunksize=4), total=len(jobs), desc=desc))


# --- AudioSet pool ------------------------------------------------------------------------------------

def _ytid(rng) -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(rng.choice(list(alphabet), size=11))


def plan_pool(seed: int, counts: dict[str, int], in_domain_fraction: float, seconds: float,
              short_fraction: float = 0.0, absent_fraction: float = 0.0) -> pd.DataFrame:
    """Every pool segment: list, YTID, start/end, labels, in-domain flag, sound kind and whether its audio
    is absent. A ``short_fraction`` of segments is shorter than ``seconds`` (0.1 to 0.9 of it, as the real
    short segments span 1 to 9 s of 10); an ``absent_fraction`` has no audio."""
    shape = synth.rng_for(seed, "pool-shape")
    rng = synth.rng_for(seed, "pool")
    used, rows, index = set(), [], 0
    for list_name in SEGMENT_LISTS:
        for _ in range(counts[list_name]):
            ytid = _ytid(rng)
            while ytid in used:
                ytid = _ytid(rng)
            used.add(ytid)
            in_domain = bool(rng.random() < in_domain_fraction)
            if in_domain:
                kind = str(rng.choice(SCENES))
                options = HARD_LABELS if rng.random() < HARD_FRACTION else SCENE_LABELS[kind]
            else:
                kind = str(rng.choice(synth.OOD_KINDS))
                options = OOD_LABELS[kind]
            labels = list(options[int(rng.integers(len(options)))])
            if not in_domain and rng.random() < OOD_OUTSIDE_FRACTION:
                labels.append("/t/dd00128")
            start = float(rng.integers(0, 30)) * 10.0
            length = seconds * (int(shape.integers(1, 10)) / 10 if shape.random() < short_fraction else 1.0)
            absent = bool(shape.random() < absent_fraction)
            rows.append(dict(list=list_name, YTID=ytid, start_seconds=start, end_seconds=round(start + length, 3),
                             positive_labels=labels, in_domain=in_domain, kind=kind, index=index, absent=absent))
            index += 1
    return pd.DataFrame(rows)


def write_pool_audio(pool: pd.DataFrame, pool_dir: Path, seed: int, cfg: dict, workers: int) -> None:
    """The present pool clips in the configured layout: ``audio/<list>/Y<YTID>.wav`` (16-bit PCM) or
    ``audio/<list>_mp3.hdf`` (the anchors' HDF5 of mp3 bytes, with packed targets over the class index)."""
    layout = cfg["layout"]
    if layout not in ("files", "hdf5"):
        raise ValueError(f"generator.audioset.layout is {layout!r}; choose files or hdf5")
    audio = pool_dir / "audio"
    jobs = [(seed, item, None if layout == "hdf5" else str(audio / item["list"] / f"Y{item['YTID']}.wav"),
             cfg["clip_seconds"], cfg["sample_rate"]) for item in pool.to_dict("records")]
    encoded = _run_parallel(_render_pool_clip, jobs, f"mini AudioSet clips ({layout})", workers)
    if layout == "files":
        return
    classes = read_class_index(pool_dir / "class_labels_indices.csv")
    for list_name in SEGMENT_LISTS:
        rows = np.flatnonzero((pool["list"] == list_name).to_numpy())
        part = pool.iloc[rows]
        write_hdf5(audio / f"{list_name}{HDF5_SUFFIX}", [f"Y{y}.mp3" for y in part["YTID"]],
                   [encoded[i] for i in rows], multi_hot(part["positive_labels"], classes))


def write_class_files(out: Path) -> None:
    """The mini ontology and class index: a real subset of AudioSet (see ``resources/audioset_subset.json``)."""
    subset = json.loads((paths.RESOURCES_DIR / "audioset_subset.json").read_text())
    (out / "ontology.json").write_text(json.dumps(subset["ontology"], indent=1) + "\n")
    lines = ["index,mid,display_name"] + [f'{i},{mid},"{name}"' for i, (mid, name) in enumerate(subset["class_labels"])]
    (out / "class_labels_indices.csv").write_text("\n".join(lines) + "\n")


# --- driver ---------------------------------------------------------------------------------------------

def generate(out_dir: str | Path | None = None, seed: int = 2024, cities=("barcelona", "paris"),
             train_locations_per_scene: int = 9, train_segments_per_scene: int = 27,
             parallel_segments_per_device: int = 2, test_locations_per_scene: int = 2,
             test_segments_per_location: int = 9, test_devices_per_segment: int = 1, clips_per_segment: int = 10, audioset: dict | None = None, workers: int | None = None) -> Path:
    """Generate the mini dataset into ``out_dir`` (replacing it) and return its path."""
    out_dir = Path(out_dir) if out_dir else default_root()
    pool_cfg = pool_settings(audioset)
    settings = dict(seed=seed, cities=list(cities), train_locations_per_scene=train_locations_per_scene,
                    train_segments_per_scene=train_segments_per_scene,
                    parallel_segments_per_device=parallel_segments_per_device,
                    test_locations_per_scene=test_locations_per_scene,
                    test_segments_per_location=test_segments_per_location,
                    test_devices_per_segment=test_devices_per_segment, clips_per_segment=clips_per_segment,
                    audioset=pool_cfg)
    workers = workers or min(4, os.cpu_count() or 1)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tau, splits_dir, pool_dir = tmp / "tau22", tmp / "dcase2024_task1", tmp / "audioset"
        for d in (tau / "audio", splits_dir, pool_dir):
            d.mkdir(parents=True)
        recordings = plan_recordings(seed, list(cities), train_locations_per_scene, train_segments_per_scene,
                                     parallel_segments_per_device, test_locations_per_scene,
                                     test_segments_per_location, test_devices_per_segment)
        jobs = [(seed, rec, str(tau), clips_per_segment) for rec in recordings]
        rows = [r for rs in _run_parallel(_render_recording, jobs, "mini TAU22 recordings", workers)
                for r in rs]
        clips = pd.DataFrame(rows, columns=["filename", "scene_label", "identifier", "source_label", "test"])
        clips = clips.sort_values("filename").reset_index(drop=True)
        clips[["filename", "scene_label", "identifier", "source_label"]].to_csv(tau / "meta.csv", sep="\t", index=False)
        train = clips[~clips["test"]].assign(device=lambda f: f["source_label"])
        splits = nested_splits(train, seed)
        for s, frame in splits.items():
            frame[["filename", "scene_label"]].to_csv(splits_dir / f"split{s}.csv", sep="\t", index=False)
        clips[clips["test"]][["filename", "scene_label"]].to_csv(splits_dir / "test.csv", sep="\t", index=False)

        counts = {"unbalanced_train_segments": pool_cfg["n_unbalanced"],
                  "balanced_train_segments": pool_cfg["n_balanced"], "eval_segments": pool_cfg["n_eval"]}
        pool = plan_pool(seed, counts, pool_cfg["in_domain_fraction"], pool_cfg["clip_seconds"],
                         pool_cfg["short_fraction"], pool_cfg["absent_fraction"])
        write_class_files(pool_dir)
        created = f"by asc_lib.data.minidata v{GENERATOR_VERSION} (seed {seed})"
        for list_name in SEGMENT_LISTS:
            write_segments(pool_dir / f"{list_name}.csv", pool[pool["list"] == list_name], created)
        pool[["list", "YTID", "in_domain", "kind", "absent"]].to_csv(pool_dir / "mini_truth.csv", index=False)
        write_pool_audio(pool[~pool["absent"]], pool_dir, seed, pool_cfg, workers)

        manifest = dict(
            generator_version=GENERATOR_VERSION, settings=settings,
            counts=dict(meta=len(clips), **{f"split{s}": len(f) for s, f in splits.items()},
                        test=int(clips["test"].sum()),
                        **{name: counts[name] for name in SEGMENT_LISTS},
                        pool_in_domain=int(pool["in_domain"].sum()),
                        pool_short=int((pool["end_seconds"] - pool["start_seconds"] < pool_cfg["clip_seconds"] - 1e-6).sum()),
                        pool_absent=int(pool["absent"].sum())),
        )
        write_json(tmp / "MANIFEST.json", manifest)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def read_manifest(root: str | Path | None = None) -> dict | None:
    """The manifest of a complete mini dataset, or None if there is none."""
    path = Path(root or default_root()) / "MANIFEST.json"
    return json.loads(path.read_text()) if path.is_file() else None


def ensure(profile: str = "mini", root: str | Path | None = None) -> Path:
    """Generate the mini dataset unless a complete one with the profile's settings is already there."""
    settings = default_settings(profile)
    root = Path(root or default_root(profile))
    manifest = read_manifest(root)
    wanted = {**settings, "audioset": pool_settings(settings.get("audioset"))}
    if manifest and manifest.get("generator_version") == GENERATOR_VERSION and manifest.get("settings") == wanted:
        return root
    return generate(root, **settings)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Generate the embedded mini DCASE / AudioSet dataset.")
    parser.add_argument("--profile", default="mini", help="profile whose `generator` settings to use")
    parser.add_argument("--out", default=None, help="output folder (default: the profile's, e.g. data/mini)")
    parser.add_argument("--force", action="store_true", help="regenerate even if a complete dataset exists")
    args = parser.parse_args(argv)
    start = time.time()
    if args.force:
        out = generate(args.out or default_root(args.profile), **default_settings(args.profile))
    else:
        out = ensure(args.profile, args.out)
    manifest = read_manifest(out)
    print(f"{args.profile} dataset ready in {out} ({time.time() - start:.0f} s): {json.dumps(manifest['counts'])}")


if __name__ == "__main__":
    main()
