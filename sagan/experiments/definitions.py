"""The paper's experiments as named variant sets, and how a variant's config is assembled.

``attention`` (Table 1's placements), ``stabilisation`` (section 5.1's SN / TTUR curves), ``baselines``
(Table 2: SAGAN against SNGAN-projection and AC-GAN), ``small_data`` (DiffAugment's data-fraction comparison),
``objectives`` (the paper's hinge against StyleGAN2's and R3GAN's objectives), ``stacked_mnist`` (the
objectives' variants on StackedMNIST's 1000 modes, :mod:`sagan.experiments.stacked_mnist`) and
``biggan_ablation`` (BigGAN's Table 1: SAGAN, + shared embedding, + hierarchical latents, + orthogonal
regularisation; files on ``cifar10_biggan``).

Each variant is a preset under ``sagan/configs/experiments/<experiment>/<variant>.yaml`` that states
only what differs from its ``base:`` (the paper preset; ``cifar10`` for ``small_data``, whose published
comparison is on CIFAR-10). An experiment run may put the variants on
another base (``--base demo`` for minutes on a CPU): the variant file's own keys are applied on top of
that base instead. Attention placements name feature-map sizes, as the paper does (``feat32`` = after
the 32x32 stage); where the chosen base's G or D has no stage of that size (the 32px demo's D ends
its first block at 16px), the placement is dropped from that network and the summary says so; a
variant left with no block anywhere it asked for one is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..architecture import attention_sites, g_block_resolutions
from ..config import CONFIG_DIR, Config, apply_overrides, config_chain, load_config
from ..errors import UserError

EXPERIMENTS_DIR = CONFIG_DIR / "experiments"
SHARED_VARIANTS = {"stacked_mnist": "objectives"}  # experiment: the experiment whose variant files it runs

# Paper values (ImageNet 128x128, 50k samples, TF Inception, ~1M steps): SAGAN Table 1 and section 5.2's
# text. Where the paper gives no number (curves only, feat16, most residual IS), there is none.
PAPER_VALUES: dict[str, dict[str, dict[str, float]]] = {
    "attention": {
        "no_attention": {"fid": 22.96, "is": 42.87},
        "feat8": {"fid": 22.98},
        "feat32": {"fid": 18.28, "is": 51.43},
        "feat64": {"fid": 18.65, "is": 52.52},
        "residual_feat8": {"fid": 42.13},
        "residual_feat32": {"fid": 27.33},
    },
    "stabilisation": {},
    # Table 2 (ImageNet 128x128; the baselines' numbers as the SAGAN paper quotes them; AC-GAN has no FID)
    "baselines": {"sagan": {"fid": 18.65, "is": 52.52}, "sngan": {"fid": 27.62, "is": 36.80}, "acgan": {"is": 28.5}},
}
PAPER_SOURCE = ("SAGAN (Zhang et al. 2019) Table 1 / section 5.2: ImageNet 128x128, 50k samples, TF Inception "
                "(the tf1 resize), about 1M steps of the paper preset")

# BigGAN ablation (issue 29): BigGAN (Brock et al. 2019) Table 1, rows 5-8 (ch 96, batch 2048, ImageNet 128x128)
PAPER_VALUES["biggan_ablation"] = {
    "sagan": {"fid": 9.54, "is": 92.98}, "shared": {"fid": 9.18, "is": 94.94},
    "hierarchical": {"fid": 8.73, "is": 98.76}, "ortho": {"fid": 8.51, "is": 99.31},
}
PAPER_SOURCES = {"biggan_ablation": "BigGAN (Brock et al. 2019) Table 1 rows 5-8: ImageNet 128x128, ch 96, batch "
                                    "2048, 50k samples, TF Inception, the best FID of the run, untruncated"}
EXPERIMENT_ORDER = {"biggan_ablation": {"sagan": 0, "shared": 1, "hierarchical": 2, "ortho": 3}}  # Table 1's rows


def z_split_problem(cfg: Config, flat: dict) -> str | None:
    """Why a variant asking for hierarchical latents cannot have them on this base (its z_dim does not
    split into G's blocks + 1 chunks), or None."""
    if not flat.get("model.hierarchical_z"):
        return None
    chunks = len(g_block_resolutions(cfg.model.resolution)) + 1
    if cfg.model.z_dim % chunks:
        return (f"not available: hierarchical latents split z into {chunks} chunks at {cfg.model.resolution}px, "
                f"the base's model.z_dim {cfg.model.z_dim} does not divide (use a base with a multiple of {chunks})")
    return None


@dataclass
class Variant:
    name: str
    config: Config | None  # None: not available on this base
    notes: list[str] = field(default_factory=list)


def experiment_names() -> list[str]:
    return sorted([p.name for p in EXPERIMENTS_DIR.iterdir() if p.is_dir()] + list(SHARED_VARIANTS))


def variant_folder(experiment: str):
    """The folder of ``experiment``'s variant files (another experiment's where it shares them)."""
    return EXPERIMENTS_DIR / SHARED_VARIANTS.get(experiment, experiment)


def variant_names(experiment: str) -> list[str]:
    folder = variant_folder(experiment)
    if not folder.is_dir():
        raise UserError(f"unknown experiment {experiment!r}; experiments are {', '.join(experiment_names())}")
    order = {"no_attention": 0, "sn_d_only": 0, "sn_gd": 1, "sn_gd_ttur": 2,  # the paper's reading order
             "data100": 0, "data100_diffaug": 1, "data20": 2, "data20_diffaug": 3, "data10": 4, "data10_diffaug": 5,
             "acgan": 0, "sngan": 1, "sagan": 2, "hinge": 0, "ns_r1": 1, "hinge_r1r2": 2, "rpgan_r1r2": 3}
    order.update(EXPERIMENT_ORDER.get(experiment, {}))
    names = [p.stem for p in folder.glob("*.yaml")]

    def key(n: str):
        k = n.removeprefix("residual_").removeprefix("feat")
        return (n.startswith("residual_"), order.get(n, 5), int(k) if k.isdigit() else 0, n)

    return sorted(names, key=key)


def select_variants(experiment: str, spec: str | None) -> list[str]:
    names = variant_names(experiment)
    if not spec:
        return names
    chosen = [v.strip() for v in spec.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in names]
    if unknown:
        raise UserError(f"--variants: {unknown[0]!r} is not a variant of {experiment}; choose from {', '.join(names)}")
    return chosen


def _own_keys(experiment: str, variant: str) -> dict:
    """What the variant file itself states (not what it inherits)."""
    path, raw = config_chain(variant_folder(experiment) / f"{variant}.yaml")[-1]
    return {k: v for k, v in raw.items() if k not in ("base", "name")}


def build_variant(experiment: str, variant: str, base: str, overrides: dict) -> Variant:
    """The config of ``variant`` on ``base`` (a preset name or YAML path) with the experiment-wide
    ``overrides`` (``{"train.max_steps": ...}``) applied last."""
    cfg = load_config(base)
    own = _own_keys(experiment, variant)
    flat = {f"{s}.{k}": v for s, keys in own.items() if isinstance(keys, dict) for k, v in keys.items()}
    notes = []
    r = cfg.model.resolution
    available = {k: list(sites) for k, sites in attention_sites(cfg.model).items()}
    asked_any = kept_any = False
    for key, allowed in available.items():
        if f"model.{key}" not in flat:
            continue
        asked = list(flat[f"model.{key}"] or [])
        kept = [x for x in asked if x in allowed]
        asked_any, kept_any = asked_any or bool(asked), kept_any or bool(kept)
        if kept != asked:
            net = "G" if key == "g_attn" else "D"
            notes.append(f"{net} at {r}px has no {'/'.join(f'{x}px' for x in asked if x not in kept)} stage: "
                         f"no block there in {net}")
        flat[f"model.{key}"] = kept
    if asked_any and not kept_any:
        return Variant(variant, None, notes + [f"not available at {r}px"])
    if flat.get("model.d_cond") == "ac" and cfg.model.num_classes == 0:
        return Variant(variant, None, notes + ["not available: an auxiliary classifier needs classes, the base is "
                                               "unconditional"])
    if z_split_problem(cfg, flat):  # BigGAN ablation on a base whose z_dim does not split
        return Variant(variant, None, notes + [z_split_problem(cfg, flat)])
    cfg = apply_overrides(cfg, {**flat, **overrides, "name": f"{experiment}-{variant}"})
    return Variant(variant, cfg, notes)
