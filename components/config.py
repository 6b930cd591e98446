"""The one typed, frozen schema that ``params.yaml`` is read into (unknown keys are errors)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from components.data.labels import KEYWORDS, check_keywords
from components.errors import ConfigError


class Section(BaseModel):
    """Base of every params section: frozen, strict about unknown keys and about types."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
# A [low, high] pair; YAML gives a list, Python code may give a tuple.
Pair = Annotated[tuple[int, int], BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v)]
Range = Annotated[
    tuple[float, float], BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v)
]


def _keyword_list(value: Any) -> Any:
    """YAML reads unquoted yes/no/on/off as booleans: say so instead of 'not a string'."""
    if isinstance(value, str):
        raise ValueError(
            f"expected a list of keywords, got the string {value!r}: write [{value!r}]"
        )
    if isinstance(value, list | tuple):
        flags = [v for v in value if isinstance(v, bool)]
        if flags:
            raise ValueError(
                f"{flags[0]!r} in the list is a YAML boolean: unquoted yes, no, on and off are "
                'read as true/false, so quote the words ("yes", "no", "on", "off")'
            )
        return tuple(value)
    return value


# Words or short phrases; each is checked (labels.check_keywords) and its spaces normalized.
Keywords = Annotated[
    tuple[str, ...], BeforeValidator(_keyword_list), AfterValidator(check_keywords)
]


class PathParams(Section):
    """Where the stages read and write, relative to the workspace. ``dvc.yaml`` takes its deps
    and outs from here (``${paths.prepared}``), so each path is declared once."""

    corpus: str = "data/corpus"  # the synthesized corpus (corpus stage)
    external: str = "data/external"  # a user's own corpus lives here (a dependency of prepare)
    prepared: str = "data/prepared"  # splits, audio, features, manifest (prepare)
    supernet: str = "models/supernet.ckpt"  # the trained super-network (supernet)
    search: str = "search"  # arch.json, lut.json, history.json, pareto.png (search)
    searched: str = "models/searched.pt"  # the discovered network, trained (search)
    final: str = "models/final.pt"  # after federated fine-tuning (finetune)
    export: str = "export"  # the ONNX graphs and the device bundle (export)
    metrics: str = "metrics"  # metrics/<stage>.json (every stage)
    report: str = "report.html"  # the HTML page of the latest run (edgelearn report)


class BaseParams(Section):
    seed: int = 1234
    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_root: str = "mlruns/artifacts"
    experiment: str = "edgelearn"


