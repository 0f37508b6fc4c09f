"""The data stage (workflow/rules/data.smk): datasets, their validation and splits.

- ``manifest``: ``dataset.yaml`` alone (``read_manifest``: raters, test label sets, image folder);
- ``dataset``: the validated ``Dataset`` (``load_dataset``), checked by ``validation``;
- ``images``: image decoding and sizes; ``splits``: train/validation/test;
- ``consensus``: the majority consensus of several test label sets;
- ``writer``: the one writer of dataset folders, used by ``synthetic`` and ``importers``;
- ``commands``: ``multirater synth | check | split | import | consensus``.
"""
