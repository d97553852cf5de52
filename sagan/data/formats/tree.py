"""Class-per-folder trees (``root/<class>/**/<image>``, torchvision ImageFolder's layout), e.g. ImageNet's train/."""

from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ...io import printable
from ..images import class_folders, loose_images, scan_class_tree
from . import DatasetFormat, FormatOptions, OpenRequest, register_format
from .source import FileReader, Source, SourceDataset, open_source_dataset


def detect(root: Path) -> bool:
    return bool(class_folders(root))


def tree_source(root: Path, options: FormatOptions = FormatOptions()) -> Source:
    """Class k = k-th sorted folder name; each real folder and file once (see ``scan_class_tree``)."""
    loose, folders = loose_images(root), class_folders(root)
    if loose and folders:
        raise UserError(f"{printable(root)}: {len(loose)} image file(s) (e.g. {printable(loose[0])}) next to "
                        f"{len(folders)} class folder(s) (e.g. {printable(folders[0])}); a dataset is either one "
                        f"sub-folder per class or a flat folder of unlabelled images: move the loose files into a "
                        f"class folder, or point at a folder that holds only one kind")
    tree = scan_class_tree(root)
    files = [f for f, _ in tree.files]
    labels = [label for _, label in tree.files]
    return Source("class-per-folder tree", tree.classes, files, labels, FileReader(root), skipped=tree.skipped)


class FolderDataset(SourceDataset):
    """Images of ``root/<class>/**/<image>``, class k = k-th sorted folder name (ImageFolder's order).

    Each image is decoded with PIL, EXIF-rotated, centre-cropped and resized to ``resolution`` exactly as
    ``sagan-prepare`` packs it. A file that cannot be decoded raises a :class:`UserError` naming it (pack
    the tree with ``sagan-prepare``, which skips and lists such files).
    """

    def __init__(self, root: str | Path | Source, resolution: int, hflip: bool = False, uint8: bool = False,
                 seed: int = 0):
        source = root if isinstance(root, Source) else tree_source(Path(root))
        self.root = source.reader.root
        super().__init__(source, resolution, hflip=hflip, uint8=uint8, seed=seed)

    @property
    def files(self) -> list[str]:
        return list(self.source.items)


def open_tree(root: Path, request: OpenRequest) -> FolderDataset:
    return open_source_dataset(TREE, root, request, dataset=FolderDataset)


TREE = register_format(DatasetFormat("tree", "a class-per-folder tree (<class>/<image>, e.g. ImageNet's train/)",
                                     detect, source=tree_source, open=open_tree, priority=10))