class CorpusParams(Section):
    """The corpus synthesized in Speech Commands layout by espeak-ng, flite and Festival (used
    when prepare.source is ``synthetic``); the pools' voices and channels are in
    ``components/data/speakers.py``."""

    num_server_speakers: Annotated[int, Field(ge=4)] = 120
    num_client_speakers: Annotated[int, Field(ge=1)] = 120
    keyword_repeats: Annotated[int, Field(ge=1)] = 2
    unknown_words_per_speaker: Annotated[int, Field(ge=0)] = 4
    noise_seconds: Annotated[float, Field(gt=1.0)] = 60.0
    server_snr_db: Range = (10.0, 30.0)
    client_snr_db: Range = (0.0, 12.0)
    espeak_share: Fraction = 0.4  # of each pool; the rest speak with recorded people's voices
    max_shift_s: Annotated[float, Field(ge=0.0, le=0.5)] = 0.15
    workers: Annotated[int, Field(ge=0)] = 0
    # near-misses of the keywords (rhymes, shared onsets, the keyword inside a longer word),
    # spoken as `_unknown_` words on top of unknown_words_per_speaker generic ones
    near_misses_per_speaker: Annotated[int, Field(ge=0)] = 2
    near_misses_per_kind: Annotated[int, Field(ge=0)] = 3  # per keyword and kind
    # running speech: phrases of 3-5 common words (never a keyword) cropped to a random second,
    # spoken as `_unknown_` into the `phrases/` folder; what a device hears between keywords
    unknown_phrases_per_speaker: Annotated[int, Field(ge=0)] = 2

    @model_validator(mode="after")
    def _ranges_ordered(self) -> CorpusParams:
        for name in ("server_snr_db", "client_snr_db"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: low end {lo} is above high end {hi}")
        return self


class FeatureParams(Section):
    """Log-mel frontend, shared by prepare (training features) and export (in-graph features)."""

    sample_rate: Literal[16000] = 16000
    clip_samples: Annotated[int, Field(gt=0)] = 16000
    n_fft: Annotated[int, Field(gt=0)] = 400
    hop_length: Annotated[int, Field(gt=0)] = 160
    n_mels: Annotated[int, Field(gt=0)] = 40
    f_min: Annotated[float, Field(ge=0.0)] = 20.0
    f_max: Annotated[float, Field(gt=0.0)] = 7600.0

    @model_validator(mode="after")
    def _band_inside_nyquist(self) -> FeatureParams:
        if not self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need f_min < f_max <= sample_rate/2, got {self.f_min}, {self.f_max}")
        return self


class PrepareParams(Section):
    # the classes are these, then _unknown_ and _silence_; a phrase's corpus folder has
    # underscores for spaces ("hey edge" -> hey_edge/), its label is the phrase
    keywords: Keywords = KEYWORDS
    source: Literal["synthetic", "speech_commands"] = "synthetic"
    speech_commands_dir: str = "data/external/speech_commands"
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.1
    client_fraction: Fraction = 0.5
    client_test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.3
    min_client_clips: Annotated[int, Field(ge=2)] = 4
    max_clients: Annotated[int, Field(ge=0)] = 0
    unknown_ratio: Annotated[float, Field(ge=0.0)] = 4.0
    silence_ratio: Annotated[float, Field(ge=0.0)] = 1.0
    min_duration_s: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25

    @model_validator(mode="after")
    def _server_split_leaves_training(self) -> PrepareParams:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must leave speakers for training")
        return self


class StageParams(Section):
    channels: Annotated[int, Field(gt=0)]
    blocks: Annotated[int, Field(ge=1)]
    stride: Annotated[int, Field(ge=1)] = 1


def _default_stages() -> list[StageParams]:
    return [
        StageParams(channels=16, blocks=4, stride=1),
        StageParams(channels=32, blocks=4, stride=2),
        StageParams(channels=48, blocks=4, stride=2),
    ]


class SupernetParams(Section):
    """NetAdaptV2 super-network: the search space and how it is trained."""

    stages: list[StageParams] = Field(default_factory=_default_stages)
    block: Literal["inverted", "bypass"] = "inverted"  # searchable blocks (components/model)
    expand: Annotated[int, Field(ge=1)] = 2  # inverted: the widest hidden width, x channels
    stem_stride: Pair = (2, 4)
    width_step: Annotated[int, Field(gt=0)] = 16
    epochs: Annotated[int, Field(ge=1)] = 34
    batch_size: Annotated[int, Field(ge=1)] = 64
    lr: Annotated[float, Field(gt=0.0)] = 2e-2
    weight_decay: Annotated[float, Field(ge=0.0)] = 1e-2
    label_smoothing: Fraction = 0.05
    full_fraction: Fraction = 0.125  # ODO: samples per batch that train the full network
    smallest_fraction: Fraction = 0.0  # ... and the smallest
    depth_fraction: Fraction = 0.25  # ... and a uniform number of kept layers; the rest: any widths
    distill_weight: Fraction = 0.0  # in-place distillation from the full network (0 = off)
    time_masks: Annotated[int, Field(ge=0)] = 0  # SpecAugment time masks (off: docs/benchmarks.md)
    time_mask_max: Annotated[int, Field(ge=0)] = 12
    freq_masks: Annotated[int, Field(ge=0)] = 2
    freq_mask_max: Annotated[int, Field(ge=0)] = 6
    time_shift_max: Annotated[int, Field(ge=0)] = 8  # frames, circular
    noise_mix: Fraction = 0.5  # share of training clips mixed with a _silence_ training clip ...
    noise_snr_db: Range = (0.0, 15.0)  # ... at a signal-to-noise ratio drawn from this range
    recalibration_batches: Annotated[int, Field(ge=1)] = 8
    eval_subnets: Annotated[int, Field(ge=1)] = 5  # fixed random sub-networks, monitored
    monitor_every: Annotated[int, Field(ge=1)] = 20  # epochs between scores (and the last one)
    report_subnets: Annotated[int, Field(ge=0)] = 8  # random sub-networks scored at the end
    accelerator: str = "cpu"  # Lightning: "gpu", "auto", ...
    devices: int | str = 1
    strategy: str = "auto"  # "ddp" for several devices
    num_threads: Annotated[int, Field(ge=0)] = 0  # torch CPU threads; 0 = torch's default

    @model_validator(mode="after")
    def _fractions_fit(self) -> SupernetParams:
        if self.full_fraction + self.smallest_fraction + self.depth_fraction > 1.0:
            raise ValueError("full_fraction + smallest_fraction + depth_fraction must be at most 1")
        for stage in self.stages:
            if stage.channels % self.width_step:
                raise ValueError(f"stage channels {stage.channels} not a multiple of width_step")
        lo, hi = self.noise_snr_db
        if lo > hi:
            raise ValueError(f"noise_snr_db: low end {lo} is above high end {hi}")
        return self


class SearchParams(Section):
    """NetAdaptV2 multi-layer coordinate descent over the super-network, on measured latency."""

    # the devices: names under configs/devices/, paths to profile YAMLs, or lut.json tables
    # measured on devices the pipeline cannot reach (edgelearn probe). One super-network,
    # one searched network per device; the first is the primary device (federated fine-tuning,
    # export/bundle), every other one gets search/devices/<name>/ and export/devices/<name>/
    profiles: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["cpu-1thread"]
    )
    budget_ms: Annotated[float, Field(gt=0.0)] | None = None  # overrides the profile's budget
    # (one profile only: milliseconds are one device's; budget_fraction holds for every device)
    budget_fraction: Annotated[float, Field(gt=0.0, le=1.0)] | None = None  # ... of the full net
    lut_import: str | None = None  # a lut.json measured elsewhere (e.g. on a phone): no measuring
    lut_width_stride: Annotated[int, Field(ge=1)] = 2  # measure every k-th width, interpolate
    lut_check_archs: Annotated[int, Field(ge=0)] = 8  # whole-network checks of the table
    lut_fit_archs: Annotated[int, Field(ge=0)] = 8  # random whole networks the table is fitted to
    candidates: Annotated[int, Field(ge=1)] = 16  # J proposals per iteration
    layers_per_candidate: Annotated[int, Field(ge=1)] = 2
    step_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1  # first latency cut / full
    step_decay: Annotated[float, Field(gt=0.0, le=1.0)] = 0.96
    max_iterations: Annotated[int, Field(ge=1)] = 100
    eval_split: Literal["val"] = "val"  # held-out server split that scores candidates
    eval_clips: Annotated[int, Field(ge=0)] = 0  # 0 = the whole split
    netadapt_v1: bool = False  # also run the NetAdapt v1 baseline (slow; bench/search.py does)
    v1_step_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.025  # NetAdapt's schedule
    v1_finetune_steps: Annotated[int, Field(ge=0)] = 40  # short-term fine-tune per v1 proposal
    # quicker timing of every candidate for the plot; 0 = the plot shows the table's predictions
    # (each timed candidate is one more device graph to export, ~2 s)
    pareto_repeats: Annotated[int, Field(ge=0)] = 0
    max_measure_rounds: Annotated[int, Field(ge=1)] = 3  # re-search if the measured figure fails
    train_epochs: Annotated[int, Field(ge=1)] = 17  # training of the discovered network
    # inherited: MCD's and random search's winners trained on from the super-network's weights
    # (the uniform baseline is another network and starts from scratch); scratch: random weights
    train_from: Literal["scratch", "inherited"] = "inherited"
    train_baselines: bool = True  # train the uniform and random winners the same way

    @model_validator(mode="before")
    @classmethod
    def _renamed_profile(cls, data: Any) -> Any:
        if isinstance(data, dict) and "profile" in data:
            raise ValueError(
                f"`profile` is now `profiles`, a list of devices (write profiles: "
                f"[{data['profile']}])"
            )
        return data

    @model_validator(mode="after")
    def _distinct_profiles(self) -> SearchParams:
        if len(set(self.profiles)) < len(self.profiles):
            raise ValueError(f"profiles lists a device twice: {self.profiles}")
        return self


