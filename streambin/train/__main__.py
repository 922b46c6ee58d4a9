"""``python -m streambin.train``: train a recipe; see ``--help``.

Examples::

    python -m streambin.train --recipe mono2binaural --data data/sim --config configs/cpu_small.yaml \
        --out runs/m2b_small
    torchrun --nproc_per_node 8 -m streambin.train --recipe apnet --data data/sim \
        --config configs/apnet_paper.yaml --out runs/apnet
    python -m streambin.train --resume runs/m2b_small/last.pt --max-steps 20000 --out runs/m2b_small
    python -m streambin.train --recipe mono2binaural --data data/sim --config configs/default_cpu.yaml \
        --init runs/m2b_small/best.pt --validate-only     # the config's losses on the val split
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from streambin.train.config import ConfigError, apply_overrides, load_config


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m streambin.train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", help="mono2binaural | apnet | multitask | sagm | avconsistency | geometry | "
                                    "sepstereo (sets model.arch and what the recipe needs)")
    p.add_argument("--data", help="data root (data.root)")
    p.add_argument("--config", help="YAML config file (defaults are the papers' values)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.ngf=16 (repeatable)")
    p.add_argument("--out", default=None, help="run directory (default runs/<recipe>)")
    p.add_argument("--init", help="start from this checkpoint's generator weights (fresh optimizer, step 0)")
    p.add_argument("--resume", help="checkpoint to resume from (its config is the base when "
                                    "--config is not given)")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps in total")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--validate-only", action="store_true",
                   help="train nothing: print the config's validation losses of the --init or --resume "
                        "weights as JSON (e.g. the starting point of a fine-tune under its loss)")
    args = p.parse_args(argv)
    if args.validate_only and not (args.init or args.resume):
        p.error("--validate-only needs the weights to score: --init or --resume")
    return args


def build_config(args: argparse.Namespace):
    """Defaults <- --config (or the resumed checkpoint's config) <- --recipe/--data/--max-steps <- --set."""
    from streambin.train.recipes import get_recipe

    overrides: List[str] = []
    if args.recipe:
        try:
            cls = get_recipe(args.recipe)
            overrides += [f"recipe={args.recipe}", f"model.arch={cls.arch}"]
            overrides += [f"model.{k}={_yaml_value(v)}" for k, v in cls.model_requires.items()]
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
    if args.data:
        overrides.append(f"data.root={args.data}")
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    overrides += args.overrides
    if args.resume and not args.config:
        from streambin.train.checkpoint import config_from_checkpoint, read_checkpoint

        return apply_overrides(config_from_checkpoint(read_checkpoint(args.resume), args.resume), overrides)
    return load_config(args.config, overrides)


def _yaml_value(v) -> str:
    """A value as the YAML text ``--set`` parses back (``True`` -> ``true``)."""
    import yaml

    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
    except ConfigError as exc:
        print(f"streambin.train: config error: {exc}", file=sys.stderr)
        return 2
    from streambin.train.trainer import Trainer, make_dataset

    train_set = make_dataset(cfg, cfg.data.train_split, train=True)
    val_set = make_dataset(cfg, cfg.data.val_split, train=False)
    out = args.out or os.path.join("runs", cfg.recipe)
    trainer = Trainer(cfg, train_set, val_set, out_dir=out, resume=args.resume, progress=not args.no_progress,
                      init=args.init)
    if args.validate_only:
        val = trainer.validate()  # every process: the sums are all-reduced
        if trainer.info.is_main:
            print(json.dumps({"weights": args.init or args.resume, "split": cfg.data.val_split,
                              "items": len(val_set), "step": trainer.step, "val": val}))
        return 0
    summary = trainer.fit()
    if trainer.info.is_main:
        print(f"done: step {summary['step']}, epoch {summary['epoch']}, last train loss "
              f"{(summary['train_loss'] or {}).get('total')}, val {summary['val']}, "
              f"checkpoints in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
