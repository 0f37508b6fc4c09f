"""The data stage (workflow/rules/data.smk): datasets, their validation and splits.

- ``manifest``: ``dataset.yaml`` alone (``read_manifest``: raters, consensus file, image folder);
- ``dataset``: the validated ``Dataset`` (``load_dataset``), checked by ``validation``;
- ``images``: image decoding and sizes; ``splits``: train/validation/test;
- ``writer``: the one writer of dataset folders, used by ``synthetic`` and ``importers``;
- ``commands``: ``multirater synth | check | split | import``.
"""