class PvtParams(Section):
    """Partial Variable Training: which variables (tensors) a client trains in a round."""

    strategy: Literal["all", "random", "fixed"] = "all"  # all = every variable (FedAvg)
    # random: the share of the candidate variables each client trains per round
    trainable_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.08
    budget: Literal["count", "size"] = "count"  # random: fraction of tensors, or of parameters
    min_depth: Fraction = 0.5  # random: candidates are layers at this relative depth or deeper
    fixed: list[str] = Field(default_factory=lambda: ["head.*"])  # fixed: variable name globs


class OmcParams(Section):
    """Online Model Compression: clients keep weight matrices quantized, transfers too."""

    enabled: bool = False
    bits: Annotated[int, Field(ge=1, le=8)] = 8
    weight_fraction: Fraction = 1.0  # share of weight matrices compressed (largest first)
    stochastic_rounding: bool = True
    transform: Literal["minmax", "mse"] = "mse"  # per-variable scale/offset choice


class ServerOptimizerParams(Section):
    """Applied to the averaged update: sgd lr=1 momentum=0 is FedAvg; adam is FedAdam."""

    optimizer: Literal["sgd", "adam"] = "adam"
    lr: Annotated[float, Field(gt=0.0)] = 0.01
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    tau: Annotated[float, Field(gt=0.0)] = 1e-3  # adam: adaptivity floor (FedAdam's tau)


