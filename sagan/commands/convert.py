"""``python -m sagan.commands.convert`` / ``sagan-convert``: released weights -> a sagan checkpoint."""

from __future__ import annotations

import click

from ..errors import report_user_errors
from ..convert.studiogan import convert_studiogan, describe
from .options import Group, set_option

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(cls=Group, context_settings=CONTEXT)
def main():
    """Convert released weights into a sagan checkpoint (sample, evaluate or fine-tune without training).

    \b
    Examples:
      sagan-convert studiogan --ckpt-dir ~/Downloads/ImageNet-SAGAN --out sagan_studiogan.pt
      python sample.py --checkpoint sagan_studiogan.pt --out grid.png --classes 1,207,360,980
      python evaluate.py metrics --ref refs/imagenet128_train.npz --checkpoint sagan_studiogan.pt --out report.json
    """


@main.command()
@click.option("--ckpt-dir", required=True, metavar="DIR",
              help="StudioGAN's checkpoint folder, holding model=G-best-weights-step=N.pth, model=D-... "
                   "(and model=G_ema-... if the run had an EMA generator).")
@click.option("--out", required=True, metavar="FILE.pt", help="The sagan checkpoint to write.")
@click.option("--which", type=click.Choice(["best", "current"]), default="best", show_default=True,
              help="StudioGAN's best-FID save or its latest one.")
@click.option("--config", default=None, metavar="PRESET|YAML",
              help="Our preset the weights fit (widths, z_dim, attention placement), e.g. cifar10, cifar10_sngan, "
                   "tiny_imagenet, imagenet128, cifar10_biggan, biggan128; resolution, classes and SN in G come "
                   "from the tensors, StudioGAN's "
                   "BN/SN eps and in-place-ReLU shortcut are set for you.  [default: the whole architecture read "
                   "from the tensors' shapes, on the preset of that resolution]")
@set_option
@click.option("--class-names", default=None, metavar="FILE",
              help="Text file with one class name per line (class-index order), for captions and folders.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file that is not a sagan checkpoint.")
@report_user_errors
def studiogan(ckpt_dir, out, which, config, overrides, class_names, overwrite):
    """PyTorch-StudioGAN's SAGAN, SNGAN (resnet backbone) or BigGAN (big_resnet) -> one sagan checkpoint.

    \b
    Examples:
      sagan-convert studiogan --ckpt-dir ~/Downloads/ImageNet-SAGAN --out sagan_studiogan.pt
      sagan-convert studiogan --ckpt-dir ~/Downloads/CIFAR10-SAGAN --config cifar10 --out cifar10.pt
      sagan-convert studiogan --ckpt-dir ~/Downloads/CIFAR10-SNGAN --out sngan.pt    # inferred
      sagan-convert studiogan --ckpt-dir ~/Downloads/ImageNet-BigGAN-256 --config biggan128 --out biggan.pt
      sagan-convert studiogan --ckpt-dir RUN/checkpoints --which current --out last.pt
      sagan-convert studiogan --ckpt-dir DIR --out x.pt --class-names imagenet_classes.txt

    The result is exactly StudioGAN's function in eval mode (BN running statistics, stored SN vectors).
    It has no optimizer state: `train.py --resume FILE.pt` fine-tunes with fresh Adam moments.
    """

    result = convert_studiogan(ckpt_dir, out, which=which, config=config, overrides=overrides,
                               class_names_file=class_names, overwrite=overwrite)
    for line in describe(result):
        click.echo(line)
    click.echo(f"next: python sample.py --checkpoint {result.out} --out grid.png")


if __name__ == "__main__":
    main()
