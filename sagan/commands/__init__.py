"""Every command line of sagan, and the only package that imports click.

    train.py        ``train.py`` / ``sagan-train``
    sample.py       ``sample.py`` / ``sagan-sample``
    evaluate.py     ``evaluate.py`` / ``sagan-evaluate`` (``stats``, ``metrics``)
    prepare.py      ``sagan-prepare``: the packer's options (the packer is :mod:`sagan.data.prepare`)
    convert.py      ``sagan-convert``: released weights -> a sagan checkpoint (:mod:`sagan.convert`)
    experiments.py  ``sagan-experiments``: the paper's experiments (:mod:`sagan.experiments`)
    export.py       ``sagan-export``: ONNX, TorchScript, a Hugging Face folder (:mod:`sagan.export`)
    serve.py        ``sagan-serve``: the web page of a generator (:mod:`sagan.serve`)
    augment.py      ``python -m sagan.commands.augment preview``: what D sees under an augmentation
    options.py      the options several commands share, each defined once

Each is also ``python -m sagan.commands.<name>``. A command parses options, calls the library and prints;
library code returns values and raises :class:`sagan.errors.UserError`. This package is the top layer
(``.importlinter``): nothing else in sagan imports it.
"""