class ServerLearningParams(Section):
    """Federated learning with server learning (Mai et al. 2023): after each counted round the
    server takes SGD steps of its own on the server pool's training clips (the data the super-
    network learned from), so fitting the clients' voices does not erase the rest."""

    steps: Annotated[int, Field(ge=0)] = 20  # 0 = off (plain FedAvg / FedAdam)
    batch_size: Annotated[int, Field(ge=1)] = 32
    lr: Annotated[float, Field(gt=0.0)] = 0.05  # plain SGD, as the clients
    # the learning rate falls linearly from lr in the first round to lr * lr_decay_to in the last
    # (the paper's decaying server share): 1 = constant, 0 = the last round takes no step
    lr_decay_to: Fraction = 1.0
    # share of each server batch mixed with a _silence_ clip of the server's training split at an
    # SNR from noise_snr_db (as supernet.noise_mix does for the server's training): 0 = off
    noise_mix: Fraction = 0.0
    noise_snr_db: Range = (0.0, 15.0)

    @model_validator(mode="after")
    def _range_ordered(self) -> ServerLearningParams:
        lo, hi = self.noise_snr_db
        if lo > hi:
            raise ValueError(f"noise_snr_db: low end {lo} is above high end {hi}")
        return self


class FaultParams(Section):
    """Simulation only: share of sampled clients told to commit each fault."""

    crash: Fraction = 0.0  # raise in the ClientApp
    timeout: Fraction = 0.0  # reply after the round's deadline (as a vanished client)
    nan: Fraction = 0.0  # upload NaN values
    bad_shape: Fraction = 0.0  # upload one value short of the declared shapes
    huge_norm: Fraction = 0.0  # upload values scaled by 1e4
    # realistic bad updates, of an honest size or close to it (delta = trained - received):
    sign_flip: Fraction = 0.0  # upload received - delta
    scaled: Fraction = 0.0  # upload received + k * delta, k uniform in [5, 20] per client round
    random: Fraction = 0.0  # upload received + Gaussian noise with the norm of delta, per variable

    @model_validator(mode="after")
    def _rates_sum_to_at_most_one(self) -> FaultParams:
        if sum(self.model_dump().values()) > 1.0:
            raise ValueError("fault rates must sum to at most 1")
        return self


class SimulationParams(Section):
    """Flower's simulation engine on Ray: local by default, a Ray cluster by address."""

    num_cpus: Annotated[int, Field(ge=1)] = 2  # CPUs of the local Ray instance (not with address)
    client_cpus: Annotated[float, Field(gt=0.0)] = 1.0  # per ClientApp worker: cpus / this workers
    client_gpus: Annotated[float, Field(ge=0.0)] = 0.0
    client_threads: Annotated[int, Field(ge=1)] = 1  # torch threads inside a worker
    address: str = ""  # "" = start Ray here; "HOST:6379" (a head's GCS) joins a cluster


class ScreeningParams(Section):
    """The cohort check: a round's accepted updates judged against each other, per variable."""

    cohort: bool = True  # false = the absolute checks (shape, NaN, max_update_norm) only
    min_cohort: Annotated[int, Field(ge=3)] = 3  # accepted clients a variable needs to be judged
    # an outlier's update norm on a variable has a modified z-score above outlier_z AND is
    # more than outlier_ratio times the cohort's median
    outlier_z: Annotated[float, Field(gt=0.0)] = 3.5
    outlier_ratio: Annotated[float, Field(ge=1.0)] = 4.0
    # direction check: reject a cosine to the cohort's coordinate-wise median update below this
    min_cosine: Annotated[float, Field(ge=-1.0, le=1.0)] | None = None  # None = off


