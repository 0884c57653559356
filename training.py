"""The training machinery train_vae.py, train_cvae.py and train_vade.py share, so every model
trains alike: the epoch loop, the latents, a run's files as one set, resuming from
<name>.partial.pth bitwise, the data fingerprint a checkpoint records, and the shared flags.

Nothing here is a setting of the report: the hyperparameters are the constants at the top of
each training script, which pass them in (train_vae.py documents the contract of a run's files).
"""
import copy
import hashlib
import math
import os
import random
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import common
from models import build_model, seeded_name, split_seeded, train_command

ENCODE_BATCH = 256  # segments per forward pass when writing the latents (speed only)


class TrainingStopped(common.PipelineError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


def run_name(config):
    """A name that says what ran, e.g. vae_lat64_b32_lr1e-4_s42."""
    lr = f"{config['learning_rate']:.0e}".replace("e-0", "e-").replace("e+0", "e")
    beta = f"_beta{config['beta']:g}" if config["model"] not in ("autoencoder", "pooled_ae") else ""
    cond = "_cond" if config["conditional"] else ""
    return (f"{config['model']}_lat{config['latent_dim']}{cond}{beta}"
            f"_b{config['batch_size']}_lr{lr}_s{config['seed']}")


# ----------------------------------------------------------------------------
# what a run was trained on: content hashes, so a rebuilt but identical dataset still matches
def _sha1_lines(values):
    return hashlib.sha1("\n".join(map(str, values)).encode()).hexdigest()


def data_fingerprint(data_dir, segments, with_labels=False, features_path=None):
    """Identifies the data a model was trained on: the input file's bytes (mfcc.npy, or a feature
    set) and segments.csv's segment ids in order; the languages too only for a model given them,
    so labelling more songs leaves the label-free models valid."""
    path = Path(features_path) if features_path is not None else common.mfcc_path(data_dir)
    fp = {"input_file": path.name, "input_sha1": common.file_sha1(path),
          "segment_ids_sha1": _sha1_lines(segments["segment_id"].astype(str))}
    if with_labels:
        fp["languages_sha1"] = _sha1_lines(segments["language"].astype(str))
    return fp


# ----------------------------------------------------------------------------
# labels: optional; only the models given the label (config "conditional") read them
def labelled_mask(segments):
    """True where a segment has a language (an empty cell in segments.csv means unlabelled)."""
    lang = segments["language"]
    return (lang.notna() & lang.astype(str).str.strip().ne("")).to_numpy()


def label_problem(segments, source="segments.csv"):
    """Why a model given the label cannot train on these segments, or None. The report's CVAE
    conditions every segment on its language and its latents cover every segment, so it needs a
    language for every segment, and at least two languages."""
    mask = labelled_mask(segments)
    if not mask.all():
        return f"{(~mask).sum()} of {len(mask)} segments in {source} have no language"
    langs = sorted(segments["language"].astype(str).unique())
    if len(langs) < 2:
        return f"{source} holds only one language ({langs[0]})"
    return None


# ----------------------------------------------------------------------------
# checkpoints: the finished set, the unfinished run's checkpoint, stale temporary files
def partial_path(results_dir, name):
    """The unfinished run's checkpoint: a name no analysis reads."""
    return Path(results_dir) / "models" / f"{name}.partial.pth"


def finished_paths(results_dir, name):
    """(checkpoint, losses, latents) of a finished run."""
    return (common.model_path(results_dir, name), common.losses_path(results_dir, name),
            common.latents_path(results_dir, name))


def set_problem(ckpt, losses_path, latents_path):
    """Why a checkpoint and the losses and latents beside it are not one run's set, or None."""
    for key, p in (("losses_sha1", losses_path), ("latents_sha1", latents_path)):
        if not p.exists():
            return f"{p} not found"
        if key not in ckpt:
            return f"the checkpoint does not record {p}'s SHA-1 (written by an older version)"
        if ckpt[key] != common.file_sha1(p):
            return f"{p} is not the one written with the checkpoint (an interrupted save, or copied in)"
    return None


def is_done(name, config, fingerprint, results_dir, total_epochs=None):
    """True when this exact run already finished and wrote its whole set."""
    ckpt_path, losses_path, latents_path = finished_paths(results_dir, name)
    if not ckpt_path.exists():
        return False
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        latents = np.load(latents_path, mmap_mode="r")
    except Exception:  # unreadable or missing: retrain
        return False
    total = config["epochs"] if total_epochs is None else total_epochs
    return (ckpt.get("config") == config and ckpt.get("data_fingerprint") == fingerprint
            and ckpt.get("epoch") == total and set_problem(ckpt, losses_path, latents_path) is None
            and latents.shape == (config["n_segments"], config["latent_dim"]))


def rng_state(shuffle):
    """Every random state a training step draws from: Python, NumPy, torch (CPU, CUDA) and the
    shuffling generator; as tensors, lists and ints so torch.load(weights_only=True) reads it."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
             "torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state, shuffle):
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_partial(path, state, opt, shuffle, config, fingerprint, history, **extra):
    """The unfinished run after its last finished epoch (state: the model's state_dict on the
    CPU): enough to continue it exactly."""
    common.torch_save(path, {"state_dict": state, "optimizer": opt.state_dict(),
                             "config": config, "data_fingerprint": fingerprint, "epoch": len(history),
                             "loss_history": copy.deepcopy(history), "rng": rng_state(shuffle), **extra})


def _differences(old, new):
    keys = sorted(set(old) | set(new), key=str)
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def load_partial(path, config, fingerprint):
    """The unfinished run to continue (a dict, tensors on the CPU), or None; a partial checkpoint
    that cannot be continued is left for the new run to overwrite, with a line saying why."""
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        missing = {"state_dict", "optimizer", "rng"} - set(ckpt)
    except Exception as e:  # truncated, or not a checkpoint at all
        print(f"{config['run_name']}: starting over: {path} is unreadable ({type(e).__name__})")
        return None
    if missing:
        print(f"{config['run_name']}: starting over: {path} lacks {', '.join(sorted(missing))}")
        return None
    if ckpt.get("config") != config:
        print(f"{config['run_name']}: starting over: {path} was a run with other settings "
              f"({_differences(ckpt.get('config') or {}, config)})")
        return None
    if ckpt.get("data_fingerprint") != fingerprint:
        print(f"{config['run_name']}: starting over: {path} was trained on other data "
              f"(the features or segments.csv changed since)")
        return None
    return ckpt


def write_finished(results_dir, name, state, history, config, fingerprint, latents):
    """The finished set, the checkpoint last: it records the SHA-1 of the losses and latents it
    belongs with, so a set mixed by a crash between the three renames is detected (set_problem)."""
    ckpt_path, losses_path, latents_path = finished_paths(results_dir, name)
    common.write_csv(losses_path, pd.DataFrame(history, columns=common.LOSS_COLUMNS))
    common.save_npy(latents_path, np.asarray(latents, dtype=np.float32))
    common.torch_save(ckpt_path, {"state_dict": state, "config": config, "epoch": len(history),
                                  "loss_history": copy.deepcopy(history), "data_fingerprint": fingerprint,
                                  "losses_sha1": common.file_sha1(losses_path),
                                  "latents_sha1": common.file_sha1(latents_path)})


STALE_TEMP = re.compile(r"^\..+\.tmp(?P<pid>\d+)$")  # common.atomic_path's .<name>.tmp<pid>
OUTPUT_DIRS = ("models", "losses", "latents")  # what the training scripts write under results/


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or not a pid we can ask about: leave its file
    return True


def clean_stale_temps(results_dir, subdirs=OUTPUT_DIRS):
    """Remove temporary files a killed save left (SIGKILL skips atomic_path's clean-up); only
    those whose process is gone, so a run in another terminal keeps its own."""
    for sub in subdirs:
        d = Path(results_dir) / sub
        for p in sorted(d.glob(".*.tmp*")) if d.is_dir() else []:
            m = STALE_TEMP.match(p.name)
            if m and p.is_file() and not _pid_alive(int(m["pid"])):
                size = p.stat().st_size
                p.unlink()
                print(f"removed {p} ({size / 1e6:.1f} MB), left by an interrupted save")


def _check_writable_dir(path):
    """Create `path` if needed and prove a file can be written in it (a PipelineError if not)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_test{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise common.PipelineError(f"cannot write to {path} ({e.strerror or e}): choose another "
                                   f"--results-dir or make it writable") from e


def check_output_dirs(results_dir, subdirs=OUTPUT_DIRS):
    """Before the first epoch, not after it: fail at once when results cannot be written."""
    check = getattr(common, "check_writable_dir", _check_writable_dir)
    for sub in subdirs:
        check(Path(results_dir) / sub)


def prepare_results(results_dir, subdirs=OUTPUT_DIRS):
    """What every training script does first: check the outputs are writable, then clean up."""
    check_output_dirs(results_dir, subdirs)
    clean_stale_temps(results_dir)


def run_epoch(model, opt, mfcc, labels, perm, batch_size, device, desc="train"):
    """One pass over the segments in the order perm. Returns the batch-size-weighted sums of
    (loss, recon, kl) as one tensor (no per-batch .item(): the numbers stay on the device)
    and whether the model has a KL term at all (the autoencoder has none)."""
    model.train()
    has_kl = True
    sums = torch.zeros(3, device=device)
    zero = torch.zeros((), device=device)
    for start in tqdm(range(0, len(perm), batch_size), desc=desc, leave=False, disable=None):
        idx = perm[start:start + batch_size]
        # a gather from the memory-mapped file: the OS page cache keeps it in RAM after epoch 1
        x = torch.from_numpy(mfcc[idx]).to(device, non_blocking=True)
        y = labels[idx].to(device, non_blocking=True) if model.uses_labels else None
        recon, mu, logvar = model(x, y)
        loss, rec, kl = model.loss(recon, x, mu, logvar)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        has_kl = kl is not None
        sums += torch.stack([loss.detach(), rec.detach(), kl.detach() if has_kl else zero]) * len(idx)
    return sums, has_kl


def shuffled_epoch(model, opt, x, labels, shuffle, batch_size, device, desc):
    """run_epoch over a fresh permutation drawn from the generator `shuffle`; returns the means
    (loss, recon, kl), has_kl and the seconds it took. A NaN or inf is returned, not raised."""
    perm = torch.randperm(len(x), generator=shuffle).numpy()
    t0 = time.perf_counter()
    sums, has_kl = run_epoch(model, opt, x, labels, perm, batch_size, device, desc=desc)
    loss, rec, kl = (sums / len(x)).tolist()
    return loss, rec, kl, has_kl, time.perf_counter() - t0


@torch.inference_mode()
def encode_all(model, mfcc, labels, device, batch_size=ENCODE_BATCH):
    """The encoder mean (eval mode) of every segment, float32 (N, latent_dim), in file order."""
    model.eval()
    out = []
    for start in range(0, len(mfcc), batch_size):
        # np.array copies: torch wants a writable array and the memmap is read-only
        x = torch.from_numpy(np.array(mfcc[start:start + batch_size])).to(device)
        y = labels[start:start + batch_size].to(device) if model.uses_labels else None
        out.append(model.encode(x, y).float().cpu())
    return torch.cat(out).numpy()


def _state_on_cpu(model):
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train(model_name, config, data_dir, results_dir, force=False, threads=0, out_name=None):
    """Train one model and write its checkpoint, loss CSV and latents; return the full config,
    or None when the model is given the label and the segments cannot give it (one line says why).

    out_name: the file stem of the outputs (default model_name; train_seeds gives <model>_seed<S>).
    config holds the hyperparameters (latent_dim, embed_dim, beta, conditional, batch_size,
    learning_rate, epochs, seed); the data adds languages, n_languages and n_segments.
    An unfinished run of the same settings on the same data (<out_name>.partial.pth) is continued.
    Raises TrainingStopped (a PipelineError) if the loss stops being finite.
    """
    mfcc, segments = common.load_features(data_dir)  # memory-mapped; names build_dataset.py if absent
    out_name = out_name or model_name
    conditional = bool(config.get("conditional"))
    if conditional:
        problem = label_problem(segments, common.segments_path(data_dir))
        if problem:
            print(f"skipped {out_name}: it is given the language label of every segment, and {problem} "
                  f"(the label-free models train on every segment)")
            return None
        # label id = index in the sorted language names, recorded in the config
        languages = sorted(segments["language"].astype(str).unique())
        labels = torch.as_tensor(
            pd.Categorical(segments["language"].astype(str), categories=languages).codes.astype(np.int64))
    else:
        languages, labels = [], None  # a label-free model: the language column is never read
    device = common.pick_device()
    config = dict(config, model=model_name, languages=languages, n_languages=len(languages),
                  n_segments=len(mfcc), n_mfcc=common.N_MFCC, n_frames=common.N_FRAMES,
                  optimizer="adam", device=device.type)
    config["run_name"] = run_name(config)
    fingerprint = data_fingerprint(data_dir, segments, with_labels=conditional)
    if not force and is_done(out_name, config, fingerprint, results_dir):
        print(f"{config['run_name']}: already trained on these features, skipping (--force retrains)")
        return config

    # ---- seeding: Python, NumPy and torch; the shuffling has its own generator
    common.seed_everything(config["seed"])
    shuffle = torch.Generator().manual_seed(config["seed"])
    if threads > 0:
        torch.set_num_threads(threads)

    model = build_model(config).to(device)
    # fused Adam: the same update in one kernel instead of a dozen per parameter tensor
    opt = torch.optim.Adam(model.parameters(), lr=config["learning_rate"], fused=True)
    n, epochs = len(mfcc), config["epochs"]
    print(f"run {config['run_name']}: {n} segments, "
          + (f"languages {languages}, " if conditional else "no labels read, ")
          + f"{sum(p.numel() for p in model.parameters()):,} parameters, device {device}"
          + (f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else ""))

    part_path = partial_path(results_dir, out_name)
    resume = None if force else load_partial(part_path, config, fingerprint)
    history, good_state, stopped = [], None, None
    if resume is not None:  # every state an epoch reads, as the interrupted run left it
        model.load_state_dict(resume["state_dict"])
        opt.load_state_dict(resume["optimizer"])
        set_rng_state(resume["rng"], shuffle)
        history, good_state = list(resume["loss_history"]), resume["state_dict"]
        print(f"{config['run_name']}: resuming after epoch {len(history)} of {epochs} from {part_path}")
    for epoch in range(len(history) + 1, epochs + 1):
        loss, rec, kl, has_kl, seconds = shuffled_epoch(model, opt, mfcc, labels, shuffle, config["batch_size"],
                                                        device, desc=f"{model_name} {epoch}/{epochs}")
        if not all(math.isfinite(v) for v in (loss, rec, kl)):
            stopped = epoch
            break
        history.append({"epoch": epoch, "loss": loss, "recon": rec, "kl": kl if has_kl else None})
        good_state = _state_on_cpu(model)
        # after every good epoch: an interrupted run continues from here, the finished set untouched
        save_partial(part_path, good_state, opt, shuffle, config, fingerprint, history)
        kl_txt = "" if history[-1]["kl"] is None else f"  kl {kl:.2f}"
        print(f"{model_name} epoch {epoch}/{epochs}: loss {loss:.2f}  recon {rec:.2f}{kl_txt}  "
              f"{n / seconds:.0f} segments/s")

    ckpt_path = common.model_path(results_dir, out_name)
    if history:
        model.load_state_dict(good_state)  # after a NaN epoch the live weights are garbage
        latents = encode_all(model, mfcc, labels, device)
        write_finished(results_dir, out_name, good_state, history, config, fingerprint, latents)
    part_path.unlink(missing_ok=True)  # the finished set now holds everything it had
    if stopped is not None:
        kept = (f"kept the checkpoint of epoch {stopped - 1} in {ckpt_path} and its latents"
                if history else "no epoch finished, nothing was written")
        msg = (f"{out_name}: the loss became NaN or infinite in epoch {stopped}; training stopped, "
               f"{kept}. Check the features for NaN/inf or lower --lr.")
        common.log_failure(data_dir, "train", out_name, str(common.mfcc_path(data_dir)), msg)
        raise TrainingStopped(msg)
    print(f"{config['run_name']}: wrote {ckpt_path}, {common.losses_path(results_dir, out_name)}, "
          f"{common.latents_path(results_dir, out_name)}")
    return config


def model_seeds(seed, n_seeds):
    """The seeds of one model's runs; the first is the one behind the plain file names."""
    return [seed + i for i in range(n_seeds)]


def train_seeds(model_name, config, data_dir, results_dir, n_seeds, force=False, threads=0):
    """train() once per seed (config["seed"], + 1, ...): <model> files for the first seed,
    <model>_seed<S> for the others. A diverged seed does not cost the others; returns the
    TrainingStopped messages (empty when every seed finished)."""
    stopped = []
    for s in model_seeds(config["seed"], n_seeds):
        try:
            done = train(model_name, dict(config, seed=s), data_dir, results_dir, force=force,
                         threads=threads, out_name=seeded_name(model_name, s, config["seed"]))
        except TrainingStopped as e:
            stopped.append(str(e))
            continue
        if done is None:  # skipped for its labels: every other seed would be too
            break
    return stopped


# ----------------------------------------------------------------------------
# command line: the flags of every constant the training scripts share
def add_training_args(parser, latent_dim, batch_size, lr, epochs, seed, n_seeds, threads):
    """The shared flags; the defaults are the calling script's constants."""
    common.add_dir_args(parser)
    parser.add_argument("--latent-dim", type=int, default=latent_dim, help="size of the latent code")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="segments per step")
    parser.add_argument("--lr", type=float, default=lr, help="Adam learning rate")
    parser.add_argument("--epochs", type=int, default=epochs, help="passes over the data")
    parser.add_argument("--seed", type=common.seed_value, default=seed,
                        help="seed for weights, order and noise (of the first run; the others: + 1, ...)")
    parser.add_argument("--n-seeds", type=int, default=n_seeds,
                        help="runs per model, seeds --seed, --seed + 1, ...")
    parser.add_argument("--threads", type=int, default=threads,
                        help="torch CPU threads (0: torch's default)")
    parser.add_argument("--force", action="store_true", help="retrain even if this run is already done")
    return parser


def check_args(args):
    for flag in ("latent_dim", "batch_size", "epochs", "n_seeds"):
        if getattr(args, flag) < 1:
            raise common.PipelineError(f"--{flag.replace('_', '-')} must be at least 1")
    if not args.lr > 0:
        raise common.PipelineError("--lr must be positive")


def base_config(args):
    return {"latent_dim": args.latent_dim, "batch_size": args.batch_size, "learning_rate": args.lr,
            "epochs": args.epochs, "seed": args.seed}


# ----------------------------------------------------------------------------
# reading a finished run back (the analysis stages): its latents, checked against its checkpoint
def _latents_checked(data_dir, results_dir, model, path, retrain):
    """Whether results/latents/<model>.npy may be used, judged by the checkpoint written with it:
    True (one run's set, trained on the current mfcc.npy and segments.csv), False (a model given
    the label, now that segments lack one: skipped with a line), or a PipelineError naming the
    command that retrains. Latents without a checkpoint (made by hand) are used, with a note."""
    ckpt_path = common.model_path(results_dir, model)
    if not ckpt_path.exists():
        print(f"note: {ckpt_path} not found: {path} is used unchecked against the data")
        return True
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        config, fingerprint = ckpt.get("config") or {}, ckpt.get("data_fingerprint") or {}
    except Exception as e:
        raise common.PipelineError(f"{ckpt_path} is unreadable ({type(e).__name__}): re-train with `{retrain}`") from e
    segments = pd.read_csv(common.segments_path(data_dir), dtype={"segment_id": str, "song_id": str})
    if config.get("conditional"):
        problem = label_problem(segments, common.segments_path(data_dir))
        if problem:
            print(f"skipped {model}: it is given the language label of every segment, and {problem}")
            return False
    problem = set_problem(ckpt, common.losses_path(results_dir, model), path)
    if problem:
        raise common.PipelineError(f"{path} and {ckpt_path} are not one run's files: {problem}; "
                            f"re-train with `{retrain}`")
    features = common.features_dir(data_dir) / fingerprint.get("input_file", "mfcc.npy")
    now = data_fingerprint(data_dir, segments, with_labels="languages_sha1" in fingerprint,
                                     features_path=features) if features.exists() else {}
    if fingerprint != now:
        what = [name for key, name in (("input_sha1", str(features)),
                                       ("segment_ids_sha1", "the segment ids in segments.csv"),
                                       ("languages_sha1", "the languages in segments.csv"))
                if fingerprint.get(key) != now.get(key)]
        raise common.PipelineError(f"{path} was trained on other data than the current "
                            f"{' and '.join(what) or 'features'} ({ckpt_path} records what it saw): "
                            f"re-train with `{retrain}`")
    return True


def load_latents(data_dir, results_dir, model, n_segments):
    """The model's latents, checked against the segments and against the checkpoint written with
    them (the data fingerprint: mfcc.npy's bytes, segments.csv's ids, and the languages where the
    model saw them). None (with a printed line) if the model was not trained, or is given the
    label and some segments now have none. A mismatch stops the run, naming the command that
    retrains: the files come from different corpora or different runs."""
    path = common.latents_path(results_dir, model)
    dirs = "".join(f" --{flag} {d}" for flag, d, default in (("data-dir", data_dir, "data"),
                                                              ("results-dir", results_dir, "results"))
                   if str(d) != default)
    retrain = f"{train_command(model)}{dirs}"
    if not path.exists():
        print(f"skipped {model}: {path} not found (train it with `{retrain}`)")
        return None
    try:
        z = np.load(path)
    except Exception as e:
        raise common.PipelineError(f"{path} is unreadable ({e}): re-train with `{retrain}`") from e
    if z.ndim != 2 or len(z) != n_segments:
        raise common.PipelineError(
            f"{path} has {len(z) if z.ndim else 0} rows but {common.segments_path(data_dir)} "
            f"(and {common.mfcc_path(data_dir)}) has {n_segments} segments: the latents come from "
            f"another dataset; re-train with `{retrain}`")
    if not np.isfinite(z).all():
        raise common.PipelineError(f"{path} contains NaN or infinite values: re-train with `{retrain}`")
    if not _latents_checked(data_dir, results_dir, model, path, retrain):
        return None
    return z.astype(np.float32)


def model_uses_labels(results_dir, model):
    """True where the model saw the language label: the checkpoint's config says so
    ("conditional"), else the model's name does (cvae, beta_vae)."""
    path = common.model_path(results_dir, model)
    if path.exists():
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            config = ckpt.get("config", {}) if isinstance(ckpt, dict) else {}
            if "conditional" in config:
                return bool(config["conditional"])
        except Exception as e:  # an unreadable checkpoint does not stop the analysis
            print(f"note: could not read {path} ({e}); judging uses_labels by the model's name")
    return model in common.CONDITIONAL_MODELS


def discover_models(results_dir):
    """MODEL_NAMES first, then any other results/latents/<model>.npy, in name order; the other
    seeds' files (<model>_seed<S>.npy, see model_seed_runs) and VaDE's (own clusters) are left out."""
    found = sorted(p.stem for p in (Path(results_dir) / "latents").glob("*.npy"))
    found = [m for m in found if split_seeded(m)[1] is None and not m.startswith(common.OWN_CLUSTERS_PREFIX)]
    return list(common.MODEL_NAMES) + [m for m in found if m not in common.MODEL_NAMES]


def checkpoint_seed(results_dir, name):
    """The seed in results/models/<name>.pth's config, or None."""
    path = common.model_path(results_dir, name)
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True).get("config", {}).get("seed")
        except Exception:
            return None
    return None


def model_seed_runs(results_dir, model):
    """[(model seed, file stem)] for one model: the first seed's <model> (its seed read from the
    checkpoint, None without one), then every <model>_seed<S> whose latents exist, by seed."""
    runs = [(checkpoint_seed(results_dir, model), model)]
    for p in (Path(results_dir) / "latents").glob(f"{model}_seed*.npy"):
        base, s = split_seeded(p.stem)
        if base == model and s is not None:
            runs.append((s, p.stem))
    return runs[:1] + sorted(runs[1:])