class FinetuneParams(Section):
    """Federated fine-tuning on Flower's simulation engine with PVT and OMC."""

    rounds: Annotated[int, Field(ge=1)] = 40
    clients_per_round: Annotated[int, Field(ge=1)] = 10
    min_clients: Annotated[int, Field(ge=1)] = 2  # accepted updates a round needs to count
    local_steps: Annotated[int, Field(ge=1)] = 10
    batch_size: Annotated[int, Field(ge=1)] = 16
    client_lr: Annotated[float, Field(gt=0.0)] = 0.05  # client SGD
    max_update_norm: Annotated[float, Field(gt=0.0)] = 10.0  # reject if update/model RMS > this
    round_timeout_s: Annotated[float, Field(gt=0.0)] = 60.0
    memory_probe_every: Annotated[int, Field(ge=0)] = 5  # profile client memory every k rounds
    federated_eval: bool = True  # also evaluate on the clients through Flower, first and last
    federated_eval_clients: Annotated[int, Field(ge=0)] = 0  # 0 = every client, else a sample
    # devices: 0 = one per client speaker; N = the client speakers' clips dealt to N devices,
    # each holding clips of one speaker (a realistic population: many devices, few clips each)
    population: Annotated[int, Field(ge=0)] = 0
    server: ServerOptimizerParams = ServerOptimizerParams()
    server_learning: ServerLearningParams = ServerLearningParams()
    pvt: PvtParams = PvtParams()
    omc: OmcParams = OmcParams()
    screening: ScreeningParams = ScreeningParams()
    faults: FaultParams = FaultParams()
    simulation: SimulationParams = SimulationParams()


class ExportParams(Section):
    """ONNX export of the final model: audio in, class scores out, fp32 and int8."""

    opset: Annotated[int, Field(ge=17)] = 18
    registered_model_name: str = "edgelearn-kws"
    calibration_clips: Annotated[int, Field(ge=0)] = 512  # server training clips; 0 = all
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    quant_format: Literal["qdq", "qoperator"] = "qdq"
    per_channel: bool = True
    parity_atol: Annotated[float, Field(gt=0.0)] = 1e-4  # max |ONNX - PyTorch| of the scores
    parity_min_agreement_pct: Annotated[float, Field(ge=0.0, le=100.0)] = 99.9
    # int8: auto = ship it when it passes the gates below, off = fp32 only, required = a refused
    # int8 stops the stage (a device that runs int8 only)
    int8: Literal["auto", "off", "required"] = "auto"
    int8_max_acc_drop: Annotated[float, Field(ge=0.0)] = 1.0  # points of test accuracy
    int8_min_speedup: Annotated[float, Field(ge=0.0)] = 1.0  # fp32 latency / int8 latency
    # 7-bit weights: x86 CPUs without VNNI multiply u8 x s8 pairs into saturating int16 sums,
    # which 8-bit weights can overflow (ONNX Runtime's quantization guide); costs little accuracy
    reduce_range: bool = True
    # Streaming detection (false accepts per hour, false-reject rate): each split's keyword-free
    # stream lasts this long, and its keyword stream at most this long (clips repeat)
    stream_minutes: Annotated[float, Field(gt=0.0)] = 30.0
    # the bundle's detection_threshold: the lowest whose false accepts per hour on the server
    # validation streams stay at or below this. On the default 0.75-1 h of validation audio, 1.0
    # means none at all: the strictest this measurement resolves (products aim at < 0.1 per hour,
    # which takes tens of hours of audio to show)
    target_false_accepts_per_hour: Annotated[float, Field(ge=0.0)] = 1.0


class ScheduleParams(Section):
    cron: str = "0 2 * * *"
    timezone: str = "UTC"


class Params(Section):
    base: BaseParams = BaseParams()
    paths: PathParams = PathParams()
    corpus: CorpusParams = CorpusParams()
    features: FeatureParams = FeatureParams()
    prepare: PrepareParams = PrepareParams()
    supernet: SupernetParams = SupernetParams()
    search: SearchParams = SearchParams()
    finetune: FinetuneParams = FinetuneParams()
    export: ExportParams = ExportParams()
    schedule: ScheduleParams = ScheduleParams()


def _format_validation_error(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid parameters"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (misspelt? see `edgelearn params --schema`)")
        elif e["type"] == "value_error":  # a section-level check: its message says it all
            lines.append(f"  {key}: {e['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def params_from_dict(data: Any, source: Path | str = "<dict>") -> Params:
    """Validate an already-parsed mapping; every problem names its dotted key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(Path(str(source)), err)) from None


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's booleans (true/false only), as DVC reads and writes
    params.yaml: YAML 1.1 turns an unquoted keyword yes, no, on or off into a boolean, and
    ``dvc exp run -S`` rewrites the file with those words unquoted."""


_BOOL = "tag:yaml.org,2002:bool"
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_yaml(text: str) -> Any:
    """Parse a params file the way DVC does (YAML 1.2 booleans)."""
    return yaml.load(text, Loader=_Yaml12Loader)


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read ``params.yaml`` once into the frozen schema."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = read_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return params_from_dict(data, path)


def params_json_schema() -> str:
    return json.dumps(Params.model_json_schema(), indent=2)
